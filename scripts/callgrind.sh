#!/usr/bin/env bash
# Callgrind instructions per forwarded packet of benches/fanout.rs's 1 → N webinar, for the
# str0m and lean send paths. Only the room's own calls are collected (Sim::timed, the calls
# the bench times); each path runs twice, SHORT and LONG seconds of virtual time after the same
# setup, and the difference of instructions over the difference of packets removes the setup
# (joins, DTLS handshakes). Prints per-packet totals and the top functions of the difference.
#
#   scripts/callgrind.sh                      # 1 → 100, lean and str0m, 2 s and 6 s
#   VIEWERS=10 PATHS=lean TOP=30 scripts/callgrind.sh
#
# CACHE=1 adds callgrind's cache model, sized as this machine's L1d (32 KiB) and per-core L2
# (1 MiB, as the last level), and prints data-cache misses per forwarded packet: what a copy's
# scattered per-subscriber state costs, which instruction counts don't show (the VM exposes no
# hardware counters to perf stat). Deterministic, so A/B comparable; not the real misses.
#
# Under valgrind, aws-lc sees valgrind's CPUID (no AVX-512), so its AES-GCM may take another
# code path than on the bare machine: figures are for comparing changes, not absolute cost.
set -euo pipefail
cd "$(dirname "$0")/.."
VIEWERS=${VIEWERS:-100}
SHORT=${SHORT:-2}
LONG=${LONG:-6}
PATHS=${PATHS:-"lean str0m"}
TOP=${TOP:-25}
OUT=${OUT:-target/callgrind}
CACHE=${CACHE:-0}
SIM=()
[ "$CACHE" = 1 ] && SIM=(--cache-sim=yes --I1=32768,8,64 --D1=32768,8,64 --LL=1048576,16,64)
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
mkdir -p "$OUT"
BIN=${BIN:-$(cargo bench --bench fanout --no-run 2>&1 | grep -o 'target/release/deps/fanout-[0-9a-f]*' | tail -1)}
[ -x "$BIN" ] || { echo "bench binary not found" >&2; exit 1; }
for path in $PATHS; do
  for secs in "$SHORT" "$LONG"; do
    f="$OUT/$path-$VIEWERS-$secs"
    FANOUT_FIXED="$path:$VIEWERS:$secs" timeout 1800 valgrind --tool=callgrind "${SIM[@]}" \
      --collect-atstart=no --toggle-collect='confab::sim::Sim::timed*' \
      --callgrind-out-file="$f.out" "$BIN" >"$f.txt" 2>"$f.log"
    callgrind_annotate --auto=no --inclusive=no --threshold=100 "$f.out" >"$f.ann"
  done
  python3 - "$path" "$OUT/$path-$VIEWERS-$SHORT" "$OUT/$path-$VIEWERS-$LONG" "$TOP" <<'PY'
import re, sys
path, short, long_, top = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def packets(f):
    return int(re.search(r"forwarded (\d+) packets", open(f + ".txt").read()).group(1))
def functions(f):
    total, fns = 0, {}
    for line in open(f + ".ann", errors="replace"):
        m = re.match(r"\s*([\d,]+)\s+(\([^)]*\)\s+)?(.*)$", line)
        if not m:
            continue
        ir, name = int(m.group(1).replace(",", "")), m.group(3).strip()
        # "file:function [object]": inlined code is charged to its source file; group by
        # the function it was inlined into.
        name = re.sub(r"^[^:]*:(?!:)", "", name)
        name = re.sub(r"\s*\[[^\]]*\]$", "", name)
        if "PROGRAM TOTALS" in name:
            total = ir
        elif name:
            fns[name] = fns.get(name, 0) + ir
    return total, fns
ps, pl = packets(short), packets(long_)
ts, fs = functions(short)
tl, fl = functions(long_)
n = pl - ps
print(f"== {path}: {n} packets forwarded in the extra time; "
      f"{(tl - ts) / n:,.0f} instructions per forwarded packet (room only)")
diff = sorted(((fl.get(k, 0) - fs.get(k, 0), k) for k in set(fl) | set(fs)), reverse=True)
def totals(f):
    ev = []
    for line in open(f + ".ann", errors="replace"):
        if line.startswith("Events shown:"):
            ev = line.split(":")[1].split()
        if "PROGRAM TOTALS" in line:
            return dict(zip(ev, (int(x.replace(",", "")) for x in re.findall(r"([\d,]+) \(", line))))
    return {}
es, el = totals(short), totals(long_)
if "D1mr" in el:
    miss = lambda t, a, b: t.get(a, 0) + t.get(b, 0)
    d1 = (miss(el, "D1mr", "D1mw") - miss(es, "D1mr", "D1mw")) / n
    ll = (miss(el, "DLmr", "DLmw") - miss(es, "DLmr", "DLmw")) / n
    print(f"   data-cache misses per forwarded packet: L1d {d1:,.1f}, L2 (1 MiB) {ll:,.2f}")
for d, k in diff[:top]:
    print(f"{d / n:10,.0f}  {100 * d / (tl - ts):5.1f} %  {k[:150]}")
PY
done
