#!/usr/bin/env bash
# The one command that makes this machine ready and runs every check and the whole test suite.
# Arguments go to pytest. Stops at the first failing step.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup-services.sh
bash scripts/venv.sh
export DTMA_TEST_POSTGRES_URL=${DTMA_TEST_POSTGRES_URL:-postgresql://dtma:dtma@127.0.0.1:5432/dtma_test}

step() {
    printf '==> %s\n' "$*"
    "$@"
}

step .venv/bin/ruff check .
step .venv/bin/ruff format --check .
step .venv/bin/mypy
step .venv/bin/lint-imports

status=0
step .venv/bin/pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "test.sh: pytest collected no tests; that is a failure" >&2
fi
exit "$status"
