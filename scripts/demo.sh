#!/usr/bin/env bash
# One command to a project ready to label, no Pachyderm cluster needed:
#   a local PFS server with sample images (images@master), an empty labels repo and the output
#   repo detections (its master branch has provenance on images@master);
#   the demo's model (label_studio_pachyderm/demo_model.py), which plays the detections pipeline:
#   every commit on images@master gets one prediction per image on detections@master;
#   Label Studio with the plugin and an admin account;
#   the project "Pachyderm demo": a bounding-box labeling config, a source storage on
#   images@master (synced, watching for new commits, reading predictions from detections) and a
#   target storage on labels@master.
# Once Label Studio answers, it prints where to go, the login, what to do and the command
# that shows the export commit. Ctrl-C stops everything; a second run reuses all of it.
#
# Environment (all optional): PFS_PORT (30650), LS_PORT (8080), LS_USERNAME, LS_PASSWORD,
# DEMO_DATA_DIR (.data in the checkout), PACHYDERM_ALLOWED_HOSTS (added to the demo's own
# entries), DEMO_STARTUP_TIMEOUT (seconds to wait for Label Studio, 600).
# The processes' output goes to DEMO_DATA_DIR/label-studio.log, pfs.log and model.log; their
# last lines are shown when something fails.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

PFS_PORT="${PFS_PORT:-30650}"
LS_PORT="${LS_PORT:-8080}"
USERNAME="${LS_USERNAME:-admin@example.com}"
PASSWORD="${LS_PASSWORD:-pachyderm123}"
DATA="${DEMO_DATA_DIR:-$ROOT/.data}"
TIMEOUT="${DEMO_STARTUP_TIMEOUT:-600}"
BIN="$ROOT/.venv/bin"
PFS_LOG="$DATA/pfs.log"
LS_LOG="$DATA/label-studio.log"
MODEL_LOG="$DATA/model.log"

say() { printf '==> %s\n' "$*"; }

say "setting up (scripts/setup.sh)"
bash scripts/setup.sh | sed -u 's/^/    /'
mkdir -p "$DATA/pfs" "$DATA/label-studio"

PFS_PID=""
MODEL_PID=""
LS_PID=""
STATUS_SHOWN=""
show_logs() {
  [ -n "$STATUS_SHOWN" ] && return 0
  STATUS_SHOWN=1
  for log in "$PFS_LOG" "$MODEL_LOG" "$LS_LOG"; do
    [ -s "$log" ] || continue
    echo "---- last lines of $log" >&2
    tail -n 30 "$log" >&2
  done
}
cleanup() {
  local status=$?
  trap - INT TERM EXIT
  [ "$status" -ne 0 ] && [ "$status" -ne 130 ] && [ "$status" -ne 143 ] && show_logs
  [ -n "$LS_PID" ] && kill "$LS_PID" 2>/dev/null || true
  [ -n "$MODEL_PID" ] && kill "$MODEL_PID" 2>/dev/null || true
  [ -n "$PFS_PID" ] && kill "$PFS_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  echo "stopped; data kept in $DATA"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
fail() { echo "error: $*" >&2; exit 1; }

# ------------------------------------------------------------------ the local PFS server
say "starting the local PFS server on port $PFS_PORT (log: $PFS_LOG)"
"$BIN/label-studio-pachyderm" pfs-server --host 127.0.0.1 --port "$PFS_PORT" --data-dir "$DATA/pfs" >>"$PFS_LOG" 2>&1 &
PFS_PID=$!
for _ in $(seq 100); do
  kill -0 "$PFS_PID" 2>/dev/null || fail "the local PFS server did not start; PFS_PORT=... picks another port"
  "$BIN/python" -c "import socket; socket.create_connection(('127.0.0.1', $PFS_PORT), 0.2)" 2>/dev/null && break
  sleep 0.2
done
kill -0 "$PFS_PID" 2>/dev/null || fail "the local PFS server stopped"
"$BIN/python" -m label_studio_pachyderm.demo seed "grpc://127.0.0.1:$PFS_PORT" | sed 's/^/    /'

# ------------------------------------------------------------------ the model
say "starting the demo's model, the detections pipeline (log: $MODEL_LOG)"
"$BIN/python" -m label_studio_pachyderm.demo_model follow "grpc://127.0.0.1:$PFS_PORT" >>"$MODEL_LOG" 2>&1 &
MODEL_PID=$!

# ------------------------------------------------------------------ Label Studio
# Label Studio's SSRF protection refuses loopback addresses: allow the demo's PFS server.
export PACHYDERM_ALLOWED_HOSTS="127.0.0.1:$PFS_PORT,localhost:$PFS_PORT${PACHYDERM_ALLOWED_HOSTS:+,$PACHYDERM_ALLOWED_HOSTS}"
export LABEL_STUDIO_BASE_DATA_DIR="$DATA/label-studio"
# A local demo: no check for a newer Label Studio on PyPI, no analytics, no error reports.
export LATEST_VERSION_CHECK="${LATEST_VERSION_CHECK:-false}" COLLECT_ANALYTICS="${COLLECT_ANALYTICS:-false}"
export SENTRY_DSN="${SENTRY_DSN:-}" FRONTEND_SENTRY_DSN="${FRONTEND_SENTRY_DSN:-}"
# A secret key kept with the data, so sessions survive a restart (and no warning about a random one).
if [ -z "${SECRET_KEY:-}" ]; then
  [ -s "$DATA/secret-key" ] || "$BIN/python" -c "import secrets; print(secrets.token_urlsafe(50))" >"$DATA/secret-key"
  SECRET_KEY="$(cat "$DATA/secret-key")"
  export SECRET_KEY
fi
if [ -s "$DATA/label-studio/label_studio.sqlite3" ]; then
  say "starting Label Studio on port $LS_PORT (log: $LS_LOG)"
else
  say "starting Label Studio on port $LS_PORT (log: $LS_LOG; this first start sets up its database, about a minute)"
fi
"$BIN/label-studio-pachyderm" start --no-browser --port "$LS_PORT" --username "$USERNAME" --password "$PASSWORD" \
  >>"$LS_LOG" 2>&1 &
LS_PID=$!
deadline=$(( $(date +%s) + TIMEOUT ))
until "$BIN/python" -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:$LS_PORT/health', timeout=2).status != 200)" 2>/dev/null; do
  kill -0 "$LS_PID" 2>/dev/null || fail "Label Studio stopped before it answered; LS_PORT=... picks another port"
  [ "$(date +%s)" -lt "$deadline" ] || fail "Label Studio did not answer on port $LS_PORT within ${TIMEOUT}s"
  sleep 1
done

# ------------------------------------------------------------------ the demo project
ADDRESS="grpc://localhost:$PFS_PORT"
say "preparing the project (labeling config, source storage on images@master with predictions from detections, target on labels@master)"
PROJECT_JSON="$(LS_PASSWORD="$PASSWORD" "$BIN/python" -m label_studio_pachyderm.demo project \
  --url "http://127.0.0.1:$LS_PORT" --email "$USERNAME" --pachd-address "$ADDRESS" 2>>"$LS_LOG")" \
  || fail "the demo project could not be prepared: $(tail -n 1 "$LS_LOG")"
read -r PROJECT_ID FILES UNLABELED REUSED < <("$BIN/python" -c "import json, sys; p = json.loads(sys.argv[1]); print(p['project'], p['files'], p['unlabeled'], 'no' if p['created'] else 'yes')" "$PROJECT_JSON")
[ "$REUSED" = yes ] && say "reusing the project and storages of an earlier run (data in $DATA)"
kill -0 "$MODEL_PID" 2>/dev/null || fail "the demo's model stopped (see $MODEL_LOG)"

# The block below is what the browser walkthrough follows (web/e2e/walkthrough.spec.mjs
# parses the "Open:", "Log in:" and "Then run:" lines): keep its shape.
cat <<MSG

  Label Studio is ready: project "Pachyderm demo", $FILES images on images@master, $UNLABELED of them to label.

    Open:      http://localhost:$LS_PORT/projects/$PROJECT_ID/data
    Log in:    $USERNAME / $PASSWORD
    Label:     click "Label All Tasks": the model's box is there; adjust it (or draw your own), click Submit.
               The annotation is exported at once: a new commit on labels@master.
    Then run:  .venv/bin/label-studio-pachyderm pfs inspect-commit labels@master --pachd-address $ADDRESS

  Every image opens with a pre-annotation: a box from the model of the "pipeline" detections
  (its output repo, detections@master, one prediction per image of each images@master commit).
  New images committed to images@master become tasks by themselves (the source storage watches
  the branch), and each gets its own pre-annotation within seconds.
  Ctrl-C stops Label Studio, the model and the PFS server; the data stays in $DATA.

MSG
wait "$LS_PID"
