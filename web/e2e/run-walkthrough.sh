#!/usr/bin/env bash
# End-to-end walkthrough of the Pachyderm storage in a real Label Studio:
#
#   bash web/e2e/run-walkthrough.sh
#
# Starts a local PFS server and Label Studio with the plugin, each on a free
# port, in a throwaway directory; waits until both answer; runs
# web/e2e/walkthrough.spec.mjs in headless Chromium; stops both and removes the
# directory however the run ends. Screenshots go to docs/images/.
#
# Needs the project's .venv (bash scripts/setup.sh). Installs what the browser
# side needs when missing: Debian's chromium (apt-get) and web/node_modules (npm ci).
#
# Environment: LS_EMAIL, LS_PASSWORD (the admin account created at start),
# CHROMIUM (default /usr/bin/chromium), SCREENSHOT_DIR, KEEP_WORKDIR=1 (keep the
# temporary directory and its logs), STARTUP_TIMEOUT (seconds, default 300),
# ARTIFACT_DIR (where a failed step leaves its screenshot; default $TMPDIR or /tmp).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$ROOT/.venv/bin"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
LS_EMAIL="${LS_EMAIL:-e2e@example.com}"
LS_PASSWORD="${LS_PASSWORD:-walkthrough-pass-1}"
STARTUP_TIMEOUT="${STARTUP_TIMEOUT:-300}"
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
PFS_PID=""
LS_PID=""

# Each server runs under setsid, so it leads its own process group and stopping
# the group stops anything it started; only these two groups are signalled.
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
  stop_group "$LS_PID"
  stop_group "$PFS_PID"
  if [ "$status" -ne 0 ] && [ -f "$WORK/label-studio.log" ]; then
    echo "---- last lines of the Label Studio log" >&2
    tail -n 40 "$WORK/label-studio.log" >&2 || true
    echo "---- last lines of the PFS server log" >&2
    tail -n 20 "$WORK/pfs.log" >&2 || true
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

# Two distinct free ports, chosen by the OS.
read -r PFS_PORT LS_PORT < <("$BIN/python" - <<'PY'
import socket
sockets = [socket.socket() for _ in range(2)]
for s in sockets:
    s.bind(('127.0.0.1', 0))
print(*(s.getsockname()[1] for s in sockets))
for s in sockets:
    s.close()
PY
)

mkdir -p "$WORK/pfs" "$WORK/label-studio"
log "PFS server on 127.0.0.1:$PFS_PORT"
setsid "$BIN/label-studio-pachyderm" pfs-server --host 127.0.0.1 --port "$PFS_PORT" \
  --data-dir "$WORK/pfs" >"$WORK/pfs.log" 2>&1 &
PFS_PID=$!

log "Label Studio on port $LS_PORT (a fresh database: the first start applies all migrations)"
# PACHYDERM_ALLOWED_HOSTS: Label Studio's SSRF protection refuses loopback
# addresses; allow the PFS server, and 127.0.0.1:1 (where nothing listens) so the
# walkthrough's "unreachable pachd" check reaches the dial instead of the SSRF refusal.
(
  cd "$WORK"
  export PACHYDERM_ALLOWED_HOSTS="127.0.0.1:$PFS_PORT,localhost:$PFS_PORT,127.0.0.1:1"
  export LABEL_STUDIO_BASE_DATA_DIR="$WORK/label-studio"
  # No error reporting, analytics or version check from a test run.
  export SENTRY_DSN='' FRONTEND_SENTRY_DSN='' COLLECT_ANALYTICS=false LATEST_VERSION_CHECK=false
  exec setsid "$BIN/label-studio-pachyderm" start --no-browser --port "$LS_PORT" \
    --username "$LS_EMAIL" --password "$LS_PASSWORD" >"$WORK/label-studio.log" 2>&1
) &
LS_PID=$!

wait_for() {
  local what="$1" pid="$2" probe="$3"
  local deadline=$(( $(date +%s) + STARTUP_TIMEOUT ))
  until eval "$probe" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "error: $what exited before it was ready" >&2
      return 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "error: $what not ready after ${STARTUP_TIMEOUT}s" >&2
      return 1
    fi
    sleep 1
  done
}

wait_for "the PFS server" "$PFS_PID" \
  "'$BIN/label-studio-pachyderm' pfs list-repo --pachd-address grpc://127.0.0.1:$PFS_PORT --timeout 2"
log "PFS server ready"
wait_for "Label Studio" "$LS_PID" \
  "'$BIN/python' -c 'import sys, urllib.request; sys.exit(urllib.request.urlopen(\"http://127.0.0.1:$LS_PORT/health\", timeout=2).status != 200)'"
log "Label Studio ready"

# ---------------------------------------------------------------- the walkthrough
log "running web/e2e/walkthrough.spec.mjs"
set +e
LS_URL="http://localhost:$LS_PORT" LS_EMAIL="$LS_EMAIL" LS_PASSWORD="$LS_PASSWORD" PFS_PORT="$PFS_PORT" \
  CHROMIUM="$CHROMIUM" ARTIFACT_DIR="${ARTIFACT_DIR:-${TMPDIR:-/tmp}}" \
  PLUGIN_BIN="$BIN/label-studio-pachyderm" PYTHON="$BIN/python" \
  node "$ROOT/web/e2e/walkthrough.spec.mjs"
status=$?
set -e
exit "$status"
