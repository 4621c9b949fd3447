// A private network link for browser tests: a namespace joined to the root one by a veth pair,
// Chromium run inside it, the server → browser direction capped (tc tbf) or lossy (nftables),
// and a tcpdump capture of that direction. Needs CAP_NET_ADMIN (root); `netnsUnavailable()`
// says why not, so a test file can skip.

import { execFile, execFileSync, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const run = promisify(execFile);
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const COMMAND_TIMEOUT_MS = 10_000;

const sh = (cmd, args) => run(cmd, args, { timeout: COMMAND_TIMEOUT_MS });

async function has(cmd) {
  try {
    await sh('sh', ['-c', `command -v ${cmd}`]);
    return true;
  } catch {
    return false;
  }
}

// null when namespaces can be made here, else the reason (a test file skips with it).
export async function netnsUnavailable() {
  if (process.platform !== 'linux') return `network namespaces are Linux-only (this is ${process.platform})`;
  for (const cmd of ['ip', 'tc', 'nft', 'tcpdump']) {
    if (!(await has(cmd))) return `${cmd} is not installed (scripts/test.sh installs iproute2, nftables and tcpdump)`;
  }
  const probe = `cfprobe${process.pid % 100000}`;
  try {
    await sh('ip', ['netns', 'add', probe]);
  } catch (err) {
    return `cannot create a network namespace (needs CAP_NET_ADMIN, i.e. root): ${err.stderr || err.message}`.trim();
  } finally {
    await sh('ip', ['netns', 'del', probe]).catch(() => {});
  }
  return null;
}

// A name suffix and /30 for this run, not in use on the machine, so that two runs at once (two
// worktrees, say) get different links. 10.213.0.0/16 is private and unlikely to be a route the
// machine already has; a /30 in it that is already up is skipped.
async function freshLink() {
  const { stdout: addrs } = await sh('ip', ['-o', '-4', 'addr', 'show']);
  const { stdout: namespaces } = await sh('ip', ['netns', 'list']);
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const id = `${process.pid % 10000}${Math.floor(Math.random() * 10000)}`;
    const block = (Number(id) % 16384) * 4;
    const base = `10.213.${block >> 8}.`;
    const serverIp = `${base}${(block & 255) + 1}`;
    if (addrs.includes(` ${serverIp}/`) || namespaces.includes(`cfn${id}`)) continue;
    return { id, serverIp, browserIp: `${base}${(block & 255) + 2}` };
  }
  throw new Error('no free 10.213.x.y/30 for a test link after 20 tries');
}

// Creates the namespace and the link. Returns {ns, serverIp, browserIp, chromium (a wrapper
// that starts Chromium inside the namespace), cap(rate), uncap(), loss(percent), dropped(),
// capture(), destroy()}; everything is undone by destroy(), even after a partial setup.
export async function createLink() {
  const { id, serverIp, browserIp } = await freshLink();
  const ns = `cfn${id}`;
  // Interface names are limited to 15 characters: 3 + at most 8 digits.
  const hostIf = `cfh${id}`;
  const peerIf = `cfb${id}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'confab-netns-'));
  const captures = [];

  const link = {
    ns,
    serverIp,
    browserIp,
    hostIf,
    chromium: path.join(dir, 'chromium-in-netns'),

    // Caps what the server sends to the browser at `rate` (tc's units, e.g. '300kbit') with a
    // token bucket on the server's end; a queue of more than `latencyMs` is dropped.
    async cap(rate, latencyMs = 150) {
      await sh('tc', ['qdisc', 'replace', 'dev', hostIf, 'root', 'tbf', 'rate', rate, 'burst', '8kb', 'latency', `${latencyMs}ms`]);
    },

    async uncap() {
      // Deleting the root qdisc when there is none fails: that is already the wanted state.
      await sh('tc', ['qdisc', 'del', 'dev', hostIf, 'root']).catch(() => {});
    },

    // Drops `percent` % of what reaches the browser's end, at random (0: none). This kernel has
    // no netem (nor tc's gact), so the drop is an nftables rule in the namespace, on the
    // browser's ingress: after the capture point, which therefore still sees all that was sent.
    async loss(percent) {
      const nft = (args) => sh('ip', ['netns', 'exec', ns, 'nft', ...args]);
      await nft(['delete', 'table', 'netdev', 'confab_loss']).catch(() => {});
      if (percent <= 0) return;
      await nft(['add', 'table', 'netdev', 'confab_loss']);
      await nft(['add', 'chain', 'netdev', 'confab_loss', 'in', `{ type filter hook ingress device ${peerIf} priority 0 ; }`]);
      await nft(['add', 'rule', 'netdev', 'confab_loss', 'in', 'numgen', 'random', 'mod', '100', '<', String(percent), 'counter', 'drop']);
    },

    // Packets the loss rule dropped so far (0 without one).
    async dropped() {
      try {
        const { stdout } = await sh('ip', ['netns', 'exec', ns, 'nft', 'list', 'table', 'netdev', 'confab_loss']);
        return Number(/counter packets (\d+)/.exec(stdout)?.[1] ?? 0);
      } catch {
        return 0;
      }
    },

    // Starts capturing UDP from the server to the browser on the link (after the shaping:
    // what went on the wire). Returns {file, stop() → file}: the pcap file can be read while
    // the capture goes on (tcpdump -U writes each packet as it comes). The file grows at the
    // media rate (one viewer: ~0.3 MB/s), so captures are for runs of a minute or two; the
    // directory goes with destroy().
    async capture() {
      const file = path.join(dir, `capture-${captures.length}.pcap`);
      const child = spawn(
        'tcpdump',
        // -Z root: the file is in our private (0700) directory, which tcpdump's own user cannot write.
        ['-i', hostIf, '-n', '-U', '-s', '0', '-Z', 'root', '-w', file, 'udp', 'and', 'src', 'host', serverIp],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let err = '';
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (c) => {
        err = (err + c).slice(-4000);
      });
      const exited = new Promise((resolve) => child.once('exit', resolve));
      captures.push(child);
      // tcpdump says "listening on" once the capture is open; packets before that are missed.
      const deadline = Date.now() + COMMAND_TIMEOUT_MS;
      while (!/listening on/.test(err)) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`tcpdump did not start: ${err}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return {
        file,
        async stop() {
          child.kill('SIGINT');
          const done = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 5000))]);
          if (done === 'timeout') child.kill('SIGKILL');
          return file;
        },
      };
    },

    async destroy() {
      for (const c of captures) if (c.exitCode === null) c.kill('SIGKILL');
      // Deleting the namespace deletes the veth pair (both ends) and its qdiscs with it.
      await sh('ip', ['netns', 'del', ns]).catch(() => {});
      await sh('ip', ['link', 'del', hostIf]).catch(() => {});
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };

  // A run that ends without its `after` (an uncaught error, process.exit) still leaves no link.
  const atExit = () => {
    for (const args of [['netns', 'del', ns], ['link', 'del', hostIf]]) {
      try {
        execFileSync('ip', args, { stdio: 'ignore', timeout: COMMAND_TIMEOUT_MS });
      } catch {
        // already gone
      }
    }
  };
  process.once('exit', atExit);
  const destroy = link.destroy;
  link.destroy = async () => {
    process.off('exit', atExit);
    await destroy();
  };
  try {
    await sh('ip', ['netns', 'add', ns]);
    await sh('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', peerIf]);
    await sh('ip', ['link', 'set', peerIf, 'netns', ns]);
    const inNs = (args) => sh('ip', ['netns', 'exec', ns, ...args]);
    // No IPv6: its link-local addresses arrive a moment after the link is up, and Chromium
    // (the root namespace's too) aborts page loads with ERR_NETWORK_CHANGED when they do.
    await sh('sysctl', ['-qw', `net.ipv6.conf.${hostIf}.disable_ipv6=1`]);
    await inNs(['sysctl', '-qw', `net.ipv6.conf.${peerIf}.disable_ipv6=1`]);
    await sh('ip', ['addr', 'add', `${serverIp}/30`, 'dev', hostIf]);
    await sh('ip', ['link', 'set', hostIf, 'up']);
    await inNs(['ip', 'addr', 'add', `${browserIp}/30`, 'dev', peerIf]);
    await inNs(['ip', 'link', 'set', peerIf, 'up']);
    await inNs(['ip', 'link', 'set', 'lo', 'up']);
    // Both ends up (carrier) before any browser starts, for the same reason.
    const deadline = Date.now() + COMMAND_TIMEOUT_MS;
    while (!/state UP/.test((await sh('ip', ['link', 'show', hostIf])).stdout)) {
      if (Date.now() > deadline) throw new Error(`${hostIf} did not come up`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // Playwright talks to Chromium over a pipe, which crosses the namespace boundary.
    fs.writeFileSync(link.chromium, `#!/bin/sh\nexec ip netns exec ${ns} ${CHROMIUM} "$@"\n`, { mode: 0o755 });
  } catch (err) {
    await link.destroy();
    throw err;
  }
  return link;
}

// The UDP datagrams of a pcap file (classic format, Ethernet or Linux cooked link type), in
// order, as {ms (wall clock, as Date.now()), payload}. A file still being written is fine: a
// record cut off at its end is left out.
export function udpDatagrams(file) {
  const buf = fs.readFileSync(file);
  if (buf.length < 24) return [];
  const magic = buf.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  const magicBe = buf.readUInt32BE(0);
  if (!le && magicBe !== 0xa1b2c3d4 && magicBe !== 0xa1b23c4d) {
    throw new Error(`${file} is not a pcap file (magic ${magic.toString(16)})`);
  }
  const nanos = (le ? magic : magicBe) === 0xa1b23c4d;
  const u32 = (o) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const linkType = u32(20);
  const linkHeader = { 1: 14, 113: 16 }[linkType];
  if (linkHeader === undefined) throw new Error(`unsupported pcap link type ${linkType}`);
  const out = [];
  let o = 24;
  while (o + 16 <= buf.length) {
    const ms = u32(o) * 1000 + u32(o + 4) / (nanos ? 1e6 : 1e3);
    const caplen = u32(o + 8);
    const start = o + 16;
    o = start + caplen;
    if (o > buf.length) break;
    const ip = start + linkHeader;
    if (buf[ip] >> 4 !== 4 || buf[ip + 9] !== 17) continue; // IPv4 UDP only
    const udp = ip + (buf[ip] & 15) * 4;
    const udpLen = buf.readUInt16BE(udp + 4);
    const end = Math.min(udp + udpLen, o);
    out.push({ ms, payload: buf.subarray(udp + 8, end) });
  }
  return out;
}
