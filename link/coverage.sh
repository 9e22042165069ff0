#!/bin/bash
# Checks that link/steward.order still names the functions of a release build: the share of its
# names that the binary has (nm). LLD skips a name it does not find without a word (build.rs
# passes --no-warn-symbol-ordering), so a new dependency or a changed crate hash would otherwise
# leave the hot code scattered again, unnoticed. Fails below 95 %.
# Usage: link/coverage.sh [RELEASE_BINARY [ORDER_FILE]]
#        (default: $CARGO_TARGET_DIR/release/steward, else target/release/steward; link/steward.order)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
binary="${1:-${CARGO_TARGET_DIR:-$root/target}/release/steward}"
order="${2:-$root/link/steward.order}"
min_percent=95
[ -f "$binary" ] || { echo "link/coverage.sh: no binary at $binary (build it with cargo build --release -p steward)" >&2; exit 2; }
[ -f "$order" ] || { echo "link/coverage.sh: no order file at $order" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export LC_ALL=C
# The names link/regenerate.sh writes: functions (t, T) and weak ones (w, W), mangled.
nm "$binary" | awk '$2 ~ /^[tTwW]$/ {print $3}' | sort -u > "$work/binary"
grep -v -e '^#' -e '^[[:space:]]*$' "$order" | sort -u > "$work/order"
listed=$(wc -l < "$work/order")
found=$(comm -12 "$work/order" "$work/binary" | wc -l)
if [ "$listed" -eq 0 ]; then
    echo "link/coverage.sh: $order lists no function" >&2
    exit 1
fi
percent=$(awk -v f="$found" -v l="$listed" 'BEGIN {printf "%.2f", 100 * f / l}')
echo "$order: $found of $listed names are in $binary ($percent %)"
if awk -v f="$found" -v l="$listed" -v m="$min_percent" 'BEGIN {exit !(100 * f < m * l)}'; then
    echo "link/coverage.sh: under $min_percent %: the hot functions are no longer placed together." >&2
    echo "Regenerate the file from this build with link/regenerate.sh (see docs/development.md) and commit it." >&2
    exit 1
fi
