// What a captured server → browser UDP stream says about nonces: every SRTP packet's (SSRC,
// ROC||seq) and every SRTCP packet's (sender SSRC, index) must be new, or AES-GCM's key stream
// and authentication are broken for both packets (RFC 7714 §8.1, §9.1).

const MAX_LISTED = 20;

// RFC 3711 appendix A: the rollover counter a sequence number belongs to, given the highest
// index seen so far, so that a wrapped or slightly reordered number lands next to it.
function extendedIndex(highest, seq) {
  const roc = Math.floor(highest / 65536);
  let best = roc * 65536 + seq;
  for (const r of [roc - 1, roc + 1]) {
    const candidate = r * 65536 + seq;
    if (r >= 0 && Math.abs(candidate - highest) < Math.abs(best - highest)) best = candidate;
  }
  return best;
}

// RTP packets of one stream (by SSRC) in [fromMs, toMs], split into those with the padding bit
// (padding-only probes, on an RTX stream) and those without (media, or retransmissions).
export function rtpCount(datagrams, ssrc, fromMs, toMs) {
  const out = { padded: 0, plain: 0 };
  for (const { ms, payload: p } of datagrams) {
    if (ms < fromMs || ms > toMs || p.length < 12 || p[0] < 128 || p[0] > 191) continue;
    if (p[1] >= 192 && p[1] <= 223) continue; // RTCP
    if (p.readUInt32BE(8) !== ssrc) continue;
    if (p[0] & 0x20) out.padded += 1;
    else out.plain += 1;
  }
  return out;
}

// datagrams: UDP datagrams from the server ({payload}), in wire order. Returns {counts, srtpRepeats,
// srtcpRepeats}: the repeats as "ssrc:index" strings (at most MAX_LISTED of each).
export function nonceRepeats(datagrams) {
  const counts = { datagrams: datagrams.length, srtp: 0, srtcp: 0, srtpStreams: 0, other: 0 };
  const srtp = new Map(); // ssrc → {highest, seen: Set of extended indexes}
  const srtcp = new Set();
  const srtpRepeats = [];
  const srtcpRepeats = [];
  for (const { payload: p } of datagrams) {
    // RFC 7983: 128..191 in the first byte is RTP or RTCP; STUN and DTLS are below.
    if (p.length < 12 || p[0] < 128 || p[0] > 191) {
      counts.other += 1;
      continue;
    }
    // RFC 5761: RTCP packet types 192..223 sit where RTP has marker bit and payload type.
    if (p[1] >= 192 && p[1] <= 223) {
      // RFC 7714 §9.1: header (sender SSRC in the clear), sealed payload, tag, then E||index.
      const key = `${p.readUInt32BE(4)}:${p.readUInt32BE(p.length - 4) & 0x7fffffff}`;
      if (srtcp.has(key)) {
        if (srtcpRepeats.length < MAX_LISTED) srtcpRepeats.push(key);
      } else srtcp.add(key);
      counts.srtcp += 1;
      continue;
    }
    const ssrc = p.readUInt32BE(8);
    const seq = p.readUInt16BE(2);
    let stream = srtp.get(ssrc);
    if (!stream) {
      stream = { highest: seq, seen: new Set() };
      srtp.set(ssrc, stream);
    }
    const index = extendedIndex(stream.highest, seq);
    stream.highest = Math.max(stream.highest, index);
    if (stream.seen.has(index)) {
      if (srtpRepeats.length < MAX_LISTED) srtpRepeats.push(`${ssrc}:${index}`);
    } else stream.seen.add(index);
    counts.srtp += 1;
  }
  counts.srtpStreams = srtp.size;
  return { counts, srtpRepeats, srtcpRepeats };
}
