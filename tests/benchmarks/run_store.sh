#!/usr/bin/env bash
# Ours (tests/benchmarks/store.py) and the peer (eventsourcing 9.5.6) on the same workload,
# same machine, same run; then the ratio table.
#
#   bash tests/benchmarks/run_store.sh [N] [POSTGRES_ADMIN_URL]
#   bash tests/benchmarks/run_store.sh 20000 postgresql://dtma:dtma@127.0.0.1:5432/postgres
#
# N defaults to 20000. Without a URL only SQLite is measured. The peer's venv is made once at
# $PEER_VENV (default /tmp/dtma-bench-peer-venv); ours runs under $DTMA_PYTHON (default the
# project's .venv). Backends are interleaved (ours SQLite, peer SQLite, ours PostgreSQL, peer
# PostgreSQL) so that each pair is measured close together in time.
set -euo pipefail

N="${1:-20000}"
PG_URL="${2:-}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OURS_PY="${DTMA_PYTHON:-$ROOT/.venv/bin/python}"
PEER_VENV="${PEER_VENV:-/tmp/dtma-bench-peer-venv}"
PEER_PY="$PEER_VENV/bin/python"

if [ ! -x "$PEER_PY" ]; then
    echo "# creating the peer's venv at $PEER_VENV" >&2
    python3 -m venv "$PEER_VENV"
    "$PEER_PY" -m pip install --quiet --disable-pip-version-check \
        'eventsourcing==9.5.6' 'psycopg[binary,pool]' pydantic >&2
fi

OUT="$(mktemp -d "${TMPDIR:-/tmp}/dtma-bench-out.XXXXXX")"
trap 'rm -rf "$OUT"' EXIT
: >"$OUT/ours.txt"
: >"$OUT/peer.txt"

echo "# N=$N, $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%M:%SZ), load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "# peer: eventsourcing $("$PEER_PY" -c 'import importlib.metadata as m; print(m.version("eventsourcing"))')," \
    "SQLite $("$PEER_PY" -c 'import sqlite3; print(sqlite3.sqlite_version)'); ours: SQLite" \
    "$("$OURS_PY" -c 'import sqlite3; print(sqlite3.sqlite_version)')" >&2

backends=(sqlite)
if [ -n "$PG_URL" ]; then
    backends+=(postgres)
fi
for backend in "${backends[@]}"; do
    args=(--n "$N" --backend "$backend")
    if [ -n "$PG_URL" ]; then
        args+=(--postgres "$PG_URL")
    fi
    "$OURS_PY" "$HERE/store.py" "${args[@]}" | tee -a "$OUT/ours.txt"
    "$PEER_PY" "$HERE/peer_eventsourcing.py" "${args[@]}" | tee -a "$OUT/peer.txt"
done

echo
echo "ratios (higher is better for ours; absolute figures vary with the machine's load):"
"$OURS_PY" "$HERE/ratios.py" "$OUT/ours.txt" "$OUT/peer.txt"
