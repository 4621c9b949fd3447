// What the test files' own processes (confab in server.mjs, redis-server in redis.mjs) share:
// free loopback ports to start them on, and waiting, bounded, until they answer.

import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Binding port 0 and closing leaves a small window for someone else to take the port; on a
// test machine that is an acceptable trade for not needing the process to report its ports.
// Ports this process has handed out: two servers started at once each probe a port, close it
// and bind it later, so the kernel may give both the same one (it did: a cluster test's two
// nodes on one UDP port, the second exiting at bind). A port is never handed out twice.
const handedOut = { tcp: new Set(), udp: new Set() };

async function unused(kind, probe) {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await probe();
    if (!handedOut[kind].has(port)) {
      handedOut[kind].add(port);
      return port;
    }
  }
  throw new Error(`no ${kind} port this process has not handed out already, in 20 tries`);
}

export function freeTcpPort() {
  return unused(
    'tcp',
    () =>
      new Promise((resolve, reject) => {
        const srv = createServer();
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', () => {
          const { port } = srv.address();
          srv.close(() => resolve(port));
        });
      }),
  );
}

export function freeUdpPort() {
  return unused(
    'udp',
    () =>
      new Promise((resolve, reject) => {
        const sock = createSocket('udp4');
        sock.once('error', reject);
        sock.bind(0, '127.0.0.1', () => {
          const { port } = sock.address();
          sock.close(() => resolve(port));
        });
      }),
  );
}

// Asks `answers()` every `intervalMs` until it says true (→ true) or `timeoutMs` has passed
// (→ false). `check()` runs after every miss and may throw (the process exited, say).
export async function answersWithin(answers, { timeoutMs, intervalMs, check = () => {} }) {
  const deadline = Date.now() + timeoutMs;
  while (!(await answers())) {
    check();
    if (Date.now() > deadline) return false;
    await sleep(intervalMs);
  }
  return true;
}
