#!/usr/bin/env bash
# Creates .venv with DTMA and its dev tools installed (editable); reinstalls only when
# pyproject.toml is newer than the stamp .venv/.installed. PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
STAMP=.venv/.installed

say() { printf 'venv: %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { say "ERROR: $PYTHON is older than Python 3.11" >&2; exit 1; }

if ! .venv/bin/python -c '' 2>/dev/null; then
    rm -rf .venv
    say "creating .venv with $("$PYTHON" --version)"
    if ! "$PYTHON" -m venv .venv >/dev/null 2>&1; then
        # Debian ships venv's ensurepip separately.
        rm -rf .venv
        say "installing python3-venv"
        as_root apt-get -qq update
        as_root env DEBIAN_FRONTEND=noninteractive apt-get -qq -y install python3-venv >/dev/null
        "$PYTHON" -m venv .venv
    fi
fi

if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    say "installing dtma[dev] into .venv"
    .venv/bin/pip install -q -e '.[dev]'
    touch "$STAMP"
else
    say ".venv is up to date"
fi
