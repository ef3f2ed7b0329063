#!/bin/bash
# t1030-vol-gc.sh - buoy gc: a volume whose data was overwritten in small
# pieces (so its segments are partly live) shrinks in the store to about its
# live data, reads the same afterwards, and buoy info and buoy stats report
# the garbage; a volume in use on this host is refused.  The background
# cleaner of a mount does the same while the disk is in use.
. tests/lib/test-lib.sh
. tests/lib/fuse-lib.sh
requires python3

dir=$(mk_tmpdir)
mp=$dir/mnt
mkdir -p "$mp"
url=$dir/store

test_expect_success 'overwrites leave garbage that buoy info shows' '
    "$BUOY" create "$url" --size 64M --segment-size 1M >/dev/null &&
    truncate -s 8M "$dir/ref" &&
    buoy_mount w "$url" "$mp" --no-gc &&
    overwrite "$mp/disk" 1 1500 &&
    overwrite "$dir/ref" 1 1500 &&
    "$BUOY" umount "$mp" &&
    before=$(stored "$url") &&
    test "$before" -gt $((16 << 20)) &&
    "$BUOY" info "$url" >"$dir/info" &&
    grep -q "^garbage " "$dir/info"
'

test_expect_success 'buoy gc is refused while the volume is mounted here' '
    buoy_mount busy "$url" "$mp" --no-gc --cache-dir "$cache_root/same" &&
    test_expect_code 1 "$BUOY" gc "$url" --cache-dir "$cache_root/same" 2>"$dir/err" &&
    grep -q "in use by another buoy process" "$dir/err" &&
    "$BUOY" umount "$mp"
'

test_expect_success 'buoy gc reclaims the space and keeps the data' '
    "$BUOY" gc "$url" --cache-dir "$cache_root/gc" --threshold 0.9 >"$dir/out" &&
    grep -q "segments cleaned, .* copied, [1-9][0-9]* segment objects deleted; garbage" "$dir/out" &&
    after=$(stored "$url") &&
    test "$after" -lt $((before / 2)) &&
    test "$after" -lt $((10 << 20)) &&
    buoy_mount r "$url" "$mp" --read-only &&
    cmp -n $((8 << 20)) "$dir/ref" "$mp/disk" &&
    "$BUOY" umount "$mp"
'

test_expect_success 'bad --threshold values are one-line errors' '
    test_expect_code 1 "$BUOY" gc "$url" --threshold 2 --cache-dir "$cache_root/gc" 2>"$dir/e1" &&
    grep -q "threshold takes a fraction" "$dir/e1" &&
    test_expect_code 1 "$BUOY" gc "$url" --threshold lots --cache-dir "$cache_root/gc" 2>"$dir/e2" &&
    grep -q "threshold takes a fraction" "$dir/e2"
'

test_expect_success 'the background cleaner of a mount cleans while the disk is in use' '
    buoy_mount bg "$url" "$mp" &&
    overwrite "$mp/disk" 2 1500 &&
    overwrite "$dir/ref" 2 1500 &&
    for i in $(seq 150); do
        grep -q "^gc_segments_cleaned [1-9]" "$mp/stats" && break
        sleep 0.2
    done &&
    grep -q "^gc_segments_cleaned [1-9]" "$mp/stats" &&
    "$BUOY" stats "$mp" >"$dir/st" &&
    grep -q "^gc         garbage ratio" "$dir/st" &&
    cmp -n $((8 << 20)) "$dir/ref" "$mp/disk" &&
    "$BUOY" umount "$mp" &&
    log_clean bg
'

test_done
