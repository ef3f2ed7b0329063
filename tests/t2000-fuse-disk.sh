#!/bin/bash
# t2000-fuse-disk.sh - buoy mount on the directory store: the disk file is
# the volume (size, reads, writes, fsync, punch-hole trims), the stats file
# and buoy stats, umount uploads everything, a cold remount reads the same,
# SIGTERM drains and exits, kill -9 loses nothing fsync'd with
# durability=local, read-only mounts refuse writes.
. tests/lib/test-lib.sh
. tests/lib/fuse-lib.sh

dir=$(mk_tmpdir)
mp=$dir/mnt
mkdir -p "$mp"
url=$dir/store

test_expect_success 'mount serves a disk file of the volume size and a stats file' '
    "$BUOY" create "$url" --size 256M >/dev/null &&
    buoy_mount m1 "$url" "$mp" &&
    test "$(stat -c %s "$mp/disk")" -eq $((256 << 20)) &&
    head -1 "$mp/stats" >"$dir/first" &&
    grep -qx "buoy_stats 1" "$dir/first" &&
    grep -qx "url $url" "$mp/stats" &&
    test "$(findmnt -n -o FSTYPE "$mp")" = fuse.buoy
'

test_expect_success 'writes read back; fsync uploads them; requests of 1 MiB arrive' '
    head -c $((12 << 20)) /dev/urandom >"$dir/data" &&
    dd if="$dir/data" of="$mp/disk" bs=1M seek=3 conv=notrunc,fsync oflag=direct status=none &&
    dd if="$mp/disk" of="$dir/back" bs=1M skip=3 count=12 iflag=direct status=none &&
    cmp "$dir/data" "$dir/back" &&
    grep -qx "pending_bytes 0" "$mp/stats" &&
    max=$(sed -n "s/^fuse_max_write_bytes //p" "$mp/stats") &&
    test "$max" -ge $((1 << 20)) &&
    grep -q "^fuse_flushes [1-9]" "$mp/stats"
'

test_expect_success 'fallocate --punch-hole trims: the range reads as zeros' '
    fallocate --punch-hole --keep-size -o $((4 << 20)) -l $((2 << 20)) "$mp/disk" &&
    head -c $((2 << 20)) /dev/zero >"$dir/zeros" &&
    dd if="$mp/disk" of="$dir/hole" bs=1M skip=4 count=2 status=none &&
    cmp "$dir/zeros" "$dir/hole" &&
    grep -q "^fuse_trims [1-9]" "$mp/stats" &&
    dd if=/dev/zero of="$dir/data" bs=1M seek=1 count=2 conv=notrunc status=none
'

test_expect_success 'buoy stats prints the numbers for people and as JSON' '
    "$BUOY" stats "$mp" >"$dir/human" &&
    grep -q "^requests   GET [0-9]*, PUT [1-9]" "$dir/human" &&
    grep -q "^cost       \\$" "$dir/human" &&
    "$BUOY" stats --json "$mp" >"$dir/json" &&
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d[\"requests_put\"] > 0 and d[\"size_bytes\"] == 256 << 20" "$dir/json"
'

test_expect_success 'umount uploads, unmounts and the daemon exits cleanly' '
    pid=$(buoy_pid "$mp") &&
    "$BUOY" umount "$mp" &&
    not_mounted "$mp" &&
    gone "$pid" &&
    log_clean m1 &&
    "$BUOY" info "$url" >"$dir/info" &&
    grep -q "^checkpoint  ckpt/" "$dir/info"
'

test_expect_success 'a remount with a cold cache reads the same bytes' '
    buoy_mount m2 "$url" "$mp" &&
    dd if="$mp/disk" of="$dir/back" bs=1M skip=3 count=12 status=none &&
    cmp "$dir/data" "$dir/back" &&
    grep -q "^requests_get [1-9]" "$mp/stats"
'

test_expect_success 'SIGTERM: the daemon uploads, unmounts and exits' '
    dd if=/dev/urandom of="$dir/more" bs=1M count=3 status=none &&
    dd if="$dir/more" of="$mp/disk" bs=1M seek=100 conv=notrunc status=none &&
    pid=$(buoy_pid "$mp") &&
    kill -TERM "$pid" &&
    for i in $(seq 100); do gone "$pid" 2>/dev/null && break; sleep 0.1; done &&
    gone "$pid" &&
    not_mounted "$mp" &&
    log_clean m2 &&
    buoy_mount m3 "$url" "$mp" --read-only &&
    dd if="$mp/disk" of="$dir/back" bs=1M skip=100 count=3 status=none &&
    cmp "$dir/more" "$dir/back"
'

test_expect_success 'a read-only mount refuses writes' '
    test_must_fail dd if=/dev/zero of="$mp/disk" bs=4k count=1 conv=notrunc status=none &&
    "$BUOY" umount "$mp" &&
    not_mounted "$mp"
'

test_expect_success 'durability=local: kill -9 after fsync loses nothing; umount cleans up' '
    buoy_mount m4 "$url" "$mp" --durability local &&
    dd if=/dev/urandom of="$dir/local" bs=64k count=5 status=none &&
    dd if="$dir/local" of="$mp/disk" bs=64k seek=2000 conv=notrunc,fsync status=none &&
    kill -KILL "$(buoy_pid "$mp")" &&
    sleep 0.2 &&
    "$BUOY" umount "$mp" 2>"$dir/err" &&
    grep -q "is gone" "$dir/err" &&
    not_mounted "$mp" &&
    buoy_mount m5 "$url" "$mp" --cache-dir "$cache_root/m4" &&
    grep -q "^buoy_stats" "$mp/stats" &&
    dd if="$mp/disk" of="$dir/back" bs=64k skip=2000 count=5 status=none &&
    cmp "$dir/local" "$dir/back" &&
    "$BUOY" umount "$mp"
'

test_expect_success '-f stays in the foreground and logs to stderr; the pid file comes and goes' '
    start_daemon fg "$BUOY" mount -f -v "$url" "$mp" --cache-dir "$cache_root/fg" \
        --pid-file "$dir/pid" &&
    wait_for_file "$mp/stats" &&
    wait_for_file "$dir/pid" &&
    test "$(cat "$dir/pid")" = "$(daemon_pid fg)" &&
    stop_daemon fg &&
    not_mounted "$mp" &&
    test ! -e "$dir/pid" &&
    grep -q "serving $url" "$TEST_OUT/daemons/fg.log"
'

test_expect_success 'create --import fills a new volume from a disk image, zeros skipped' '
    truncate -s 40M "$dir/img" &&
    dd if=/dev/urandom of="$dir/img" bs=1M count=3 seek=7 conv=notrunc status=none &&
    "$BUOY" create "$dir/imported" --import "$dir/img" --cache-dir "$cache_root/imp" >"$dir/out" &&
    grep -q "40 MiB" "$dir/out" &&
    grep -q "imported 3 MiB of data" "$dir/out" &&
    buoy_mount imp "$dir/imported" "$mp" --read-only &&
    cmp "$dir/img" "$mp/disk" &&
    "$BUOY" umount "$mp" &&
    test_expect_code 2 "$BUOY" create "$dir/small" --size 1M --import "$dir/img" 2>"$dir/err" &&
    grep -q "more than --size" "$dir/err"
'

# Bad input: each a one-line error, a non-zero exit, nothing left mounted.
one_line_error() { # FILE PATTERN
    test "$(wc -l <"$1")" -eq 1 && grep -q "^buoy: .*$2" "$1" || { cat "$1"; return 1; }
}

test_expect_success 'bad input is a one-line error and leaves nothing mounted' '
    test_expect_code 3 "$BUOY" mount "$dir/nothing-here" "$mp" 2>"$dir/e1" &&
    one_line_error "$dir/e1" "no volume at .*buoy create" &&
    test_expect_code 2 "$BUOY" mount "ftp://host/x" "$mp" 2>"$dir/e2" &&
    one_line_error "$dir/e2" "ftp" &&
    test_expect_code 3 "$BUOY" mount "$url" "$dir/no-such-dir" 2>"$dir/e3" &&
    one_line_error "$dir/e3" "no-such-dir: No such file" &&
    test_expect_code 1 "$BUOY" mount "$url" "$mp" --cache-size lots 2>"$dir/e4" &&
    one_line_error "$dir/e4" "cache-size takes a size" &&
    test_expect_code 1 "$BUOY" mount "$url" "$mp" --durability maybe 2>"$dir/e5" &&
    one_line_error "$dir/e5" "durability takes remote or local" &&
    test_expect_code 1 "$BUOY" mount "$url" "$mp" --fs ext4 2>"$dir/e6" &&
    one_line_error "$dir/e6" "needs --fs-dir" &&
    test_expect_code 2 "$BUOY" mount "$url" 2>"$dir/e7" &&
    one_line_error "$dir/e7" "expected URL MOUNTPOINT" &&
    test_expect_code 1 "$BUOY" umount "$mp" 2>"$dir/e8" &&
    one_line_error "$dir/e8" "is not mounted" &&
    not_mounted "$mp"
'

test_expect_success 'a busy mount point and a volume in use are refused' '
    buoy_mount busy "$url" "$mp" &&
    mkdir -p "$dir/mnt2" &&
    test_expect_code 1 "$BUOY" mount "$url" "$mp" 2>"$dir/e9" &&
    one_line_error "$dir/e9" "is busy: a fuse.buoy filesystem is mounted there" &&
    test_expect_code 1 "$BUOY" mount "$url" "$dir/mnt2" --cache-dir "$cache_root/busy" 2>"$dir/e10" &&
    one_line_error "$dir/e10" "in use by another buoy process on this host (pid $(buoy_pid "$mp")" &&
    not_mounted "$dir/mnt2" &&
    "$BUOY" umount "$mp" &&
    log_clean busy
'

test_done
