#!/usr/bin/env bash
# One command to a working demo, no Pachyderm cluster needed:
#   a local PFS server with sample images (images@master) and an empty labels repo,
#   and Label Studio with the plugin, an admin account, on http://localhost:8080.
# Ctrl-C stops both. Running it again reuses the data in .data/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

PFS_PORT="${PFS_PORT:-30650}"
LS_PORT="${LS_PORT:-8080}"
USERNAME="${LS_USERNAME:-admin@example.com}"
PASSWORD="${LS_PASSWORD:-pachyderm123}"
DATA="$PWD/.data"
mkdir -p "$DATA/pfs" "$DATA/label-studio"
BIN="$PWD/.venv/bin"

"$BIN/label-studio-pachyderm" pfs-server --host 127.0.0.1 --port "$PFS_PORT" --data-dir "$DATA/pfs" &
PFS_PID=$!
LS_PID=""
cleanup() {
  trap - INT TERM EXIT
  [ -n "$LS_PID" ] && kill "$LS_PID" 2>/dev/null || true
  kill "$PFS_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  echo "stopped; data kept in $DATA"
}
trap cleanup INT TERM EXIT

for _ in $(seq 50); do
  kill -0 "$PFS_PID" 2>/dev/null || { echo "error: the local PFS server did not start (see above); PFS_PORT=... picks another port" >&2; exit 1; }
  "$BIN/python" -c "import socket,sys; socket.create_connection(('127.0.0.1', $PFS_PORT), 0.2)" 2>/dev/null && break
  sleep 0.2
done
kill -0 "$PFS_PID" 2>/dev/null || { echo "error: the local PFS server stopped (see above)" >&2; exit 1; }
"$BIN/python" -m label_studio_pachyderm.demo "grpc://127.0.0.1:$PFS_PORT"

export LABEL_STUDIO_BASE_DATA_DIR="$DATA/label-studio"
export PACHYDERM_ALLOWED_HOSTS="127.0.0.1:$PFS_PORT,localhost:$PFS_PORT"
cat <<MSG

  Label Studio:  http://localhost:$LS_PORT   (login $USERNAME / $PASSWORD)
  pachd address: grpc://localhost:$PFS_PORT  (repos: images, labels)

  Next:
   1. Create a project with the "Object Detection with Bounding Boxes" template.
   2. Settings -> Cloud Storage -> Add Source Storage -> Pachyderm: address grpc://localhost:$PFS_PORT,
      repo images, Next; Import Method "Files", Next, Save (it syncs).
   3. Label a task, then Add Target Storage -> Pachyderm, repo labels, Save, Sync:
      .venv/bin/label-studio-pachyderm pfs list-file labels@master --pachd-address grpc://localhost:$PFS_PORT

MSG
"$BIN/label-studio-pachyderm" start --no-browser --port "$LS_PORT" --username "$USERNAME" --password "$PASSWORD" &
LS_PID=$!
wait "$LS_PID"
