#!/bin/bash
# t2010-fuse-ext4.sh - buoy mount --fs ext4: the loop device, mkfs on first
# use only, a tree of files written, unmounted, remounted with a cold cache
# and compared, fsck.ext4 -fn clean; the same on moto (signatures checked);
# a failing step undoes the ones before it; wrong credentials and a missing
# bucket are one-line errors; buoy stats and buoy umount take the --fs-dir
# for the mount point.
. tests/lib/test-lib.sh
. tests/lib/fuse-lib.sh
requires mkfs.ext4 fsck.ext4 blkid findmnt

dir=$(mk_tmpdir)
mp=$dir/mnt fs=$dir/fs
mkdir -p "$mp" "$fs"

# write_tree DIR N: N files of 0..200 KiB in a few subdirectories, synced.
write_tree() {
    local d=$1 n=$2 i
    for ((i = 0; i < n; i++)); do
        mkdir -p "$d/tree/d$((i % 7))" &&
        head -c $(((i * 7919) % 204800)) /dev/urandom >"$d/tree/d$((i % 7))/f$i" || return 1
    done
    sync -f "$d/tree"
}
sums() { # DIR OUT
    (cd "$1" && find tree -type f -print0 | sort -z | xargs -0 sha256sum) >"$2"
}
# fsck_clean URL CACHE: fsck.ext4 -fn the volume through a plain mount.
fsck_clean() {
    local dev
    buoy_mount fsck "$1" "$mp" --cache-dir "$2" --read-only &&
    dev=$(losetup --find --show --read-only "$mp/disk") &&
    fsck.ext4 -fn "$dev" >"$dir/fsck.out" 2>&1 &&
    losetup -d "$dev" &&
    "$BUOY" umount "$mp" || { cat "$dir/fsck.out"; return 1; }
}

test_expect_success 'mount --fs ext4 makes the filesystem on first use and mounts it' '
    "$BUOY" create "$dir/v" --size 1G >/dev/null &&
    buoy_mount e1 "$dir/v" "$mp" --fs ext4 --fs-dir "$fs" 2>"$dir/err" &&
    grep -q "making a new ext4 filesystem" "$dir/err" &&
    test "$(findmnt -n -o FSTYPE "$fs")" = ext4 &&
    dev=$(findmnt -n -o SOURCE "$fs") &&
    test "$(losetup -n -O DIO "$dev" | tr -d " ")" = 1 &&
    write_tree "$fs" 300 &&
    sums "$fs" "$dir/sums"
'

test_expect_success 'buoy stats takes the --fs-dir, or a directory in it, for the mount point' '
    "$BUOY" stats "$fs" >"$dir/st" &&
    grep -q "^volume  *$dir/v (pid $(buoy_pid "$mp"))" "$dir/st" &&
    "$BUOY" stats --json "$fs/tree/d3" >"$dir/st.json" &&
    grep -q "\"url\": \"$dir/v\"" "$dir/st.json"
'

test_expect_success 'buoy umount of a directory inside the filesystem names the mount point' '
    test_expect_code 1 "$BUOY" umount "$fs/tree" 2>"$dir/err" &&
    test "$(wc -l <"$dir/err")" -eq 1 &&
    grep -q "$fs/tree is inside the filesystem of the buoy mount $mp (mounted at $fs); to unmount it, run buoy umount $mp" "$dir/err" &&
    test "$(findmnt -n -o FSTYPE "$fs")" = ext4
'

test_expect_success 'umount of the --fs-dir undoes it all: filesystem, loop device, FUSE' '
    "$BUOY" umount "$fs" &&
    not_mounted "$fs" && not_mounted "$mp" && no_loop_on "$mp/disk" &&
    log_clean e1
'

test_expect_success 'a remount with a cold cache finds the same files, and does not mkfs' '
    buoy_mount e2 "$dir/v" "$mp" --fs ext4 --fs-dir "$fs" 2>"$dir/err" &&
    ! grep -q "making a new" "$dir/err" &&
    sums "$fs" "$dir/sums2" &&
    cmp "$dir/sums" "$dir/sums2" &&
    "$BUOY" umount "$mp" &&
    fsck_clean "$dir/v" "$cache_root/e2" &&
    grep -q "^/dev/loop[0-9]*: [0-9]*/[0-9]* files" "$dir/fsck.out"
'

test_expect_success 'a step that fails undoes the ones before it' '
    test_expect_code 1 "$BUOY" mount "$dir/v" "$mp" --cache-dir "$cache_root/e3" \
        --fs nosuchfs --fs-dir "$fs" 2>"$dir/err" &&
    grep -q "the volume holds a ext4 filesystem, not nosuchfs" "$dir/err" &&
    not_mounted "$fs" && not_mounted "$mp" && no_loop_on "$mp/disk" &&
    "$BUOY" create "$dir/v2" --size 64M >/dev/null &&
    test_expect_code 1 "$BUOY" mount "$dir/v2" "$mp" --cache-dir "$cache_root/e4" \
        --fs nosuchfs --fs-dir "$fs" 2>"$dir/err" &&
    grep -q "mkfs.nosuchfs failed" "$dir/err" &&
    not_mounted "$fs" && not_mounted "$mp" && no_loop_on "$mp/disk"
'

test_expect_success 'a snapshot of a mounted ext4 is frozen around: mounts read-only, fsck clean' '
    mkdir -p "$dir/mp2" "$dir/fs2" &&
    buoy_mount e5 "$dir/v" "$mp" --fs ext4 --fs-dir "$fs" &&
    mkdir -p "$fs/snap" && head -c 300000 /dev/urandom >"$fs/snap/a" &&
    "$BUOY" snapshot create "$mp" s1 >/dev/null &&
    head -c 1000 /dev/urandom >"$fs/snap/b" &&
    buoy_mount e6 "$dir/v@s1" "$dir/mp2" --fs ext4 --fs-dir "$dir/fs2" 2>"$dir/err" &&
    ! grep -q "needs journal recovery" "$dir/err" &&
    cmp "$fs/snap/a" "$dir/fs2/snap/a" &&
    ! test -e "$dir/fs2/snap/b" &&
    "$BUOY" umount "$dir/mp2" &&
    "$BUOY" umount "$mp" &&
    buoy_mount e7 "$dir/v@s1" "$mp" --cache-dir "$cache_root/e7" &&
    dev=$(losetup --find --show --read-only "$mp/disk") &&
    fsck.ext4 -fn "$dev" >"$dir/fsck.out" 2>&1 &&
    losetup -d "$dev" &&
    "$BUOY" umount "$mp"
'

test_expect_success 'a read-only --fs mount of a filesystem that needs recovery: ro,noload, said' '
    "$BUOY" create "$dir/v3" --size 256M >/dev/null &&
    buoy_mount e8 "$dir/v3" "$mp" --fs ext4 --fs-dir "$fs" 2>/dev/null &&
    echo hello >"$fs/x" && sync -f "$fs" &&
    dd if="$mp/disk" of="$dir/raw.img" bs=1M status=none &&
    "$BUOY" umount "$mp" &&
    "$BUOY" create "$dir/v4" --size 256M --import "$dir/raw.img" >/dev/null &&
    dumpe2fs -h "$dir/raw.img" 2>/dev/null | grep -q "needs_recovery" &&
    buoy_mount e9 "$dir/v4" "$dir/mp2" --read-only --fs ext4 --fs-dir "$dir/fs2" 2>"$dir/err" &&
    grep -q "needs journal recovery.*ro,noload" "$dir/err" &&
    test "$(findmnt -n -o FSTYPE "$dir/fs2")" = ext4 &&
    "$BUOY" umount "$dir/mp2"
'

# --- moto: a plain server for the volume, one with IAM on for credentials ---
# (moto's signature checker rejects correct signatures of query values with
# a "/", such as our LIST prefixes: see t0200, so volumes run on the plain one)
start_moto plain
PLAIN=$MOTO_URL
# moto lets the first 5 requests through unauthenticated: the readiness
# probe, three IAM calls and the bucket; after that every signature is checked.
INITIAL_NO_AUTH_ACTION_COUNT=5 start_moto

test_expect_success 'moto: a user, a key and a bucket' '
    moto_iam_user "$dir" &&
    make_bucket "$MOTO_URL" vols &&
    make_bucket "$PLAIN" vols &&
    "$BUOY" create --endpoint "$PLAIN" s3://vols/v1 --size 512M >/dev/null
'

EP=(--endpoint "$PLAIN")
test_expect_success 'moto: ext4 tree through buoy, unmounted, remounted cold, the same' '
    buoy_mount m1 s3://vols/v1 "$mp" "${EP[@]}" --fs ext4 --fs-dir "$fs" 2>"$dir/err" &&
    write_tree "$fs" 120 &&
    sums "$fs" "$dir/msums" &&
    "$BUOY" umount "$mp" &&
    log_clean m1 &&
    buoy_mount m2 s3://vols/v1 "$mp" "${EP[@]}" --fs ext4 --fs-dir "$fs" &&
    sums "$fs" "$dir/msums2" &&
    cmp "$dir/msums" "$dir/msums2" &&
    grep -q "^requests_get [1-9]" "$mp/stats" &&
    "$BUOY" umount "$mp" &&
    log_clean m2
'

EP=(--endpoint "$MOTO_URL")
test_expect_success 'moto: wrong credentials and a missing bucket are one-line errors' '
    test_expect_code 1 env AWS_SECRET_ACCESS_KEY=wrong "$BUOY" mount s3://vols/v1 "$mp" \
        "${EP[@]}" --cache-dir "$cache_root/bad" 2>"$dir/e1" &&
    test "$(wc -l <"$dir/e1")" -eq 1 && grep -q "403.*check the secret key" "$dir/e1" &&
    test_expect_code 3 "$BUOY" mount s3://no-such-bucket/v "$mp" "${EP[@]}" \
        --cache-dir "$cache_root/bad" 2>"$dir/e2" &&
    test "$(wc -l <"$dir/e2")" -eq 1 && grep -qi "bucket" "$dir/e2" &&
    not_mounted "$mp" && not_mounted "$fs"
'

test_done
