// Capturing the user's camera, microphone and screen, shared by the join-form preview and the meeting.

// 720p so that simulcast has three useful layers (320×180, 640×360, 1280×720); the server
// sends each viewer only the one that fits their tile.
const VIDEO = {
  width: { ideal: 1280 },
  height: { ideal: 720 },
  frameRate: { ideal: 24, max: 30 },
};

// Errors after which asking for less (audio only, video only) can still succeed. A refusal
// (NotAllowedError) is deliberately absent: asking again would only nag the user.
const RETRYABLE = new Set(['NotFoundError', 'NotReadableError', 'OverconstrainedError', 'AbortError']);

export async function captureCameraAndMicrophone() {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new Error('This page needs a secure connection (https) to use the camera and microphone');
  }
  let lastError;
  for (const constraints of [{ audio: true, video: VIDEO }, { audio: true }, { video: VIDEO }]) {
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch (err) {
      lastError = err;
      if (!RETRYABLE.has(err.name)) break;
    }
  }
  throw lastError;
}

// Slides are read, not watched: a modest frame rate leaves the bits for sharp text.
export async function captureScreen() {
  if (!navigator.mediaDevices?.getDisplayMedia) {
    throw new Error('This browser cannot share its screen');
  }
  return navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15, max: 30 } }, audio: false });
}

export function stopStream(stream) {
  for (const track of stream?.getTracks() ?? []) track.stop();
}
