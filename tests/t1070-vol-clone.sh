#!/bin/bash
# t1070-vol-clone.sh - buoy clone URL@NAME NEWURL: an ext4 volume is
# snapshotted and cloned; the clone mounts with the snapshot's files,
# diverges from its parent (both written, both garbage-collected), and
# both stay fsck-clean with their own files; buoy info names the base;
# the snapshot cannot be deleted nor the parent replaced while the clone
# exists, and can once buoy delete has removed it; the same clone on
# moto; errors are one line.
. tests/lib/test-lib.sh
. tests/lib/fuse-lib.sh
requires mkfs.ext4 fsck.ext4 blkid findmnt

dir=$(mk_tmpdir)
mp=$dir/mnt fs=$dir/fs
mkdir -p "$mp" "$fs"
p=$dir/parent c=$dir/clone

# tree DIR TAG N: N files of up to 100 KiB under DIR/TAG, synced.
tree() {
    local d=$1/$2 i
    mkdir -p "$d" || return 1
    for ((i = 0; i < $3; i++)); do
        head -c $(((i * 7919) % 102400)) /dev/urandom >"$d/f$i" || return 1
    done
    sync -f "$d"
}
sums() { # DIR OUT
    (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$2"
}
fsck_clean() { # URL CACHE
    local dev
    buoy_mount fsck "$1" "$mp" --cache-dir "$2" --read-only &&
        dev=$(losetup --find --show --read-only "$mp/disk") &&
        fsck.ext4 -fn "$dev" >"$dir/fsck.out" 2>&1 &&
        losetup -d "$dev" &&
        "$BUOY" umount "$mp" || {
        cat "$dir/fsck.out"
        return 1
    }
}

test_expect_success 'an ext4 volume, a snapshot of it, and a clone of the snapshot' '
    "$BUOY" create "$p" --size 256M --segment-size 1M >/dev/null &&
    buoy_mount p1 "$p" "$mp" --fs ext4 --fs-dir "$fs" &&
    tree "$fs" base 60 &&
    sums "$fs" "$dir/base.sums" &&
    "$BUOY" umount "$mp" &&
    "$BUOY" snapshot create "$p" monday --cache-dir "$cache_root/p1" >/dev/null &&
    "$BUOY" clone "$p@monday" "$c" >"$dir/out" &&
    grep -q "cloned .*@monday to .*clone: uuid .* sharing [1-9][0-9]* segments .* nothing copied" "$dir/out" &&
    test "$(stored "$c")" -eq 0 &&
    "$BUOY" info "$c" >"$dir/info" &&
    grep -q "^clone of    $p@monday: [1-9][0-9]* of its segments" "$dir/info"
'

test_expect_success 'the clone mounts with the snapshot'"'"'s files and diverges from its parent' '
    buoy_mount c1 "$c" "$mp" --fs ext4 --fs-dir "$fs" &&
    sums "$fs" "$dir/c.sums" &&
    cmp "$dir/base.sums" "$dir/c.sums" &&
    rm -rf "$fs/base/f1"* &&
    tree "$fs" clone-only 40 &&
    sums "$fs" "$dir/clone.sums" &&
    "$BUOY" umount "$mp" &&
    buoy_mount p2 "$p" "$mp" --fs ext4 --fs-dir "$fs" &&
    tree "$fs" parent-only 40 &&
    rm -rf "$fs/base/f2"* &&
    sums "$fs" "$dir/parent.sums" &&
    "$BUOY" umount "$mp" &&
    ! cmp -s "$dir/clone.sums" "$dir/parent.sums" &&
    log_clean c1 && log_clean p2
'

test_expect_success 'GC on both sides; each keeps its own files, fsck clean' '
    "$BUOY" gc "$p" --threshold 0.99 --cache-dir "$cache_root/p2" >/dev/null &&
    "$BUOY" gc "$c" --threshold 0.99 --cache-dir "$cache_root/c1" >/dev/null &&
    buoy_mount c2 "$c" "$mp" --fs ext4 --fs-dir "$fs" --cache-size 0 &&
    sums "$fs" "$dir/c2.sums" && cmp "$dir/clone.sums" "$dir/c2.sums" &&
    "$BUOY" umount "$mp" &&
    buoy_mount p3 "$p" "$mp" --fs ext4 --fs-dir "$fs" --cache-size 0 &&
    sums "$fs" "$dir/p3.sums" && cmp "$dir/parent.sums" "$dir/p3.sums" &&
    "$BUOY" umount "$mp" &&
    fsck_clean "$c" "$cache_root/fc" && fsck_clean "$p" "$cache_root/fp" &&
    buoy_mount s "$p@monday" "$mp" --fs ext4 --fs-dir "$fs" --read-only &&
    sums "$fs" "$dir/s.sums" && cmp "$dir/base.sums" "$dir/s.sums" &&
    "$BUOY" umount "$mp"
'

test_expect_success 'the snapshot and the parent are kept while the clone exists' '
    test_expect_code 1 "$BUOY" snapshot delete "$p" monday 2>"$dir/err" &&
    test "$(wc -l <"$dir/err")" -eq 1 &&
    grep -q "snapshot monday has 1 clone, which reads its data: $c" "$dir/err" &&
    test_expect_code 1 "$BUOY" create "$p" --size 64M --force 2>"$dir/err" &&
    grep -q "has 1 clone reading its snapshots" "$dir/err" &&
    test_expect_code 1 "$BUOY" delete "$p" 2>"$dir/err" &&
    grep -q "has 1 clone reading its snapshots ($c); delete it first" "$dir/err" &&
    "$BUOY" snapshot list "$p" | grep -q "^monday "
'

test_expect_success 'errors are one line: no snapshot, no @NAME, a volume already there' '
    test_expect_code 3 "$BUOY" clone "$p@nope" "$dir/x" 2>"$dir/err" &&
    test "$(wc -l <"$dir/err")" -eq 1 && grep -q "no snapshot named nope" "$dir/err" &&
    test_expect_code 2 "$BUOY" clone "$p" "$dir/x" 2>"$dir/err" &&
    grep -q "clone takes a snapshot, URL@NAME" "$dir/err" &&
    test_expect_code 1 "$BUOY" clone "$p@monday" "$c" 2>"$dir/err" &&
    grep -q "a volume already exists at $c" "$dir/err"
'

test_expect_success 'buoy delete: refused while mounted; then the snapshot can go and GC frees its data' '
    buoy_mount c3 "$c" "$mp" &&
    test_expect_code 1 "$BUOY" delete "$c" 2>"$dir/err" &&
    grep -q "is in use by .* stop it first" "$dir/err" &&
    "$BUOY" umount "$mp" &&
    "$BUOY" delete "$c" >"$dir/out" &&
    grep -q "deleted volume $c" "$dir/out" &&
    test_expect_code 3 "$BUOY" info "$c" 2>/dev/null &&
    test -z "$(ls "$p/clones/monday" 2>/dev/null)" &&
    before=$(stored "$p") &&
    "$BUOY" snapshot delete "$p" monday >/dev/null &&
    "$BUOY" gc "$p" --threshold 0.99 --cache-dir "$cache_root/p2" >/dev/null &&
    after=$(stored "$p") &&
    say "parent segments: $before bytes with the snapshot, $after after" &&
    test "$after" -lt "$before"
'

start_moto
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
test_expect_success 'moto: a clone in another prefix of the bucket' '
    make_bucket "$MOTO_URL" vols &&
    EP="--endpoint $MOTO_URL" &&
    "$BUOY" create $EP s3://vols/a --size 64M >/dev/null &&
    buoy_mount ma s3://vols/a "$mp" $EP &&
    head -c 6M /dev/urandom >"$dir/a.img" &&
    dd if="$dir/a.img" of="$mp/disk" bs=1M conv=notrunc,fsync status=none &&
    "$BUOY" umount "$mp" &&
    "$BUOY" snapshot create $EP s3://vols/a one --cache-dir "$cache_root/ma" >/dev/null &&
    "$BUOY" clone $EP s3://vols/a@one s3://vols/b >/dev/null &&
    buoy_mount mb s3://vols/b "$mp" $EP --cache-size 0 &&
    cmp -n $((6 << 20)) "$dir/a.img" "$mp/disk" &&
    dd if=/dev/zero of="$mp/disk" bs=1M count=1 conv=notrunc,fsync status=none &&
    "$BUOY" umount "$mp" &&
    buoy_mount ma2 s3://vols/a "$mp" $EP --read-only &&
    cmp -n $((6 << 20)) "$dir/a.img" "$mp/disk" &&
    "$BUOY" umount "$mp" &&
    test_expect_code 1 "$BUOY" snapshot delete $EP s3://vols/a one 2>"$dir/err" &&
    grep -q "s3://vols/b" "$dir/err"
'

test_done
