#!/usr/bin/env bash
# End-to-end walkthrough of the Pachyderm storage in a real Label Studio:
#
#   bash web/e2e/run-walkthrough.sh
#
# Runs scripts/demo.sh (a local PFS server, Label Studio with the plugin, the demo
# project), each server on a free port, in a throwaway directory; waits for its
# printed instructions; runs web/e2e/walkthrough.spec.mjs in headless Chromium,
# which follows them first; stops everything and removes the directory however
# the run ends. Screenshots go to docs/images/.
#
# Needs the project's .venv (bash scripts/setup.sh). Installs what the browser
# side needs when missing: Debian's chromium (apt-get) and web/node_modules (npm ci).
#
# Environment: LS_EMAIL, LS_PASSWORD (the admin account created at start),
# CHROMIUM (default /usr/bin/chromium), SCREENSHOT_DIR, KEEP_WORKDIR=1 (keep the
# temporary directory and its logs), STARTUP_TIMEOUT (seconds, default 600),
# ARTIFACT_DIR (where a failed step leaves its screenshot; default $TMPDIR or /tmp).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$ROOT/.venv/bin"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
LS_EMAIL="${LS_EMAIL:-e2e@example.com}"
LS_PASSWORD="${LS_PASSWORD:-walkthrough-pass-1}"
STARTUP_TIMEOUT="${STARTUP_TIMEOUT:-600}"
START=$(date +%s)

log() { printf '[walkthrough %3ss] %s\n' "$(( $(date +%s) - START ))" "$*"; }

if [ ! -x "$BIN/label-studio-pachyderm" ]; then
  echo "error: $BIN/label-studio-pachyderm not found; run: bash scripts/setup.sh" >&2
  exit 2
fi

# ---------------------------------------------------------------- browser side
if [ ! -x "$CHROMIUM" ]; then
  log "installing chromium (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  CHROMIUM=/usr/bin/chromium
fi
if [ ! -d "$ROOT/web/node_modules" ]; then
  log "installing web/node_modules (npm ci)"
  (cd "$ROOT/web" && npm ci --no-audit --no-fund)
fi

# ---------------------------------------------------------------- servers
WORK="$(mktemp -d "${TMPDIR:-/tmp}/ls-pachyderm-walkthrough.XXXXXX")"
DEMO_PID=""

# scripts/demo.sh runs under setsid, so it leads its own process group and stopping
# the group stops both servers it started; only that group is signalled.
stop_group() {
  local pid="$1"
  [ -n "$pid" ] || return 0
  kill -TERM -- "-$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 -- "-$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_group "$DEMO_PID"
  if [ "$status" -ne 0 ] && [ -f "$WORK/demo/label-studio.log" ]; then
    echo "---- last lines of the Label Studio log" >&2
    tail -n 40 "$WORK/demo/label-studio.log" >&2 || true
    echo "---- last lines of the PFS server log" >&2
    tail -n 20 "$WORK/demo/pfs.log" >&2 || true
  fi
  if [ "${KEEP_WORKDIR:-0}" = 1 ]; then
    log "kept $WORK"
  else
    rm -rf "$WORK"
  fi
  log "done (exit $status)"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Three distinct free ports, chosen by the OS: the PFS server, Label Studio, and the relay
# web/e2e/steps/outage.mjs puts in front of the PFS server (and takes down).
read -r PFS_PORT LS_PORT RELAY_PORT < <("$BIN/python" - <<'PY'
import socket
sockets = [socket.socket() for _ in range(3)]
for s in sockets:
    s.bind(('127.0.0.1', 0))
print(*(s.getsockname()[1] for s in sockets))
for s in sockets:
    s.close()
PY
)

# The servers start THROUGH scripts/demo.sh, as a newcomer starts them: the local PFS
# server, Label Studio with the plugin, the demo project; its printed block (the URL,
# the login, the command) is what the walkthrough's first steps follow.
# PACHYDERM_ALLOWED_HOSTS: besides the PFS server (demo.sh allows it), 127.0.0.1:1,
# where nothing listens, so the walkthrough's "unreachable pachd" check reaches the
# dial instead of Label Studio's SSRF refusal; and 127.0.0.1:$RELAY_PORT, the outage steps' relay.
# start_demo OUTPUT: scripts/demo.sh in the background, its output in OUTPUT; DEMO_PID is its group.
start_demo() {
  (
    cd "$WORK"
    export DEMO_DATA_DIR="$WORK/demo" PFS_PORT LS_PORT LS_USERNAME="$LS_EMAIL" LS_PASSWORD
    export PACHYDERM_ALLOWED_HOSTS="127.0.0.1:1,127.0.0.1:$RELAY_PORT" DEMO_STARTUP_TIMEOUT="$STARTUP_TIMEOUT"
    exec setsid bash "$ROOT/scripts/demo.sh" >"$1" 2>&1
  ) &
  DEMO_PID=$!
}

# wait_for_block OUTPUT: until demo.sh has printed its instructions (fails if it stops first).
wait_for_block() {
  local deadline=$(( $(date +%s) + STARTUP_TIMEOUT + 120 ))
  until grep -q '^ *Then run:' "$1" 2>/dev/null; do
    if ! kill -0 "$DEMO_PID" 2>/dev/null; then
      echo "error: scripts/demo.sh exited before it printed its instructions:" >&2
      cat "$1" >&2
      exit 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "error: scripts/demo.sh printed no instructions within $(( STARTUP_TIMEOUT + 120 ))s:" >&2
      cat "$1" >&2
      exit 1
    fi
    sleep 1
  done
}

log "scripts/demo.sh: PFS server on 127.0.0.1:$PFS_PORT, Label Studio on port $LS_PORT (a fresh database: the first start applies all migrations)"
start_demo "$WORK/demo.out"
wait_for_block "$WORK/demo.out"
log "demo ready"

# ---------------------------------------------------------------- the walkthrough
log "running web/e2e/walkthrough.spec.mjs"
set +e
LS_URL="http://localhost:$LS_PORT" LS_EMAIL="$LS_EMAIL" LS_PASSWORD="$LS_PASSWORD" PFS_PORT="$PFS_PORT" RELAY_PORT="$RELAY_PORT" \
  DEMO_OUTPUT="$WORK/demo.out" REPO_ROOT="$ROOT" \
  CHROMIUM="$CHROMIUM" ARTIFACT_DIR="${ARTIFACT_DIR:-${TMPDIR:-/tmp}}" \
  PLUGIN_BIN="$BIN/label-studio-pachyderm" PYTHON="$BIN/python" \
  node "$ROOT/web/e2e/walkthrough.spec.mjs"
status=$?
set -e
[ "$status" -eq 0 ] || exit "$status"

# ---------------------------------------------------------------- the same command, a second time
# What a newcomer does the next day: stop the demo, run it again. It must reuse the project,
# its storages and the data (the same URL, no set-up of its own), and print no more noise.
log "stopping the demo; scripts/demo.sh again, on the same data"
stop_group "$DEMO_PID"
start_demo "$WORK/demo-again.out"
wait_for_block "$WORK/demo-again.out"
first="$(grep -m1 '^ *Open:' "$WORK/demo.out")"
again="$(grep -m1 '^ *Open:' "$WORK/demo-again.out")"
if [ "$first" != "$again" ] || ! grep -q '^==> reusing the project and storages of an earlier run' "$WORK/demo-again.out"; then
  echo "error: the second run of scripts/demo.sh did not reuse the first one's project:" >&2
  cat "$WORK/demo-again.out" >&2
  exit 1
fi
# The walkthrough labeled one of the demo's four images: the block counts the files and what is left.
if ! grep -q 'project "Pachyderm demo", 4 images on images@master, 3 of them to label\.' "$WORK/demo-again.out"; then
  echo "error: the second run of scripts/demo.sh did not count 4 images and 3 left to label:" >&2
  grep 'Label Studio is ready' "$WORK/demo-again.out" >&2 || cat "$WORK/demo-again.out" >&2
  exit 1
fi
DEMO_OUTPUT="$WORK/demo-again.out" node --input-type=module -e "
  import { readFileSync } from 'node:fs';
  import { demoNoise } from '$ROOT/web/e2e/lib/demo-block.mjs';
  const noise = demoNoise(readFileSync(process.env.DEMO_OUTPUT, 'utf8'));
  if (noise.length) { console.error('error: the second run of scripts/demo.sh printed noise:', noise); process.exit(1); }
"
log "the second run reused the project ($again)"
