#!/usr/bin/env bash
# Installs the Python peer (the official `mcp` SDK's FastMCP server, uvicorn, aiosqlite) into
# bench/.venv. Idempotent: a second run only checks the imports. `steward-bench peer` runs it.
# Exit 3 when python3 is missing (the peer scenario is then skipped).
set -euo pipefail
bench_dir="$(cd "$(dirname "$0")/.." && pwd)"
venv="$bench_dir/.venv"
py="${PYTHON:-python3}"
if ! command -v "$py" >/dev/null 2>&1; then
    echo "setup.sh: $py not found; the peer scenario needs Python 3.10+" >&2
    exit 3
fi
if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import mcp, aiosqlite, uvicorn' >/dev/null 2>&1; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "mcp==2.3.0" "aiosqlite==0.22.1" "uvicorn==0.54.0"
fi
"$venv/bin/python" - <<'PY'
import importlib.metadata as m
print("peer venv ready: " + ", ".join(f"{p} {m.version(p)}" for p in ("mcp", "aiosqlite", "uvicorn", "starlette")))
PY
