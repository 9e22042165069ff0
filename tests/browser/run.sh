#!/usr/bin/env bash
# Browser test of the dashboard: Debian's headless Chromium driven by playwright-core, against the
# real `steward serve` on a free port and a temporary SQLite file.
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
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

database="${STEWARD_BROWSER_DATABASE:-sqlite://$work/steward.db}"
echo "== starting $STEWARD_BIN serve on a free port, database ${database%%\?*}"
(cd "$work" && exec env -u STEWARD_CONFIG NO_COLOR=1 "$STEWARD_BIN" serve --listen 127.0.0.1:0 \
    --database "$database" >"$work/stdout.log" 2>"$work/stderr.log") &
server_pid=$!

url=""
for _ in $(seq 1 300); do
    if line="$(grep -m1 -o 'steward listening on http://[^ ]*' "$work/stdout.log" 2>/dev/null)"; then
        url="${line#steward listening on }"
        break
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
if [[ -z "$url" ]]; then
    echo "steward did not print its address; stderr:" >&2
    tail -n 40 "$work/stderr.log" >&2 || true
    echo "0 passed, 1 failed"
    exit 1
fi
url="${url%/}"
echo "== steward listening on $url"

status=0
STEWARD_URL="$url" node "$here/$script" || status=$?
if [[ $status -ne 0 ]]; then
    echo "== last lines of the server's stderr" >&2
    tail -n 30 "$work/stderr.log" >&2 || true
fi
exit "$status"
