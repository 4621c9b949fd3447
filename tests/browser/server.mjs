// Starts the real confab binary on free loopback ports for one test file, and stops it.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import fs from 'node:fs';
import { answersWithin, freeTcpPort, freeUdpPort, sleep } from './process.mjs';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const LOG_KEEP = 64 * 1024;

export const serverBinary = () =>
  process.env.CONFAB_BIN ? path.resolve(process.env.CONFAB_BIN) : path.join(repoRoot, 'target/release/confab');

async function healthy(url) {
  try {
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
    return res.status === 200;
  } catch {
    return false;
  }
}

// Returns {url, tcpPort, udpPort, log(), metric(name), kill(), stop()}; rejects (with the server's stderr) if it
// exits or is not healthy within `timeoutMs`. `ports: {tcp, udp}` restarts a server where an
// earlier one was (free ports are picked otherwise); `host`: the IP to listen on (default
// loopback).
export async function startServer({ extraArgs = [], timeoutMs = 15_000, ports = null, host = '127.0.0.1' } = {}) {
  const bin = serverBinary();
  if (!fs.existsSync(bin)) {
    throw new Error(`confab binary not found at ${bin}: build it (cargo build --release) or set CONFAB_BIN`);
  }
  const [tcp, udp] = ports ? [ports.tcp, ports.udp] : await Promise.all([freeTcpPort(), freeUdpPort()]);
  const args = ['--listen', `${host}:${tcp}`, '--udp-port', String(udp), ...extraArgs];
  const child = spawn(bin, args, {
    // tracing writes to stdout, panics and fatal errors to stderr: keep both, interleaved.
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { RUST_LOG: 'info', NO_COLOR: '1', ...process.env },
  });
  let log = '';
  for (const stream of [child.stdout, child.stderr]) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
      log = (log + chunk).slice(-LOG_KEEP);
    });
  }
  let exited = null;
  const exit = new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    }),
  );

  const server = {
    url: `http://${host}:${tcp}`,
    tcpPort: tcp,
    udpPort: udp,
    log: () => log,
    // The whole of /metrics, within 2 s.
    async metricsText() {
      return (await fetch(`${this.url}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
    },
    // One value from /metrics, labels included in `name` (NaN when the server does not report
    // it: a counter never incremented is absent).
    async metric(name) {
      const text = await this.metricsText();
      const literal = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      return Number(text.match(new RegExp(`^${literal} (\\d+)$`, 'm'))?.[1]);
    },
    get running() {
      return exited === null;
    },
    // A hard kill, as when the machine or the process dies: no goodbye on the sockets.
    async kill() {
      if (!exited) child.kill('SIGKILL');
      return exit;
    },
    async stop() {
      if (exited) return exited;
      child.kill('SIGTERM');
      const done = await Promise.race([exit, sleep(5000).then(() => null)]);
      if (done) return done;
      child.kill('SIGKILL');
      return exit;
    },
  };

  const up = await answersWithin(() => healthy(server.url), {
    timeoutMs,
    intervalMs: 100,
    check: () => {
      if (exited) throw new Error(`confab exited early (${JSON.stringify(exited)}): ${bin} ${args.join(' ')}\n${log}`);
    },
  });
  if (!up) {
    await server.stop();
    throw new Error(`confab did not answer /healthz within ${timeoutMs} ms\n${log}`);
  }
  return server;
}

// Starts one server per entry of `options` at once; if any fails, stops those that started
// before rethrowing, so that no stray server keeps the test file from ending.
export async function startServers(options) {
  const started = await Promise.allSettled(options.map((o) => startServer(o)));
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    await Promise.all(started.filter((r) => r.status === 'fulfilled').map((r) => r.value.stop()));
    throw failed.reason;
  }
  return started.map((r) => r.value);
}
