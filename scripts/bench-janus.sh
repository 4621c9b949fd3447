#!/usr/bin/env bash
# Side-by-side benchmark of confab against Janus's videoroom (issue 16), with confab-load's
# bots and media shape on both. A benchmark, not a test: nothing here runs in scripts/test.sh.
# Safe to run again and again.
#
#   bash scripts/bench-janus.sh setup             # install Janus (Debian), write the wrappers,
#                                                 # make the network namespace
#   bash scripts/bench-janus.sh smoke             # webinar 1 -> 3 on Janus; fails unless clean
#   bash scripts/bench-janus.sh compare [VIEWERS] [RUNS] [confab-load options...]
#                                                 # alternating runs: confab str0m, confab lean,
#                                                 # Janus defaults, Janus event_loops = 2
#   bash scripts/bench-janus.sh janus default|tuned --ws-port PORT
#                                                 # start Janus (what the wrappers exec)
#
# The wrappers live in target/bench-janus/. Janus gets a config directory of its own per port
# (under ${TMPDIR:-/tmp}/confab-janus/): only the videoroom plugin and the WebSocket transport,
# both bound to loopback; ICE-lite like confab, no STUN/TURN, no event handlers or loggers.
# "tuned" adds event_loops = 2 (one media loop per core of this 2-core machine instead of one
# thread per handle).
#
# Janus never gathers ICE candidates on a loopback interface (and then lets libnice use every
# other one), and libnice cannot send from a 127.x address put on another interface. So the
# runs happen in a network namespace of their own, $NETNS, which has `lo` and a veth pair
# (bench0, bench1) with nothing behind it. bench0 holds $MEDIA_IP (RFC 2544's benchmarking
# range); Janus gathers on bench0 only and the Janus bots bind there too (confab-load
# --janus-media-ip). The confab servers and their bots keep to 127.0.0.1 in the same namespace.
# No packet can leave the namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/bench-janus
NETNS=confab-janus
MEDIA_IP=198.18.0.1

install_janus() {
  if command -v janus >/dev/null; then return; fi
  echo "=== installing Janus from Debian ==="
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update
  $sudo apt-get install -y --no-install-recommends janus
  # The package enables a system service; this benchmark starts its own instances only.
  if command -v systemctl >/dev/null && systemctl is-active --quiet janus 2>/dev/null; then
    $sudo systemctl stop janus || true
  fi
}

# The namespace (idempotent): lo up, and bench0 (veth, peer bench1) with $MEDIA_IP only.
make_netns() {
  if ! ip netns list | grep -qw "$NETNS"; then
    ip netns add "$NETNS"
  fi
  ip -n "$NETNS" link set lo up
  if ! ip -n "$NETNS" link show bench0 >/dev/null 2>&1; then
    ip -n "$NETNS" link add bench0 type veth peer name bench1
  fi
  ip -n "$NETNS" addr flush dev bench0 scope global
  ip -n "$NETNS" addr add "$MEDIA_IP/32" dev bench0
  ip -n "$NETNS" link set bench0 up
  ip -n "$NETNS" link set bench1 up
}

# Where Debian puts Janus's modules.
janus_lib() {
  local d
  for d in /usr/lib/*/janus /usr/lib/janus; do
    if [ -d "$d/plugins" ]; then echo "$d"; return; fi
  done
  echo "bench-janus: Janus's module folder not found" >&2
  exit 2
}

# Comma-separated file names in $1 except $2.
all_but() {
  local keep=$2 f names=()
  for f in "$1"/*.so; do
    [ -e "$f" ] || continue
    [ "$(basename "$f")" = "$keep" ] || names+=("$(basename "$f")")
  done
  local IFS=,
  echo "${names[*]}"
}

# Writes a config directory for VARIANT (default|tuned) and PORT into $3.
write_config() {
  local variant=$1 port=$2 dir=$3 lib loops=""
  lib=$(janus_lib)
  [ "$variant" = tuned ] && loops="event_loops = 2"
  mkdir -p "$dir"
  cat >"$dir/janus.jcfg" <<EOF
general: {
	configs_folder = "$dir"
	plugins_folder = "$lib/plugins"
	transports_folder = "$lib/transports"
	events_folder = "$lib/events"
	loggers_folder = "$lib/loggers"
	debug_level = ${JANUS_DEBUG_LEVEL:-3}
	session_timeout = 60
	$loops
}
certificates: {
}
media: {
	rtp_port_range = "20000-40000"
}
nat: {
	nice_debug = false
	ice_lite = ${JANUS_ICE_LITE:-true}
	ice_enforce_list = "bench0"
	ignore_mdns = true
}
plugins: {
	disable = "$(all_but "$lib/plugins" libjanus_videoroom.so)"
}
transports: {
	disable = "$(all_but "$lib/transports" libjanus_websockets.so)"
}
loggers: {
	disable = "$(all_but "$lib/loggers" none)"
}
events: {
	broadcast = false
}
EOF
  cat >"$dir/janus.transport.websockets.jcfg" <<EOF
general: {
	json = "plain"
	ws = true
	ws_port = $port
	ws_ip = "127.0.0.1"
	wss = false
}
admin: {
	admin_ws = false
	admin_wss = false
}
EOF
  cat >"$dir/janus.plugin.videoroom.jcfg" <<EOF
general: {
}
EOF
}

run_janus() {
  local variant=${1:-} port=""
  case "$variant" in default|tuned) ;; *) echo "usage: $0 janus default|tuned --ws-port PORT" >&2; exit 2 ;; esac
  shift
  while [ $# -gt 0 ]; do
    case "$1" in
      --ws-port) port=${2:-}; shift 2 ;;
      *) echo "bench-janus: unknown option $1" >&2; exit 2 ;;
    esac
  done
  [[ "$port" =~ ^[0-9]+$ ]] || { echo "bench-janus: --ws-port PORT needed" >&2; exit 2; }
  # Outside the namespace there is no bench0, and Janus would gather on every other interface.
  if ! ip -br addr show bench0 2>/dev/null | grep -qF " $MEDIA_IP/"; then
    echo "bench-janus: no bench0 with $MEDIA_IP here; run inside the $NETNS namespace" \
      "(ip netns exec $NETNS ..., after: bash scripts/bench-janus.sh setup)" >&2
    exit 2
  fi
  local dir=${TMPDIR:-/tmp}/confab-janus/$variant-$port
  write_config "$variant" "$port" "$dir"
  # exec: confab-load reads Janus's CPU and memory from this pid.
  # JANUS_ARGS: more options, for debugging (e.g. -l for libnice logs with NICE_DEBUG=all).
  # shellcheck disable=SC2086
  exec janus -F "$dir" -C "$dir/janus.jcfg" --disable-colors ${JANUS_ARGS:-}
}

write_wrappers() {
  mkdir -p "$OUT"
  local v
  for v in default tuned; do
    printf '#!/bin/sh\nexec bash %q janus %s "$@"\n' "$ROOT/scripts/bench-janus.sh" "$v" >"$OUT/janus-$v"
    chmod +x "$OUT/janus-$v"
  done
  for v in str0m lean; do
    # Every bot connects from one address: lift the per-address connection limit (256).
    printf '#!/bin/sh\nCONFAB_MAX_CONNECTIONS_PER_ADDRESS=2000 CONFAB_SEND_PATH=%s exec %q "$@"\n' \
      "$v" "$ROOT/target/release/confab" >"$OUT/confab-$v"
    chmod +x "$OUT/confab-$v"
  done
}

build() {
  if [ ! -x target/release/confab-load ] || [ ! -x target/release/confab ]; then
    cargo build --release --bins
  fi
}

cmd=${1:-setup}
[ $# -gt 0 ] && shift
case "$cmd" in
  setup)
    install_janus
    write_wrappers
    make_netns
    echo "wrappers in $OUT: janus-default, janus-tuned, confab-str0m, confab-lean"
    ;;
  janus)
    run_janus "$@"
    ;;
  netns)
    make_netns
    ;;
  smoke)
    install_janus
    write_wrappers
    make_netns
    build
    # A viewer per kind of receiver: two decrypt (latency), one only counts.
    ip netns exec "$NETNS" target/release/confab-load --janus-media-ip "$MEDIA_IP" --spawn "janus:$OUT/janus-default" --decrypting 2 \
      --warmup 1 --duration 3 --ramp-timeout 20 --simulcast false webinar --viewers 3
    ;;
  compare)
    install_janus
    write_wrappers
    make_netns
    build
    viewers=${1:-100}
    runs=${2:-2}
    shift $(($# < 2 ? $# : 2))
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    ip netns exec "$NETNS" target/release/confab-load --janus-media-ip "$MEDIA_IP" \
      --spawn "$OUT/confab-str0m" --spawn "$OUT/confab-lean" \
      --spawn "janus:$OUT/janus-default" --spawn "janus:$OUT/janus-tuned" \
      --runs "$runs" "$@" webinar --viewers "$viewers"
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    ;;
  *)
    echo "usage: $0 setup|netns|smoke|compare [VIEWERS] [RUNS] [options]|janus default|tuned --ws-port PORT" >&2
    exit 2
    ;;
esac
