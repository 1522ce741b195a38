#!/usr/bin/env bash
# Install everything the project needs, from its own files: Poetry (in its own venv),
# the locked Python dependencies (into .venv), and the web toolchain when Node is there.
set -euo pipefail
cd "$(dirname "$0")/.."

POETRY_HOME="${POETRY_HOME:-$HOME/.cache/label-studio-pachyderm/poetry}"
if ! command -v poetry >/dev/null 2>&1 && [ ! -x "$POETRY_HOME/bin/poetry" ]; then
  echo "==> installing Poetry into $POETRY_HOME"
  python3 -m venv "$POETRY_HOME"
  "$POETRY_HOME/bin/pip" install --quiet 'poetry>=2.1,<3'
fi
POETRY="$(command -v poetry || echo "$POETRY_HOME/bin/poetry")"

echo "==> installing Python dependencies (poetry.lock) into .venv"
POETRY_VIRTUALENVS_IN_PROJECT=true "$POETRY" install --no-interaction --quiet
