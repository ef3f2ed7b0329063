#!/bin/bash
# t2040-fuse-cache-keep.sh - the block cache outlives a clean unmount when
# it provably matches the volume: a remount with the same cache dir reads
# everything from it (no byte fetched from the store); after another
# writer (another cache dir) has written the volume it is dropped and every
# read returns the new data; after a kill -9 nothing is kept; buoy delete
# removes the volume's cache dir.
. tests/lib/test-lib.sh
. tests/lib/fuse-lib.sh
requires python3 cmp

dir=$(mk_tmpdir)
mp=$dir/mnt
mkdir -p "$mp"
c1=$dir/cache1 c2=$dir/cache2

stat_of() { sed -n "s/^$1 //p" "$mp/stats"; }
stat_is() { test "$(stat_of "$1")" = "$2"; }

test_expect_success 'a volume written through one cache dir, unmounted cleanly' '
    "$BUOY" create "$dir/v" --size 24M >/dev/null &&
    head -c $((24 << 20)) /dev/urandom >"$dir/old.img" &&
    buoy_mount k1 "$dir/v" "$mp" --cache-dir "$c1" &&
    dd if="$dir/old.img" of="$mp/disk" bs=1M conv=notrunc,fsync 2>/dev/null &&
    "$BUOY" umount "$mp" &&
    ls "$c1"/*/blocks.idx >/dev/null &&
    log_clean k1
'

test_expect_success 'the remount keeps the cache: every byte read back, none fetched' '
    buoy_mount k2 "$dir/v" "$mp" --cache-dir "$c1" &&
    test "$(stat_of cache_kept_blocks)" -ge $((24 << 20 >> 12)) &&
    cmp "$mp/disk" "$dir/old.img" &&
    stat_is fetched_bytes 0 &&
    test "$(stat_of cache_hit_blocks)" -ge $((24 << 20 >> 12)) &&
    "$BUOY" umount "$mp" &&
    log_clean k2
'

test_expect_success 'another writer (another cache dir) overwrites half of it' '
    buoy_mount w1 "$dir/v" "$mp" --cache-dir "$c2" &&
    stat_is cache_kept_blocks 0 &&
    head -c $((12 << 20)) /dev/urandom >"$dir/half" &&
    dd if="$dir/half" of="$mp/disk" bs=1M conv=notrunc,fsync 2>/dev/null &&
    "$BUOY" umount "$mp" &&
    cp "$dir/old.img" "$dir/new.img" &&
    dd if="$dir/half" of="$dir/new.img" bs=1M conv=notrunc 2>/dev/null &&
    log_clean w1
'

test_expect_success 'the first cache dir again: its cache is dropped, reads return the new data' '
    buoy_mount k3 "$dir/v" "$mp" --cache-dir "$c1" -v &&
    stat_is cache_kept_blocks 0 &&
    grep -q "block cache of the last close is dropped: another writer has held the volume since" \
        "$TEST_OUT/daemons/k3.log" &&
    cmp "$mp/disk" "$dir/new.img" &&
    test "$(stat_of fetched_bytes)" -gt 0 &&
    "$BUOY" umount "$mp" &&
    log_clean k3
'

test_expect_success 'after kill -9 nothing is kept; the reads are right' '
    buoy_mount k4 "$dir/v" "$mp" --cache-dir "$c1" -v &&
    test "$(stat_of cache_kept_blocks)" -gt 0 &&
    pid=$(buoy_pid "$mp") &&
    kill -KILL "$pid" &&
    "$BUOY" umount "$mp" 2>/dev/null &&
    ! ls "$c1"/*/blocks.idx 2>/dev/null &&
    buoy_mount k5 "$dir/v" "$mp" --cache-dir "$c1" &&
    stat_is cache_kept_blocks 0 &&
    cmp "$mp/disk" "$dir/new.img" &&
    "$BUOY" umount "$mp" &&
    log_clean k5
'

test_expect_success 'buoy delete removes the volume and its cache dir' '
    uuid=$(ls "$c1") &&
    test -d "$c1/$uuid" &&
    "$BUOY" delete "$dir/v" --cache-dir "$c1" >"$dir/out" &&
    grep -q "^removed its cache dir $c1/$uuid$" "$dir/out" &&
    ! test -e "$c1/$uuid"
'

test_done
