#!/usr/bin/env bash
# The one command that runs the service here: SQLite in ./dtma.db unless DTMA_DATABASE_URL says
# otherwise. Arguments go to `dtma serve`. Without DTMA_AUTH_TOKEN, the API token is kept in
# .dtma-token (mode 0600) and created on first use.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TOKEN_FILE=.dtma-token

# The service starts without Docker too (and answers 503 where it needs it).
bash scripts/setup-services.sh --docker-only \
    || echo "run.sh: WARNING: no Docker engine; starting the service anyway" >&2
bash scripts/venv.sh

if [ -z "${DTMA_AUTH_TOKEN:-}" ]; then
    if [ ! -s "$TOKEN_FILE" ]; then
        (umask 077 && .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(32))' >"$TOKEN_FILE")
        echo "run.sh: created an API token in $PWD/$TOKEN_FILE"
    else
        echo "run.sh: using the API token in $PWD/$TOKEN_FILE"
    fi
    chmod 600 "$TOKEN_FILE"
    DTMA_AUTH_TOKEN=$(<"$TOKEN_FILE")
fi
export DTMA_AUTH_TOKEN

exec .venv/bin/dtma serve "$@"
