#!/bin/bash
# t2030-fuse-lost-cache.sh - the cache dir of a mounted volume removed (rm
# -rf), alone or with the store failing too, and the store failing alone:
# the daemon goes into its error state at once, buoy umount says exactly
# what is not in the store and where it is (and never "run it again"),
# buoy umount --force gets out and says what it did not upload, and a
# remount has exactly what the messages said survived.
. tests/lib/test-lib.sh
. tests/lib/fuse-lib.sh
requires mkfs.ext4 python3 cmp

dir=$(mk_tmpdir)
mp=$dir/mnt fs=$dir/fs
mkdir -p "$mp" "$fs"

stat_is() { # NAME VALUE: MP/stats says so
    grep -qx "$1 $2" "$mp/stats"
}
# put_pattern FILE OFFSET SEED: 1 MiB of seeded bytes at OFFSET, no fsync
# (the kernel may split it so that an edge block is written twice: the
# engine counts what it was sent, a little more than 1 MiB)
put_pattern() {
    python3 - "$@" <<'PY'
import os, random, sys
path, off, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fd = os.open(path, os.O_WRONLY)
os.pwrite(fd, random.Random(seed).randbytes(1 << 20), off)
os.close(fd)
PY
}
# has_pattern FILE OFFSET SEED: the 1 MiB at OFFSET is that pattern
has_pattern() {
    python3 - "$@" <<'PY'
import random, sys
path, off, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "rb") as f:
    f.seek(off)
    sys.exit(0 if f.read(1 << 20) == random.Random(seed).randbytes(1 << 20) else 1)
PY
}
# is_zero FILE OFFSET: the 1 MiB at OFFSET reads as zeros
is_zero() {
    python3 -c 'import sys; f = open(sys.argv[1], "rb"); f.seek(int(sys.argv[2]))
sys.exit(0 if f.read(1 << 20) == bytes(1 << 20) else 1)' "$1" "$2"
}

# --- the cache dir removed under ext4: nothing acknowledged is lost ---

cache=$dir/cache-a
test_expect_success 'ext4 on a volume, files synced' '
    "$BUOY" create "$dir/va" --size 512M >/dev/null &&
    buoy_mount a1 "$dir/va" "$mp" --cache-dir "$cache" --fs ext4 --fs-dir "$fs" 2>/dev/null &&
    mkdir "$fs/tree" &&
    for i in 1 2 3 4 5; do head -c 300000 /dev/urandom >"$fs/tree/f$i" || return 1; done &&
    sync -f "$fs/tree" &&
    (cd "$fs" && sha256sum tree/*) >"$dir/sums"
'

test_expect_success 'rm -rf of the cache dir: the error state, at once, naming the journal' '
    rm -rf "$cache" &&
    wait_until 30 stat_is error 1 &&
    stat_is journal_lost 1 &&
    grep -q "^error_reason the journal directory $cache/.*/journal is gone" "$mp/stats" &&
    wait_until 30 grep -q "after the error" "$TEST_OUT/daemons/a1.log" &&
    grep -q "nothing is lost: everything written is in the store" "$TEST_OUT/daemons/a1.log" &&
    stat_is unsaved 0
'

test_expect_success 'writes after it fail; buoy umount says nothing is lost and how to get out' '
    test_must_fail dd if=/dev/zero of="$mp/disk" bs=4096 count=1 seek=100 conv=notrunc,fsync \
        2>/dev/null &&
    test_expect_code 1 "$BUOY" umount "$mp" 2>"$dir/err" &&
    test "$(wc -l <"$dir/err")" -eq 1 &&
    grep -q "the volume is in its error state (the journal directory .* is gone" "$dir/err" &&
    grep -q "nothing is lost: everything written is in the store; buoy umount --force unmounts it" \
        "$dir/err" &&
    ! grep -q "run buoy umount again" "$dir/err" &&
    not_mounted "$fs" && ! not_mounted "$mp" 2>/dev/null
'

test_expect_success 'buoy umount --force gets out, exit 0: nothing is lost' '
    pid=$(buoy_pid "$mp") &&
    "$BUOY" umount --force "$mp" 2>"$dir/err" &&
    grep -q "unmounting anyway (--force)" "$dir/err" &&
    grep -q "$mp: unmounted; nothing is lost" "$dir/err" &&
    not_mounted "$mp" && no_loop_on "$mp/disk" && gone "$pid" &&
    log_clean a1
'

test_expect_success 'a remount (the cache dir made anew) has every synced file' '
    buoy_mount a2 "$dir/va" "$mp" --cache-dir "$cache" --fs ext4 --fs-dir "$fs" 2>/dev/null &&
    (cd "$fs" && sha256sum -c --quiet "$dir/sums") &&
    "$BUOY" umount "$mp" &&
    log_clean a2
'

# --- the store fails, the journal stays: it is all in the journal ---

cache=$dir/cache-b
test_expect_success 'the store fails: the data is in the journal, and buoy umount says so' '
    "$BUOY" create "$dir/vb" --size 64M >/dev/null &&
    buoy_mount b1 "$dir/vb" "$mp" --cache-dir "$cache" --fault crash_after_puts=1 &&
    put_pattern "$mp/disk" $((8 << 20)) 1 &&
    wait_until 30 stat_is error 1 &&
    stat_is unsaved 1 && stat_is unsaved_in_journal 1 &&
    test "$(sed -n "s/^unsaved_bytes //p" "$mp/stats")" -ge $((1 << 20)) &&
    test_expect_code 1 "$BUOY" umount "$mp" 2>"$dir/err" &&
    test "$(wc -l <"$dir/err")" -eq 1 &&
    grep -q "[0-9.]* [KM]iB written since .* are not in the store; they are in the journal in $cache/.*/journal, which the next open with this cache dir replays" "$dir/err" &&
    grep -q "buoy umount --force unmounts it and leaves them to the journal" "$dir/err" &&
    ! grep -q "run buoy umount again" "$dir/err"
'

test_expect_success 'buoy umount --force: unmounted, the journal keeps them, exit 0' '
    "$BUOY" umount --force "$mp" 2>"$dir/err" &&
    grep -q "unmounted without uploading [0-9.]* [KM]iB written since .*: they are in the journal in $cache/" "$dir/err" &&
    not_mounted "$mp" && log_clean b1 &&
    ls "$cache"/*/journal/*.jrn >/dev/null
'

test_expect_success 'the next mount with that cache dir replays them' '
    buoy_mount b2 "$dir/vb" "$mp" --cache-dir "$cache" &&
    ! stat_is journal_records_replayed 0 &&
    has_pattern "$mp/disk" $((8 << 20)) 1 &&
    "$BUOY" umount "$mp" && log_clean b2
'

# --- the store fails and the cache dir goes: lost, and said so ---

cache=$dir/cache-c
test_expect_success 'store down, then rm -rf of the cache dir: lost, with a way to copy them out' '
    "$BUOY" create "$dir/vc" --size 64M >/dev/null &&
    buoy_mount c1 "$dir/vc" "$mp" --cache-dir "$cache" --fault crash_after_puts=1 &&
    put_pattern "$mp/disk" $((4 << 20)) 2 &&
    wait_until 30 stat_is error 1 &&
    rm -rf "$cache" &&
    wait_until 30 stat_is journal_lost 1 &&
    stat_is unsaved_in_journal 0 &&
    test_expect_code 1 "$BUOY" umount "$mp" 2>"$dir/err" &&
    test "$(wc -l <"$dir/err")" -eq 1 &&
    grep -q "[0-9.]* [KM]iB written since .* are not in the store and in no journal (the journal is gone): they are lost when this process ends" "$dir/err" &&
    grep -q "copy the disk now to keep them (it still reads them: dd if=$mp/disk of=FILE bs=1M)" "$dir/err" &&
    ! grep -q "nothing is lost" "$dir/err"
'

test_expect_success 'the disk still reads them: the copy keeps them' '
    dd if="$mp/disk" of="$dir/copy.img" bs=1M 2>/dev/null &&
    has_pattern "$dir/copy.img" $((4 << 20)) 2
'

test_expect_success 'buoy umount --force: unmounted, says they are lost, exit 1' '
    test_expect_code 1 "$BUOY" umount --force "$mp" 2>"$dir/err" &&
    grep -q "unmounted without uploading [0-9.]* [KM]iB written since .*: they were in no journal and are lost" "$dir/err" &&
    not_mounted "$mp" && log_clean c1
'

test_expect_success 'a remount indeed lacks them, as it said' '
    buoy_mount c2 "$dir/vc" "$mp" --cache-dir "$cache" &&
    is_zero "$mp/disk" $((4 << 20)) &&
    "$BUOY" umount "$mp" && log_clean c2
'

test_done
