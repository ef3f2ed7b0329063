#!/bin/bash
# demo.sh - the main job, until the volume engine lands: exercise a local
# directory store through the buoy CLI for real and report what it cost.
#
#   scripts/demo.sh [STORE_DIR]     (make demo runs it; default: a temp dir)
#
# Puts a few dozen files of mixed sizes, lists them, reads each back and
# compares SHA-256 sums, reads a byte range, shows a refused conditional
# write, deletes everything, and prints the request counts.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUOY=${BUOY:-$top/build/buoy}
work=$(mktemp -d /tmp/buoy-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
store=${1:-$work/store}
N=${DEMO_FILES:-40}

[ -x "$BUOY" ] || { echo "demo: $BUOY is not built; run make" >&2; exit 1; }
echo "== buoy demo: a local directory store at $store"
"$BUOY" version | head -1

declare -A total=([GET]=0 [PUT]=0 [HEAD]=0 [DELETE]=0 [LIST]=0)
bytes_up=0 bytes_down=0
# run_counted CMD...: runs a buoy command with --stats, adds its counts up.
run_counted() {
    local err=$work/stats.err rc=0
    "$@" --stats 2>"$err" || rc=$?
    local line
    line=$(grep '^requests:' "$err" || true)
    grep -v '^requests:' "$err" >&2 || true
    if [ -n "$line" ]; then
        for op in GET PUT HEAD DELETE LIST; do
            total[$op]=$((total[$op] + $(sed -E "s/.* $op ([0-9]+).*/\1/" <<<"$line")))
        done
        bytes_up=$((bytes_up + $(sed -E 's/.*bytes up ([0-9]+).*/\1/' <<<"$line")))
        bytes_down=$((bytes_down + $(sed -E 's/.*down ([0-9]+).*/\1/' <<<"$line")))
    fi
    return $rc
}

mkdir -p "$work/in" "$work/out"
first=$(seq -w 1 "$N" | head -1)
echo "-- writing $N files (1 byte to 2 MiB) with buoy store put"
t0=$(date +%s.%N)
for i in $(seq -w 1 "$N"); do
    size=$(( (RANDOM * RANDOM) % (2 << 20) + 1 ))
    head -c "$size" /dev/urandom >"$work/in/f$i"
    run_counted "$BUOY" store put "$store" "demo/f$i" "$work/in/f$i" >/dev/null
done
t1=$(date +%s.%N)
echo "-- listing"
run_counted "$BUOY" store ls -l "$store" demo/ >"$work/ls.out"
tail -3 "$work/ls.out"
echo "-- reading every file back and comparing SHA-256"
bad=0
for i in $(seq -w 1 "$N"); do
    run_counted "$BUOY" store get "$store" "demo/f$i" "$work/out/f$i"
    a=$(sha256sum <"$work/in/f$i") b=$(sha256sum <"$work/out/f$i")
    [ "$a" = "$b" ] || { echo "MISMATCH: demo/f$i"; bad=$((bad + 1)); }
done
t2=$(date +%s.%N)
echo "   $N files verified, $bad mismatches"
echo "-- a byte range: bytes 0-15 of demo/f$first"
run_counted "$BUOY" store get --range 0-15 "$store" demo/f$first "$work/range.out"
od -An -tx1 "$work/range.out"
echo "-- a conditional create of an existing key must be refused (exit 4)"
rc=0
run_counted "$BUOY" store put --if-none-match "$store" demo/f$first "$work/in/f$first" 2>&1 || rc=$?
[ "$rc" -eq 4 ] || { echo "demo: expected exit 4, got $rc" >&2; exit 1; }
echo "-- deleting everything"
keys=()
for i in $(seq -w 1 "$N"); do keys+=("demo/f$i"); done
run_counted "$BUOY" store rm "$store" "${keys[@]}"
left=$("$BUOY" store ls "$store" demo/ | wc -l)
echo "   $left objects left"

in_bytes=$(cat "$work"/in/* | wc -c)
echo
echo "== summary"
awk -v n="$N" -v b="$in_bytes" -v t0="$t0" -v t1="$t1" -v t2="$t2" 'BEGIN {
    printf "  files %d, %d bytes; put %.2fs, get+verify %.2fs (one buoy process per file)\n",
        n, b, t1 - t0, t2 - t1 }'
printf '  requests: PUT %d GET %d HEAD %d DELETE %d LIST %d\n' \
    "${total[PUT]}" "${total[GET]}" "${total[HEAD]}" "${total[DELETE]}" "${total[LIST]}"
printf '  bytes up %d, down %d\n' "$bytes_up" "$bytes_down"
awk -v p="$((total[PUT] + total[LIST]))" -v g="$((total[GET] + total[HEAD]))" 'BEGIN {
    printf "  on S3 these requests would cost $%.6f (PUT/LIST $0.005, GET/HEAD $0.0004 per 1000)\n",
        p * 0.005 / 1000 + g * 0.0004 / 1000 }'
[ "$bad" -eq 0 ] && [ "$left" -eq 0 ] || { echo "demo: FAILED" >&2; exit 1; }
echo "demo: OK"
