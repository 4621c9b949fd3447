// A redis-server of our own on a free loopback port, without persistence, for cluster tests.

import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { answersWithin, freeTcpPort } from './process.mjs';

const answers = (port) =>
  new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

// Returns {url, stop()}; rejects if redis-server does not answer within 10 s.
export async function startRedis() {
  const port = await freeTcpPort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  if (!(await answersWithin(() => answers(port), { timeoutMs: 10_000, intervalMs: 50 }))) {
    child.kill('SIGKILL');
    throw new Error('redis-server did not start (is it installed?)');
  }
  return { url: `redis://127.0.0.1:${port}`, stop: () => child.kill('SIGKILL') };
}
