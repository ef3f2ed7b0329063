#!/bin/bash
# t1050-vol-snapshot.sh - snapshots: taken of a mounted volume (through
# MOUNTPOINT/ctl) and of one not in use, instant and copy-free; a snapshot
# reads back byte-identical through URL@NAME after heavy overwrites and GC;
# GC keeps what snapshots need and frees it once they are deleted; bad
# names and duplicates are one-line errors.
. tests/lib/test-lib.sh
. tests/lib/fuse-lib.sh
requires python3

dir=$(mk_tmpdir)
mp=$dir/mnt
mkdir -p "$mp"
url=$dir/store

test_expect_success 'a snapshot of a mounted volume, taken between writes' '
    "$BUOY" create "$url" --size 64M --segment-size 1M >/dev/null &&
    buoy_mount m "$url" "$mp" --no-gc &&
    head -c 8M /dev/urandom >"$dir/v1" &&
    dd if="$dir/v1" of="$mp/disk" bs=1M conv=notrunc,fsync status=none &&
    "$BUOY" snapshot create "$mp" monday >"$dir/out" &&
    grep -q "snapshot monday of the volume at .* taken" "$dir/out" &&
    test_expect_code 1 "$BUOY" snapshot create "$mp" monday 2>"$dir/err" &&
    grep -q "a snapshot named monday exists already" "$dir/err" &&
    test_expect_code 1 "$BUOY" snapshot create "$mp" "bad name" 2>"$dir/err" &&
    grep -q "is not a snapshot name" "$dir/err" &&
    cp "$dir/v1" "$dir/v2" &&
    overwrite "$mp/disk" 1 2000 &&
    overwrite "$dir/v2" 1 2000 &&
    "$BUOY" umount "$mp"
'

test_expect_success 'GC of the overwritten volume keeps what the snapshot needs' '
    "$BUOY" gc "$url" --threshold 0.99 --cache-dir "$cache_root/gc" >"$dir/gc" &&
    "$BUOY" snapshot list "$url" >"$dir/list" &&
    grep -q "^monday .* map " "$dir/list" &&
    buoy_mount s "$url@monday" "$mp" --read-only &&
    cmp -n $((8 << 20)) "$dir/v1" "$mp/disk" &&
    "$BUOY" umount "$mp" &&
    buoy_mount now "$url" "$mp" --read-only &&
    cmp -n $((8 << 20)) "$dir/v2" "$mp/disk" &&
    "$BUOY" umount "$mp" &&
    "$BUOY" info "$url@monday" >"$dir/info" &&
    grep -q "^size        64 MiB" "$dir/info"
'

test_expect_success 'a snapshot of a volume not in use, by URL; a read-only mount of it refuses writes' '
    "$BUOY" snapshot create "$url" tuesday --cache-dir "$cache_root/snap" >"$dir/out" &&
    grep -q "snapshot tuesday of .* taken" "$dir/out" &&
    buoy_mount t "$url@tuesday" "$mp" &&
    test_must_fail dd if=/dev/zero of="$mp/disk" bs=4k count=1 conv=notrunc status=none &&
    cmp -n $((8 << 20)) "$dir/v2" "$mp/disk" &&
    "$BUOY" umount "$mp"
'

test_expect_success 'deleting the snapshots lets GC free their data' '
    before=$(stored "$url") &&
    "$BUOY" snapshot delete "$url" monday >/dev/null &&
    "$BUOY" snapshot delete "$url" tuesday >/dev/null &&
    test_expect_code 3 "$BUOY" snapshot delete "$url" monday 2>"$dir/err" &&
    grep -q "no snapshot named monday" "$dir/err" &&
    "$BUOY" gc "$url" --threshold 0.99 --cache-dir "$cache_root/gc" >/dev/null &&
    after=$(stored "$url") &&
    say "stored segment bytes: $before with the snapshots, $after after" &&
    test "$after" -lt "$before" &&
    test_expect_code 3 "$BUOY" info "$url@monday" 2>"$dir/err" &&
    grep -q "no snapshot named monday" "$dir/err"
'

test_expect_success 'snapshot list: of a mountpoint lists its volume; no volume is exit 3; none is said' '
    test_expect_code 3 "$BUOY" snapshot list "$dir/nonexistent" >"$dir/out" 2>"$dir/err" &&
    grep -q "no volume at $dir/nonexistent" "$dir/err" &&
    "$BUOY" create "$dir/s2" --size 16M >/dev/null &&
    "$BUOY" snapshot list "$dir/s2" >"$dir/out" 2>"$dir/err" &&
    grep -q "has no snapshots" "$dir/err" &&
    buoy_mount m2 "$dir/s2" "$mp" --no-gc &&
    "$BUOY" snapshot create "$mp" wed >/dev/null &&
    "$BUOY" snapshot list "$mp" >"$dir/out" &&
    grep -q "^wed " "$dir/out" &&
    "$BUOY" umount "$mp"
'

test_done
