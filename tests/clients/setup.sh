#!/usr/bin/env bash
# Installs the real MCP clients tests/clients.rs drives, pinned, into this folder:
# the TypeScript SDK (npm, node_modules/) and the Python SDK (PyPI, .venv/).
# Without them those tests print a skip message and pass.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
echo "== npm ci (@modelcontextprotocol/sdk 1.32.2)"
npm ci --no-audit --no-fund --loglevel=error
echo "== python venv (mcp 2.3.0)"
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check "mcp==2.3.0"
