#!/bin/bash
# t1040-vol-lease.sh - one writer per volume, across hosts: a second mount
# with another cache dir (as another host would have) is refused with the
# holder named; buoy info shows the lease; after kill -9 of the writer,
# --takeover mounts it once the lease has run out, with every flushed write
# there; a clean umount releases the lease so the next mount is immediate.
. tests/lib/test-lib.sh
. tests/lib/fuse-lib.sh

dir=$(mk_tmpdir)
mkdir -p "$dir/a" "$dir/b"
url=$dir/store

test_expect_success 'a second writer is refused, naming the holder' '
    "$BUOY" create "$url" --size 64M >/dev/null &&
    buoy_mount A "$url" "$dir/a" --lease-ms 1000 &&
    head -c 1M /dev/urandom >"$dir/data" &&
    dd if="$dir/data" of="$dir/a/disk" bs=1M conv=notrunc,fsync status=none &&
    test_expect_code 1 "$BUOY" mount "$url" "$dir/b" --cache-dir "$cache_root/B" 2>"$dir/err" &&
    test "$(wc -l <"$dir/err")" -eq 1 &&
    grep -q "is in use by .* on $(hostname) since .* (lease epoch [0-9]*); use --takeover" "$dir/err" &&
    not_mounted "$dir/b" &&
    "$BUOY" info "$url" >"$dir/info" &&
    grep -q "^lease       held by .* epoch [0-9]*, last written .*, time 1000 ms" "$dir/info"
'

test_expect_success 'after kill -9 of the writer, --takeover takes the volume with its data' '
    kill -KILL "$(buoy_pid "$dir/a")" &&
    "$BUOY" umount "$dir/a" 2>/dev/null &&
    t0=$(date +%s%N) &&
    buoy_mount B "$url" "$dir/b" --cache-dir "$cache_root/B" --takeover --lease-ms 1000 &&
    t1=$(date +%s%N) &&
    say "takeover of a dead writer (lease 1000 ms): $(((t1 - t0) / 1000000)) ms" &&
    cmp -n $((1 << 20)) "$dir/data" "$dir/b/disk" &&
    "$BUOY" umount "$dir/b" &&
    log_clean B
'

test_expect_success 'a clean umount releases the lease: the next writer needs no takeover' '
    "$BUOY" info "$url" >"$dir/info" &&
    grep -q "^lease       released by" "$dir/info" &&
    buoy_mount A2 "$url" "$dir/a" --cache-dir "$cache_root/A" &&
    cmp -n $((1 << 20)) "$dir/data" "$dir/a/disk" &&
    "$BUOY" umount "$dir/a"
'

test_done
