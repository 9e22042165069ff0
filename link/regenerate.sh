#!/bin/bash
# Rewrites link/steward.order from what a release build of Steward runs: start-up, find_tasks's
# text search on SQLite and PostgreSQL (their search code differs: SQLite's is FTS5) and
# find_projects, under load, shutdown (callgrind, names not demangled), hottest first, only
# names the binary has. Needs valgrind, nm, python3 and a PostgreSQL server.
# Usage: link/regenerate.sh [POSTGRES_URL]   (after `cargo build --release -p steward -p steward-bench`)
# STEWARD_BIN=PATH profiles that build of the same code instead of the target directory's.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
postgres="${1:-postgres://postgres@127.0.0.1:5432/postgres}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bin="$work/steward"
cp "${STEWARD_BIN:-$target/release/steward}" "$bin"
cat > "$work/callgrind-steward" <<WRAPPER
#!/bin/bash
exec valgrind --tool=callgrind --demangle=no --dump-instr=no --collect-jumps=no --callgrind-out-file=$work/callgrind.%p "$bin" "\$@"
WRAPPER
chmod +x "$work/callgrind-steward"
bench=("$target/release/steward-bench" --no-build --steward-bin "$work/callgrind-steward" --quick --tasks 200)
"${bench[@]}" -n 300 --warmup 30 --args '{"query":"cache"}' --postgres "$postgres" run >&2
"${bench[@]}" -n 300 --warmup 30 --args '{"query":"cache"}' run >&2
"${bench[@]}" -n 200 --warmup 20 --tool find_projects --args '{"per_page":10}' run >&2
nm "$bin" | awk '$2 ~ /^[tTwW]$/ {print $3}' > "$work/names"
python3 - "$bin" "$work/names" "$work"/callgrind.* > "$work/order" <<'PY'
import collections, re, sys
binary, names, files = sys.argv[1], sys.argv[2], sys.argv[3:]
known = set(open(names).read().split())
cost = collections.Counter()
for path in files:
    objects, functions = {}, {}
    current_object = function = function_object = None
    skip_next = False
    for line in open(path, errors="replace"):
        named = re.match(r"(c?)(ob|fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if named:
            table = objects if named.group(2) == "ob" else functions
            if named.group(4):
                table[named.group(3)] = named.group(4)
            if not named.group(1):
                if named.group(2) == "ob":
                    current_object = objects.get(named.group(3))
                else:
                    function, function_object = functions.get(named.group(3)), current_object
            continue
        if line.startswith("calls="):
            skip_next = True  # the next line is the call's inclusive cost, not the caller's own
            continue
        if line[:1].isdigit() or line[:1] in "+-*":
            if skip_next:
                skip_next = False
                continue
            fields = line.split()
            if function in known and function_object == binary and len(fields) >= 2:
                cost[function] += int(fields[1])
for function, _ in cost.most_common():
    print(function)
PY
{ sed -n '/^#/p' link/steward.order; cat "$work/order"; } > "$work/steward.order"
mv "$work/steward.order" link/steward.order
echo "link/steward.order: $(grep -vc '^#' link/steward.order) functions" >&2
