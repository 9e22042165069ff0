#!/usr/bin/env bash
# Where Steward's CPU goes on the hot path: runs one `steward-bench run` under `perf record`
# (which follows the spawned steward process), then groups the steward process's samples by
# component (kernel, allocator, SQLite, sqlx, tokenizer, JSON, rmcp, hyper/tokio, ...).
#
#   bench/profile.sh [off|async|sync] [extra steward-bench options...]
#
# Needs `perf` (linux-perf). Uses the release binaries under $CARGO_TARGET_DIR (or target/).
set -euo pipefail
durability="${1:-async}"
shift || true
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
bench="$target/release/steward-bench"
[ -x "$bench" ] || { echo "build first: cargo build --release -p steward-bench" >&2; exit 2; }
command -v perf >/dev/null || { echo "perf is not installed" >&2; exit 2; }
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

perf record -F 999 -o "$out/perf.data" -- \
    "$bench" --no-build -n 10000 --warmup 1000 "$@" run --ledger-durability "$durability" >"$out/bench.txt" 2>&1 \
    || { cat "$out/bench.txt"; exit 1; }
grep '^run ' "$out/bench.txt" || true

# The steward process: the child whose command is the steward binary.
pid="$(perf report -i "$out/perf.data" --tasks 2>/dev/null | awk '$1==$2 && $NF ~ /steward/ && $NF !~ /bench/ {print $1; exit}')"
[ -n "$pid" ] || { echo "no steward process in the profile" >&2; exit 1; }

perf report -i "$out/perf.data" --pid "$pid" --no-children --sort dso,symbol --stdio -g none 2>/dev/null \
    | grep -E '^ +[0-9.]+%' > "$out/symbols.txt"

python3 - "$out/symbols.txt" <<'PY'
import re, sys
groups = [
    ("kernel: scheduler, futex, wakeups", r"\[k\] .*(schedule|futex|wake|switch|spin_unlock|irqentry|exit_to_user)"),
    ("kernel: TCP/loopback send+receive", r"\[k\] .*(tcp|ip_|sock|skb|net_|napi|dev_|softirq|sys_sendto|sys_recvfrom|writev|readv|copy_to_iter|copy_from_iter|loopback)"),
    ("kernel: files, WAL fsync, other", r"\[k\] "),
    ("tokenizer (tiktoken-rs, regex)", r"tiktoken|fancy_regex|regex_automata|regex::|bpe|byte_pair|aho_corasick"),
    ("SQLite engine (C)", r"sqlite3|pager|btree|wal[A-Z]|vdbe|balance_nonroot|Btree"),
    ("sqlx (Rust side, worker threads, rows)", r"sqlx|flume"),
    ("allocator (malloc/free/memmove)", r"malloc|free|_int_|memmove|memcpy|memset|realloc|unlink_chunk|consolidate|alloc::"),
    ("JSON (serde_json)", r"serde_json|serde::|format_escaped|ryu|itoa"),
    ("rmcp (MCP protocol, sessions, SSE)", r"rmcp"),
    ("hyper/axum/tower/http", r"hyper|axum|tower|http::|httparse|h2"),
    ("tokio runtime", r"tokio|mio"),
    ("tracing", r"tracing"),
    ("steward code", r"steward"),
    ("PostgreSQL client", r"postgres|sqlx_postgres"),
    ("libc/other", r"."),
]
tot = {}
for line in open(sys.argv[1]):
    m = re.match(r"\s+([0-9.]+)%\s+(.*)", line)
    if not m:
        continue
    pct, rest = float(m.group(1)), m.group(2)
    for name, pat in groups:
        if re.search(pat, rest):
            tot[name] = tot.get(name, 0.0) + pct
            break
print("\nshare of the steward process's CPU samples, by component:")
for name, pct in sorted(tot.items(), key=lambda kv: -kv[1]):
    print(f"  {pct:6.1f}%  {name}")
print("\ntop symbols:")
for line in open(sys.argv[1]).readlines()[:25]:
    print("  " + re.sub(r"\s{2,}", "  ", line.strip())[:150])
PY
