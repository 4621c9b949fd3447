#!/usr/bin/env bash
# Issue 16's table in one go: the str0m and lean send paths side by side, with runs alternating
# (confab-load --spawn str0m --spawn lean --runs N, each run on a fresh server), and the
# machine's ceiling (confab-load ceiling) at each scenario's shape, rate and batch. Prints a
# markdown table on stdout; progress and each run's log go to target/bench-lean/. A benchmark,
# not a test: nothing here runs in scripts/test.sh.
#
#   bash scripts/bench-lean.sh                 # webinar 1->100 light and heavy, 1->300,
#                                              # meeting 10x10; str0m and lean, 2 runs each
#   RUNS=3 DURATION=10 bash scripts/bench-lean.sh
#   ONLY="w100 m10" bash scripts/bench-lean.sh
#   JANUS=1 bash scripts/bench-lean.sh         # + Janus event_loops = 2 against lean,
#                                              # 1->100 and 1->300 without simulcast
#                                              # (root: scripts/bench-janus.sh's namespace)
#
# Settings (environment): RUNS (2) runs per path and scenario, DURATION (8) seconds measured
# per run, WARMUP (2) seconds before it, CEILING_S (5) seconds per ceiling run, CEILING_RUNS
# (3) ceiling runs, of which the median counts, ONLY (all: w100 w100h w300 m10), LIMIT_S
# (1200): no scenario starts later, and the last is cut short. PATHS ("str0m lean"): the send
# paths compared, in turn; `PATHS=lean` measures the default path alone in half the time
# (with one path, RUNS must be 2 or more). FEEDBACK_MS (50): the ceiling's receivers each
# send a feedback datagram back at this period, which its sender reads as the server reads
# its viewers' transport-cc feedback (confab-load's viewers send it every 50 ms, as browsers
# do); 0: a send-only ceiling.
# SERVER_CPUS / TESTER_CPUS (unset: no pinning), e.g. SERVER_CPUS=1 TESTER_CPUS=0: CPU lists
# (comma-separated numbers) for the server and for confab-load, so that neither waits for the
# other's CPU nor evicts its caches; the end-to-end latency is then more nearly the SFU's. The
# ceiling is measured the same way: its sending thread on SERVER_CPUS (--sender-cpus), its
# receivers on TESTER_CPUS.
# SERVER_NICE (unset), e.g. -15 (root): the server's nice value, so that on a machine shared
# with other work its delay is its own rather than its wait for a CPU (the server's wait
# is in each run's JSON as server_wait_pct).
# One run takes its joins and ramp (5-20 s at load ~3, up to a minute at load 20) plus WARMUP +
# DURATION; the defaults took 5 minutes at load average ~17, JANUS=1 about 3 more. Each
# confab-load call is bounded by `timeout`.
#
# Columns: forwarded packets per server CPU-second (median [min, max] of the runs); the
# ceiling (datagrams per CPU-second the kernel allows at that run's rate, receivers and
# datagrams per send call) and the share of it reached; packets lost at the receivers (all
# runs); latency p50 / p99 from the publisher's stamp to the receiver's read (medians), which
# includes both bots' scheduling: read it only where "tester" says the tester was not
# starved (runs starved of N: confab-load's Report::starved); SFU-added delay p50 / p99 / max
# from the server's own histogram (confab_forward_delay_seconds: a media datagram's arrival
# at recvmmsg to each forwarded copy's hand-off to sendmmsg; medians of the runs, max the
# highest bucket bound reached in any run), which no tester scheduling enters but the server's
# own wait for a CPU does (its median share of the window follows, and the copies the lean
# pacer held, all runs); RSS per participant; datagrams
# per send call (and the share of datagrams sent as later segments of a GSO message); the
# tester's CPU and its wait for a CPU (% of the window, median).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/bench-lean
B=$ROOT/target/release
RUNS=${RUNS:-2}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
CEILING_S=${CEILING_S:-5}
CEILING_RUNS=${CEILING_RUNS:-3}
ONLY=${ONLY:-"w100 w100h w300 m10"}
PATHS=${PATHS:-"str0m lean"}
JANUS=${JANUS:-0}
FEEDBACK_MS=${FEEDBACK_MS:-50}
SERVER_CPUS=${SERVER_CPUS:-}
TESTER_CPUS=${TESTER_CPUS:-}
PIN_SERVER=()
PIN_TESTER=()
[ -z "$SERVER_CPUS" ] || PIN_SERVER=(taskset -c "$SERVER_CPUS")
[ -z "$TESTER_CPUS" ] || PIN_TESTER=(taskset -c "$TESTER_CPUS")
# The ceiling stands for the server: its sending thread on the server's CPUs, its receivers
# (the bots' stand-ins) on the tester's.
SENDER_CPUS=()
[ -z "$SERVER_CPUS" ] || SENDER_CPUS=(--sender-cpus "$SERVER_CPUS")
SERVER_NICE=${SERVER_NICE:-}
[ -z "$SERVER_NICE" ] || PIN_SERVER=(nice -n "$SERVER_NICE" ${PIN_SERVER[@]+"${PIN_SERVER[@]}"})
# The whole script stops starting scenarios past this many seconds, and cuts the last short.
LIMIT_S=${LIMIT_S:-1200}
DEADLINE=$((SECONDS + LIMIT_S))
command -v jq >/dev/null || { echo "bench-lean: jq is needed (apt-get install jq)" >&2; exit 2; }
mkdir -p "$OUT"
if [ ! -x "$B/confab" ] || [ ! -x "$B/confab-load" ]; then
  cargo build --release --bins
fi
for v in str0m lean; do
  # Every bot connects from 127.0.0.1: lift the per-address connection limit (256).
  printf '#!/bin/sh\nCONFAB_MAX_CONNECTIONS_PER_ADDRESS=2000 CONFAB_SEND_PATH=%s exec %s %q "$@"\n' \
    "$v" "${PIN_SERVER[*]:-}" "$B/confab" >"$OUT/confab-$v"
  chmod +x "$OUT/confab-$v"
done

load() { cut -d' ' -f1-3 /proc/loadavg; }
say() { echo "bench-lean: $*" >&2; }

# Scenario NAME -> "label|receivers|confab-load options"
scenario() {
  case "$1" in
    w100) echo "webinar 1 → 100 light|100|webinar --viewers 100" ;;
    w100h) echo "webinar 1 → 100 heavy|100|--camera heavy webinar --viewers 100" ;;
    w300) echo "webinar 1 → 300|300|--ramp-timeout 90 webinar --viewers 300" ;;
    m10) echo "meeting 10 × 10|10|meeting --size 10" ;;
    *) say "unknown scenario $1 (w100 w100h w300 m10)"; exit 2 ;;
  esac
}

# jq helpers over one binary's runs (an array of confab-load reports).
JQ_LIB='
def med: map(select(. != null)) | sort
  | if length == 0 then null
    elif length % 2 == 1 then .[(length - 1) / 2]
    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
def k: if . == null then "n/a" else (. / 1000 * 10 | round / 10 | tostring) + " k" end;
def r0: if . == null then "n/a" else (round | tostring) end;
def r1: if . == null then "n/a" else (. * 10 | round / 10 | tostring) end;
def ms: if . == null then "n/a" else (. / 1000 * 10 | round / 10 | tostring) end;
def ms2: if . == null then "n/a" else (. / 1000 * 100 | round / 100 | tostring) end;
'

# confab-load with a bound: RUNS × 2 runs of at most ramp + joins + window each.
run_load() {
  local name=$1 json=$2 log=$3
  shift 3
  local bound=$(((RUNS * 2) * (150 + WARMUP + DURATION) + 60)) left=$((DEADLINE - SECONDS))
  if [ "$left" -lt 60 ]; then
    say "$name: skipped, past LIMIT_S=$LIMIT_S"
    return 1
  fi
  [ "$bound" -le "$left" ] || bound=$left
  say "$name: $* (load $(load); log $log)"
  timeout "$bound" "$@" >"$json" 2>"$log" || true
  jq -e '.runs' "$json" >/dev/null 2>&1 || { say "$name: no report (see $log)"; return 1; }
}

# Ceiling at RECEIVERS, PPS, BATCH -> datagrams per CPU-second (or empty).
ceiling() {
  local peers=$1 pps=$2 batch=$3
  [ -n "$pps" ] && [ "$pps" != null ] && [ "$pps" -gt 0 ] || return 0
  [ "$batch" -ge 1 ] 2>/dev/null || batch=1
  [ "$batch" -le 1024 ] || batch=1024
  # One 5 s run moved by +-20 % between runs on a quiet machine (2026-11-30): take the median
  # of CEILING_RUNS, and show their range.
  local i v all=()
  for ((i = 0; i < CEILING_RUNS; i++)); do
    v=$(timeout $((CEILING_S + 60)) ${PIN_TESTER[@]+"${PIN_TESTER[@]}"} "$B/confab-load" --json --quiet \
      --duration "$CEILING_S" ceiling --peers "$peers" --pps "$pps" --batch "$batch" \
      --feedback-every "$FEEDBACK_MS" \
      ${SENDER_CPUS[@]+"${SENDER_CPUS[@]}"} 2>/dev/null |
      jq -r '.sent_per_cpu_s // empty')
    [ -z "$v" ] || all+=("$v")
  done
  [ "${#all[@]}" -gt 0 ] || return 0
  printf '%s\n' "${all[@]}" | jq -sr "$JQ_LIB"' "\(med)|\(min | k)|\(max | k)"'
}

ROWS=()
JROWS=()
START=$(date -u +%H:%M)
say "load before: $(load); uptime: $(uptime)"
for s in $ONLY; do
  IFS='|' read -r label receivers opts <<<"$(scenario "$s")"
  json=$OUT/$s.json
  before=$(load)
  # shellcheck disable=SC2086
  spawns=()
  for v in $PATHS; do spawns+=(--spawn "$OUT/confab-$v"); done
  run_load "$s" "$json" "$OUT/$s.log" ${PIN_TESTER[@]+"${PIN_TESTER[@]}"} "$B/confab-load" --json "${spawns[@]}" \
    --runs "$RUNS" --duration "$DURATION" --warmup "$WARMUP" $opts ||
    continue
  after=$(load)
  i=-1
  for path in $PATHS; do
    i=$((i + 1))
    q() { jq -r "$JQ_LIB .runs[$i] | $1" "$json"; }
    pps=$(q 'map(.server_udp_out_pps) | med | r0')
    batch=$(q 'map(.server_datagrams_per_send) | med | r0')
    IFS='|' read -r ceil ceil_lo ceil_hi <<<"$(ceiling "$receivers" "$pps" "$batch")" || true
    fwd=$(q 'map(.forwarded_per_cpu_s) | "\(med | k) [\(min | k), \(max | k)]"')
    fmed=$(q 'map(.forwarded_per_cpu_s) | med // empty')
    share=n/a
    if [ -n "$ceil" ] && [ -n "$fmed" ]; then
      share="$(jq -nr "$fmed / $ceil * 100 | round")%"
      ceil_txt="$(jq -nr "$JQ_LIB $ceil | k") [$ceil_lo, $ceil_hi] (batch $batch)"
    else
      ceil_txt=n/a
    fi
    row=$(q '"\(map(.server_forwarded_pps) | med | k)|" +
      "\(map(.lost) | add)|" +
      "\(map(.latency_us_p50) | med | ms) / \(map(.latency_us_p99) | med | ms) ms|" +
      "\(map(.sfu_delay_us[0]?) | med | ms2) / \(map(.sfu_delay_us[1]?) | med | ms2) / " +
      "≤ \(map(.sfu_delay_us[2]?) | max | ms2) ms; paced \(map(.sfu_paced_copies // 0) | add) copies; " +
      "server waited \(map(.server_wait_pct) | med | r0) %|" +
      "\(map(.rss_per_participant_kib) | med | r0) KiB|" +
      "\(map(.server_datagrams_per_send) | med | r1) (GSO \(map(.server_coalesced_pct) | med | r0) %)|" +
      "\(map(.loader_cpu_pct) | med | r0) %, waited \(map(.loader_wait_pct) | med | r0) %; " +
      "starved \(if all(.loader_starved == null) then "n/a" else (map(select(.loader_starved == true)) | length) end) of \(length)|" +
      "\(map(select(.joined == .bots and .ready == .bots and .stalled == 0 and .lost == 0)) | length) of \(length)"')
    IFS='|' read -r fpps lost lat sfu rss dps tester clean <<<"$row"
    ROWS+=("| $label | $path | $fpps | **$fwd** | $ceil_txt | $share | $lost | $lat | $sfu | $rss | $dps | $tester | $clean | $before → $after |")
  done
done

if [ "$JANUS" = 1 ]; then
  [ "$(id -u)" -eq 0 ] || { say "JANUS=1 needs root (a network namespace)"; exit 2; }
  bash scripts/bench-janus.sh setup >&2
  JOUT=$ROOT/target/bench-janus
  for viewers in 100 300; do
    json=$OUT/janus-$viewers.json
    before=$(load)
    ramp=$([ "$viewers" -gt 100 ] && echo 90 || echo 30)
    # Both without simulcast: Janus forwards a layer only from a keyframe with the VP8 start
    # code, which the bots' synthetic frames lack (see README, "Side by side with Janus").
    run_load "janus$viewers" "$json" "$OUT/janus-$viewers.log" \
      ip netns exec confab-janus "$B/confab-load" --json --janus-media-ip 198.18.0.1 \
      --spawn "$JOUT/confab-lean" --spawn "janus:$JOUT/janus-tuned" --runs "$RUNS" \
      --duration "$DURATION" --warmup "$WARMUP" --ramp-timeout "$ramp" --simulcast false \
      webinar --viewers "$viewers" || continue
    after=$(load)
    row=$(jq -r "$JQ_LIB"'
      (.runs[0] | map(.forwarded_per_cpu_s) | med) as $l
      | (.runs[1] | map(.forwarded_per_cpu_s) | med) as $j
      | (.runs[0] | map(.rss_per_participant_kib) | med) as $lr
      | (.runs[1] | map(.rss_per_participant_kib) | med) as $jr
      | "\($l | k)|\($j | k)|" +
        (if $l and $j and $j > 0 then "\($l / $j * 100 | round / 100)×" else "n/a" end) +
        "|\($lr | r0) / \($jr | r0) KiB|" +
        "\(.runs[0] | map(.lost) | add) / \(.runs[1] | map(.lost) | add)|" +
        "\(.runs[0] | map(.latency_us_p99) | med | ms) / \(.runs[1] | map(.latency_us_p99) | med | ms) ms|" +
        "\([.runs[][] | select(.loader_starved == true)] | length) of \([.runs[][]] | length)"' "$json")
    IFS='|' read -r l j ratio rss lost p99 starved <<<"$row"
    JROWS+=("| 1 → $viewers, no simulcast | $l | $j | **$ratio** | $rss | $lost | $p99 | $starved | $before → $after |")
  done
fi

echo
echo "Issue 16's table: scripts/bench-lean.sh, $START–$(date -u +%H:%M) UTC, RUNS=$RUNS alternating" \
  "runs per path, ${DURATION} s windows after ${WARMUP} s of warm-up, estimation on, $(nproc) cores" \
  "(server on CPUs ${SERVER_CPUS:-any} at nice ${SERVER_NICE:-0}, tester on ${TESTER_CPUS:-any});" \
  "load average (1/5/15 min) before → after each scenario in the last column."
echo
if [ "${#ROWS[@]}" -gt 0 ]; then
  echo "| scenario | path | fwd pkt/s | fwd pkt per CPU-s, median [min, max] | ceiling, same shape and batch, feedback read every ${FEEDBACK_MS} ms (median [min, max] of $CEILING_RUNS runs) | of ceiling | lost | latency p50 / p99 | SFU-added p50 / p99 / max (server) | RSS / participant | datagrams per send call | tester CPU, its wait for a CPU | clean runs | load |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  for r in "${ROWS[@]}"; do echo "$r"; done
fi
if [ "${#JROWS[@]}" -gt 0 ]; then
  echo
  echo "| webinar | lean fwd/CPU-s | Janus event_loops = 2 | lean ÷ Janus | RSS / participant lean / Janus | lost lean / Janus | p99 lean / Janus | runs with the tester starved | load |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for r in "${JROWS[@]}"; do echo "$r"; done
fi
say "load after: $(load); uptime: $(uptime)"
