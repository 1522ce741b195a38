#!/usr/bin/env bash
# Install everything the project needs, from its own files: Poetry (in its own venv),
# the locked Python dependencies (into .venv), and the web toolchain when Node is there.
#
#   bash scripts/setup.sh            says what it installs
#   bash scripts/setup.sh --quiet    says nothing unless something fails (scripts/demo.sh)
# The installers' own output (Poetry's, pip's build-backend warnings) goes to a temporary
# log, shown only when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
QUIET=0
[ "${1:-}" = "--quiet" ] && QUIET=1
LOG="$(mktemp -t lsp-setup-XXXXXX)"
trap 'rm -f "$LOG"' EXIT
say() { [ "$QUIET" = 1 ] || echo "$@"; }
# Runs an installer step with its output in the log; on failure shows the log and stops.
# A step that takes a while says so every 10 s (unless --quiet), so a first set-up is not
# a minute of silence.
quietly() {
  "$@" >>"$LOG" 2>&1 &
  local pid=$! started=$SECONDS shown=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 0.5
    if [ $(( SECONDS - started )) -ge $(( shown + 10 )) ] && kill -0 "$pid" 2>/dev/null; then
      shown=$(( SECONDS - started ))
      say "    ... still installing (${shown} s)"
    fi
  done
  if ! wait "$pid"; then
    echo "error: set-up failed: $*" >&2
    tail -n 40 "$LOG" >&2
    exit 1
  fi
}

POETRY_HOME="${POETRY_HOME:-$HOME/.cache/label-studio-pachyderm/poetry}"
if ! command -v poetry >/dev/null 2>&1 && [ ! -x "$POETRY_HOME/bin/poetry" ]; then
  say "==> installing Poetry into $POETRY_HOME"
  quietly python3 -m venv "$POETRY_HOME"
  quietly "$POETRY_HOME/bin/pip" install --quiet 'poetry>=2.1,<3'
fi
POETRY="$(command -v poetry || echo "$POETRY_HOME/bin/poetry")"

say "==> installing Python dependencies (poetry.lock) into .venv"
POETRY_VIRTUALENVS_IN_PROJECT=true quietly "$POETRY" install --no-interaction --quiet
