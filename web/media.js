// Capturing the user's camera and microphone, shared by the join-form preview and the meeting.

// Modest capture size: without simulcast every subscriber receives what we send, and tiles in
// a grid are rarely larger than this anyway.
const VIDEO = {
  width: { ideal: 640 },
  height: { ideal: 360 },
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

export function stopStream(stream) {
  for (const track of stream?.getTracks() ?? []) track.stop();
}
