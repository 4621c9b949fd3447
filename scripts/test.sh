#!/usr/bin/env bash
# Runs every test confab has, installing what is missing first. Safe to run again and again.
#   bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s ===\n' "$*"; }

# The browsers (Chromium; firefox-esr, with Xvfb for the windows it shares as a screen), from
# Debian, installed only when one is missing.
install_browsers() {
  if [ -x /usr/bin/chromium ] && [ -x /usr/bin/firefox-esr ] && command -v Xvfb >/dev/null; then return; fi
  step "installing Chromium, firefox-esr and Xvfb from Debian"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update
  # A fresh machine can have half-configured packages that block any install.
  $sudo apt-get -y --fix-broken install
  $sudo apt-get install -y chromium firefox-esr xvfb
}

# ffmpeg/ffprobe check recordings; cmake builds libopus for the `opus` crate (opusic-sys);
# redis-server backs the cluster tests.
install_media_tools() {
  local missing=()
  command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing+=(ffmpeg)
  command -v cmake >/dev/null || missing+=(cmake)
  # The cluster tests start their own redis-server on a loopback port (issue 15).
  command -v redis-server >/dev/null || missing+=(redis-server)
  if [ ${#missing[@]} -eq 0 ]; then return; fi
  step "installing ${missing[*]} from Debian"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update
  $sudo apt-get install -y "${missing[@]}"
}

# The lean path's shaped-link browser scenarios (tests/browser/lean_net.test.mjs) build a network
# namespace (ip), cap it (tc), drop at random in it (nft: this kernel has no netem) and capture
# the wire (tcpdump). Without root they skip, so only root installs them.
install_net_tools() {
  [ "$(id -u)" -eq 0 ] || return 0
  local missing=()
  command -v ip >/dev/null && command -v tc >/dev/null || missing+=(iproute2)
  command -v nft >/dev/null || missing+=(nftables)
  command -v tcpdump >/dev/null || missing+=(tcpdump)
  if [ ${#missing[@]} -eq 0 ]; then return; fi
  step "installing ${missing[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y "${missing[@]}"
}

install_node_deps() {
  if ! command -v npm >/dev/null; then
    echo "npm is required for the browser tests (Node.js 18+)" >&2
    exit 1
  fi
  step "installing browser test dependencies (playwright-core, puppeteer-core, typescript)"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
}

install_browsers
install_media_tools
install_net_tools
install_node_deps

step "format"
cargo fmt --all -- --check

step "clippy"
cargo clippy --release --all-targets -- -D warnings

step "unit and integration tests"
cargo test --release

step "build the server for the browser tests"
cargo build --release --bins

step "type-check the web client (tsc, checkJs)"
tests/browser/node_modules/.bin/tsc -p jsconfig.json

step "browser end-to-end tests (headless Chromium; firefox-esr over WebDriver BiDi)"
(cd tests/browser && CONFAB_BIN="$PWD/../../target/release/confab" node --test --test-concurrency=1)
