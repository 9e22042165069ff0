#!/usr/bin/env bash
# Browser test of the dashboard: Debian's headless Chromium driven by playwright-core, against the
# real `steward serve` on a free port and a temporary SQLite file, and a second one in gateway
# mode in front of it (for the Upstreams view; always on its own temporary SQLite file).
#
#   tests/browser/run.sh                     # uses $CARGO_TARGET_DIR/debug/steward (build it first)
#   STEWARD_BIN=path/to/steward tests/browser/run.sh
#   tests/browser/run.sh --docs-screenshot   # instead of the test: regenerate docs/dashboard.png
#   STEWARD_BROWSER_DATABASE=postgres://... tests/browser/run.sh   # on that (empty) database instead
#
# Installs what it needs when missing: chromium (apt-get) and playwright-core (npm ci).
# Screenshots: target/screenshots/. Last line: `N passed, N failed`; exit code non-zero on failure.
set -euo pipefail

script="dashboard.test.mjs"
if [[ "${1:-}" == "--docs-screenshot" ]]; then
    script="docs-screenshot.mjs"
elif [[ $# -gt 0 ]]; then
    echo "usage: $0 [--docs-screenshot]" >&2
    exit 2
fi

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/steward-target}"
STEWARD_BIN="${STEWARD_BIN:-$CARGO_TARGET_DIR/debug/steward}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
export SCREENSHOT_DIR="${SCREENSHOT_DIR:-$root/target/screenshots}"

if [[ ! -x "$STEWARD_BIN" ]]; then
    echo "no steward binary at $STEWARD_BIN: run \`cargo build\` (or set STEWARD_BIN)" >&2
    exit 1
fi

if [[ ! -x "$CHROMIUM" ]]; then
    echo "== installing chromium (Debian package)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q chromium
fi
"$CHROMIUM" --version

echo "== npm ci (playwright-core; it uses the system chromium, never downloads a browser)"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
(cd "$here" && { npm ci --no-audit --no-fund --loglevel=error || npm install --no-audit --no-fund --loglevel=error; })

work="$(mktemp -d)"
server_pid=""
gateway_pid=""
stop() {
    local pid="$1"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
}
cleanup() {
    stop "$gateway_pid"
    stop "$server_pid"
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

database="${STEWARD_BROWSER_DATABASE:-sqlite://$work/steward.db}"

# Starts `steward serve` with arguments "$@" on a free port, logging to $work/$log.*; sets $url
# and $pid (empty url: it did not start).
start_steward() {
    (cd "$work" && exec env -u STEWARD_CONFIG NO_COLOR=1 "$STEWARD_BIN" serve --listen 127.0.0.1:0 \
        "$@" >"$work/$log.stdout.log" 2>"$work/$log.stderr.log") &
    pid=$!
    url=""
    for _ in $(seq 1 300); do
        if line="$(grep -m1 -o 'steward listening on http://[^ ]*' "$work/$log.stdout.log" 2>/dev/null)"; then
            url="${line#steward listening on }"
            url="${url%/}"
            return
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "steward ($log) did not print its address; stderr:" >&2
    tail -n 40 "$work/$log.stderr.log" >&2 || true
}

echo "== starting $STEWARD_BIN serve on a free port, database ${database%%\?*}"
log=server start_steward --database "$database"
server_pid=$pid
if [[ -z "$url" ]]; then
    echo "0 passed, 1 failed"
    exit 1
fi
echo "== steward listening on $url"
server_url="$url"

gateway_url=""
if [[ "$script" == "dashboard.test.mjs" ]]; then
    # Gateway mode for the Upstreams view: in front of the server above (a real MCP server)
    # and of an address where nothing listens (port 9), whose URL carries credentials.
    echo "== starting a second steward in gateway mode in front of it (its own SQLite file)"
    log=gateway start_steward --database "sqlite://$work/gateway.db" --no-board \
        --upstream "board=$server_url/mcp" --upstream "gone=http://operator:s3cret@127.0.0.1:9/mcp"
    gateway_pid=$pid
    gateway_url="$url"
    if [[ -z "$gateway_url" ]]; then
        echo "0 passed, 1 failed"
        exit 1
    fi
    echo "== gateway listening on $gateway_url"
fi
url="$server_url"

status=0
STEWARD_URL="$url" STEWARD_GATEWAY_URL="$gateway_url" node "$here/$script" || status=$?
if [[ $status -ne 0 ]]; then
    echo "== last lines of the server's stderr" >&2
    tail -n 30 "$work/server.stderr.log" >&2 || true
fi
exit "$status"
