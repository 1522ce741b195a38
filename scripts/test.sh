#!/usr/bin/env bash
# Set up (idempotent) and run every test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# Label Studio reads these when its settings load (before any test code runs): a throwaway
# data dir, and no crash reports, analytics or version checks from test runs.
export LABEL_STUDIO_BASE_DATA_DIR="${LABEL_STUDIO_BASE_DATA_DIR:-$(mktemp -d -t lsp-test-XXXX)}"
export SENTRY_DSN="" FRONTEND_SENTRY_DSN="" COLLECT_ANALYTICS=false LATEST_VERSION_CHECK=false
echo "==> backend tests (pytest, real Label Studio + local PFS over gRPC)"
.venv/bin/pytest "$@"

if [ -f web/package.json ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "==> web tests (vitest + tsc)"
    (cd web && npm ci --no-audit --no-fund --loglevel=error && npm test)
  else
    echo "!! npm not found: the web/ tests did NOT run (install Node.js 20+ to run them)" >&2
    exit 1
  fi
fi
