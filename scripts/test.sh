#!/usr/bin/env bash
# Set up (idempotent) and run the tests.
#
#   bash scripts/test.sh              every suite, as CI runs them: pytest on SQLite, pytest on
#                                     PostgreSQL, vitest + tsc, the browser checks
#   bash scripts/test.sh --quick      the inner loop: pytest on SQLite without the tests marked
#                                     slow, then vitest + tsc (no PostgreSQL, no browser)
#   bash scripts/test.sh ARGS...      pytest on SQLite with ARGS only (tests/test_import.py -k sync)
#
# The full run has two lanes side by side, since most of their time is spent waiting on
# servers, workers and timers: pytest on SQLite in the foreground, and in the background the
# PostgreSQL lane, then the pachd-layer tests (no database), then the web lane, whose output
# is printed once they end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# Everything temporary of this run (Label Studio's data dir, pytest's tmp_path folders, the
# screenshots, whatever the tools put in $TMPDIR) lives in one directory, removed on exit,
# also after a failure or Ctrl-C.
run_tmp="$(mktemp -d -t lsp-test-XXXX)"
# A failed browser step's screenshot is kept on purpose: it goes where it went before ($TMPDIR or /tmp).
export ARTIFACT_DIR="${ARTIFACT_DIR:-${TMPDIR:-/tmp}}"
background=""
cleanup() {
  if [ -n "$background" ]; then kill -- -"$background" 2>/dev/null || true; fi
  rm -rf "$run_tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export TMPDIR="$run_tmp"

# Label Studio reads these when its settings load (before any test code runs): a throwaway
# data dir, and no crash reports, analytics or version checks from test runs.
export LABEL_STUDIO_BASE_DATA_DIR="${LABEL_STUDIO_BASE_DATA_DIR:-$run_tmp/label-studio}"
mkdir -p "$LABEL_STUDIO_BASE_DATA_DIR"
export SENTRY_DSN="" FRONTEND_SENTRY_DSN="" COLLECT_ANALYTICS=false LATEST_VERSION_CHECK=false

# The Label Studio integration again on PostgreSQL, as production runs it (row locks, several
# processes sharing one database). Set LSP_POSTGRES=0 to skip it.
POSTGRES_TESTS=(tests/test_import.py tests/test_export.py tests/test_rq.py tests/test_openapi.py
  tests/test_access.py tests/test_schemathesis.py tests/test_reliability.py tests/test_outbox.py
  tests/test_sync_claims.py tests/test_proxy.py tests/test_versions.py tests/test_leases.py
  tests/test_one_writer.py tests/test_outbox_sweep.py tests/test_watch_replicas.py tests/test_rounds.py
  tests/test_predictions.py tests/test_process_death.py tests/test_inserts.py)

# Tests of the pachd client layer and the local PFS server: no Label Studio database. In the full
# run they go to the background lane, which would otherwise end minutes before the SQLite lane.
PACHD_TESTS=(tests/test_localpfs.py tests/test_localpfs_commits.py tests/test_localpfs_diff.py
  tests/test_localpfs_pachd212.py tests/test_localpfs_provenance.py tests/test_localpfs_subscribe.py
  tests/test_pachd_client.py tests/test_readahead.py tests/test_stalls.py tests/test_localpfs_transactions.py
  tests/test_localpfs_metadata.py)

lane_sqlite() {
  echo "==> backend tests on SQLite (pytest: real Label Studio, local PFS over gRPC, Redis + RQ worker)"
  .venv/bin/pytest "$@"
}

lane_pachd() {
  echo "==> tests of the pachd client layer and the local PFS server (pytest, no database)"
  .venv/bin/pytest -p no:cacheprovider "${PACHD_TESTS[@]}"
}

lane_postgres() {
  if [ "${LSP_POSTGRES:-1}" = 0 ]; then
    echo "!! LSP_POSTGRES=0: the PostgreSQL lane did NOT run"
    return 0
  fi
  export POSTGRE_HOST="${POSTGRE_HOST:-127.0.0.1}" POSTGRE_PORT="${POSTGRE_PORT:-5432}"
  export POSTGRE_USER="${POSTGRE_USER:-postgres}" POSTGRE_PASSWORD="${POSTGRE_PASSWORD:-postgres}"
  export POSTGRE_NAME="${POSTGRE_NAME:-label_studio_pachyderm}"
  if ! .venv/bin/python -c "import psycopg; psycopg.connect(host='$POSTGRE_HOST', port=$POSTGRE_PORT, user='$POSTGRE_USER', password='$POSTGRE_PASSWORD', dbname='postgres', connect_timeout=3).close()" 2>/dev/null; then
    echo "!! PostgreSQL is not reachable at $POSTGRE_HOST:$POSTGRE_PORT: the PostgreSQL lane did NOT run"
    if [ -n "${CI:-}" ]; then return 1; fi
    return 0
  fi
  echo "==> backend tests on PostgreSQL $POSTGRE_HOST:$POSTGRE_PORT"
  # Its own data dir: the SQLite lane runs at the same time.
  mkdir -p "$run_tmp/label-studio-postgres"
  LABEL_STUDIO_BASE_DATA_DIR="$run_tmp/label-studio-postgres" DJANGO_DB=default \
    .venv/bin/pytest -p no:cacheprovider "${POSTGRES_TESTS[@]}"
}

npm_ci() {
  # `npm ci` installs exactly package-lock.json and never rewrites it (the checkout stays clean).
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
}

lane_web() {
  if ! command -v npm >/dev/null 2>&1; then
    echo "!! npm not found: the web/ tests did NOT run (install Node.js 20+ to run them)"
    return 1
  fi
  echo "==> web tests (vitest + tsc)"
  npm_ci
  (cd web && npm test)
  # Real browser (Debian's chromium, installed when missing) against a real Label Studio
  # started with the plugin. Screenshots of test runs go to the run's temporary directory.
  shots="$run_tmp/screenshots"
  mkdir -p "$shots"
  echo "==> browser walkthrough: wizard, sync, labeling, export, errors (headless Chromium)"
  SCREENSHOT_DIR="$shots" bash web/e2e/run-walkthrough.sh
  echo "==> browser checks of the wizard registration and the legacy form (headless Chromium)"
  (cd web && SCREENSHOT_DIR="$shots" LS_PORT="${LS_SMOKE_PORT:-8099}" node e2e/register.spec.mjs)
}

# Seconds since $1, for the summary.
since() { echo $(( $(date +%s) - $1 )); }

if [ "${1:-}" = "--quick" ]; then
  shift
  started=$(date +%s)
  lane_sqlite -m "not slow" "$@"
  echo "==> web unit tests (vitest + tsc)"
  if [ -d web/node_modules ]; then (cd web && npm test); else npm_ci && (cd web && npm test); fi
  echo "==> quick lane passed in $(since "$started") s (the full run: bash scripts/test.sh)"
  exit 0
fi

# With pytest arguments only that selection runs.
if [ $# -gt 0 ]; then
  lane_sqlite "$@"
  exit 0
fi

started=$(date +%s)
background_log="$run_tmp/background-lanes.log"
# The PostgreSQL lane, the pachd-layer tests, then the web lane, in a process group of their own
# (so an interrupted run stops them too); each lane's time goes into the log.
set -m
(
  set +e
  t=$(date +%s); lane_postgres; pg=$?; echo "==> PostgreSQL lane: exit $pg after $(since "$t") s"
  t=$(date +%s); lane_pachd; pachd=$?; echo "==> pachd-layer lane: exit $pachd after $(since "$t") s"
  t=$(date +%s); lane_web; web=$?; echo "==> web lane: exit $web after $(since "$t") s"
  [ "$pg" = 0 ] && [ "$pachd" = 0 ] && [ "$web" = 0 ]
) >"$background_log" 2>&1 &
background=$!
set +m
echo "==> PostgreSQL, pachd-layer and web lanes started in the background (their output follows the SQLite lane's)"

set +e
lane_sqlite $(printf -- '--ignore=%s ' "${PACHD_TESTS[@]}")
sqlite=$?
echo "==> SQLite lane: exit $sqlite after $(since "$started") s"
wait "$background"
rest=$?
background=""
set -e
cat "$background_log"
echo "==> all lanes done in $(since "$started") s (SQLite exit $sqlite, PostgreSQL, pachd-layer and web exit $rest)"
[ "$sqlite" = 0 ] && [ "$rest" = 0 ]
