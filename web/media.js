// Capturing the user's camera, microphone and screen, shared by the pre-join screen and the
// meeting. The devices chosen in this browser (prefs.js) are asked for first; one that is gone
// is replaced by whichever the browser picks.

import { loadPrefs } from './prefs.js';

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

/** @param {string | undefined} deviceId */
const pick = (deviceId) => (deviceId ? { deviceId: { ideal: deviceId } } : {});

/** @param {{camera?: string, microphone?: string}} [devices] device ids; default: the remembered ones */
export async function captureCameraAndMicrophone(devices = loadPrefs()) {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new Error('This page needs a secure connection (https) to use the camera and microphone');
  }
  const audio = { ...pick(devices.microphone) };
  const video = { ...VIDEO, ...pick(devices.camera) };
  const audioOnly = Object.keys(audio).length ? audio : true;
  let lastError;
  for (const constraints of [{ audio: audioOnly, video }, { audio: audioOnly }, { video }]) {
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch (err) {
      lastError = err;
      if (!RETRYABLE.has(err.name)) break;
    }
  }
  throw lastError;
}

// One track of `source` from the device `deviceId` (exactly that one when `exact`, else the
// browser's choice if it is gone): for switching devices in a call.
/**
 * @param {'microphone' | 'camera'} source
 * @param {string | undefined} deviceId
 */
export async function captureDevice(source, deviceId, exact = true) {
  const want = deviceId ? { deviceId: exact ? { exact: deviceId } : { ideal: deviceId } } : {};
  const constraints = source === 'camera' ? { video: { ...VIDEO, ...want } } : { audio: Object.keys(want).length ? want : true };
  const stream = await navigator.mediaDevices.getUserMedia(constraints);
  return stream.getTracks()[0];
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
