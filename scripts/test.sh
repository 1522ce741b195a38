#!/usr/bin/env bash
# Set up (idempotent) and run every test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# Everything temporary of this run (Label Studio's data dir, pytest's tmp_path folders, the
# screenshots, whatever the tools put in $TMPDIR) lives in one directory, removed on exit,
# also after a failure or Ctrl-C.
run_tmp="$(mktemp -d -t lsp-test-XXXX)"
# A failed browser step's screenshot is kept on purpose: it goes where it went before ($TMPDIR or /tmp).
export ARTIFACT_DIR="${ARTIFACT_DIR:-${TMPDIR:-/tmp}}"
cleanup() { rm -rf "$run_tmp"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export TMPDIR="$run_tmp"

# Label Studio reads these when its settings load (before any test code runs): a throwaway
# data dir, and no crash reports, analytics or version checks from test runs.
export LABEL_STUDIO_BASE_DATA_DIR="${LABEL_STUDIO_BASE_DATA_DIR:-$run_tmp/label-studio}"
mkdir -p "$LABEL_STUDIO_BASE_DATA_DIR"
export SENTRY_DSN="" FRONTEND_SENTRY_DSN="" COLLECT_ANALYTICS=false LATEST_VERSION_CHECK=false
echo "==> backend tests on SQLite (pytest: real Label Studio, local PFS over gRPC, Redis + RQ worker)"
.venv/bin/pytest "$@"

# The Label Studio integration again on PostgreSQL, as production runs it (row locks,
# a real RQ worker process sharing the database). Set LSP_POSTGRES=0 to skip it.
if [ "${LSP_POSTGRES:-1}" != 0 ] && [ $# -eq 0 ]; then
  export POSTGRE_HOST="${POSTGRE_HOST:-127.0.0.1}" POSTGRE_PORT="${POSTGRE_PORT:-5432}"
  export POSTGRE_USER="${POSTGRE_USER:-postgres}" POSTGRE_PASSWORD="${POSTGRE_PASSWORD:-postgres}"
  export POSTGRE_NAME="${POSTGRE_NAME:-label_studio_pachyderm}"
  if .venv/bin/python -c "import psycopg; psycopg.connect(host='$POSTGRE_HOST', port=$POSTGRE_PORT, user='$POSTGRE_USER', password='$POSTGRE_PASSWORD', dbname='postgres', connect_timeout=3).close()" 2>/dev/null; then
    echo "==> backend tests on PostgreSQL $POSTGRE_HOST:$POSTGRE_PORT"
    DJANGO_DB=default .venv/bin/pytest tests/test_import.py tests/test_export.py tests/test_rq.py tests/test_openapi.py \
      tests/test_access.py tests/test_schemathesis.py tests/test_reliability.py tests/test_outbox.py \
      tests/test_sync_claims.py tests/test_proxy.py tests/test_versions.py tests/test_leases.py \
      tests/test_one_writer.py tests/test_outbox_sweep.py
  else
    echo "!! PostgreSQL is not reachable at $POSTGRE_HOST:$POSTGRE_PORT: the PostgreSQL lane did NOT run" >&2
    if [ -n "${CI:-}" ]; then exit 1; fi
  fi
fi

# With pytest arguments only that selection runs; without, every suite.
if [ $# -eq 0 ] && [ -f web/package.json ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "==> web tests (vitest + tsc)"
    # `npm ci` installs exactly package-lock.json and never rewrites it (the checkout stays clean).
    (cd web && npm ci --no-audit --no-fund --loglevel=error && npm test)
    # Real browser (Debian's chromium, installed when missing) against a real Label Studio
    # started with the plugin. Screenshots of test runs go to the run's temporary directory.
    shots="$run_tmp/screenshots"
    mkdir -p "$shots"
    echo "==> browser walkthrough: wizard, sync, labeling, export, errors (headless Chromium)"
    SCREENSHOT_DIR="$shots" bash web/e2e/run-walkthrough.sh
    echo "==> browser checks of the wizard registration and the legacy form (headless Chromium)"
    (cd web && SCREENSHOT_DIR="$shots" LS_PORT="${LS_SMOKE_PORT:-8099}" node e2e/register.spec.mjs)
  else
    echo "!! npm not found: the web/ tests did NOT run (install Node.js 20+ to run them)" >&2
    exit 1
  fi
fi
