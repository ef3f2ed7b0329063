#!/bin/bash
# t1060-vol-encryption.sh - encrypted volumes end to end: buoy create
# --passphrase-file on the directory store and on moto, a FUSE mount that
# writes a distinctive pattern found nowhere in the store's bytes and read
# back byte-identical after a remount; a wrong or missing passphrase is a
# one-line error and nothing is mounted; the local journal is sealed too
# (kill -9 leaves no plaintext in the cache dir; the remount replays it);
# a segment with a flipped byte, or
# two segments swapped, give EIO and a log line naming the object, never
# garbage; buoy info shows the encryption; snapshot and gc take the
# passphrase; a clone of a snapshot is encrypted with the same passphrase;
# buoy serve exports it over NBD.
. tests/lib/test-lib.sh
. tests/lib/fuse-lib.sh

dir=$(mk_tmpdir)
mp=$dir/mnt
mkdir -p "$mp"
url=$dir/store
kdf=(--kdf-memory 8M --kdf-passes 1)
printf 'correct horse battery staple\n' >"$dir/pass"
printf 'correct horse battery stapler\n' >"$dir/wrong"
chmod 600 "$dir/pass" "$dir/wrong"

# 4 MiB of lines that say BUOY-SECRET-PATTERN, each numbered
python3 -c '
import sys
with open(sys.argv[1], "wb") as f:
    for i in range(4 << 20 >> 5):
        f.write(b"BUOY-SECRET-PATTERN-%011d\n" % i)
' "$dir/pattern"

test_expect_success 'create --passphrase-file makes an encrypted volume' '
    "$BUOY" create "$url" --size 64M --segment-size 1M --compression zstd \
        --passphrase-file "$dir/pass" "${kdf[@]}" >"$dir/out" &&
    grep -q "compression zstd, encryption xchacha20-poly1305, uuid " "$dir/out" &&
    head -1 "$url/super" | grep -qx "buoy-volume 3" &&
    grep -qx "encryption xchacha20-poly1305" "$url/super" &&
    grep -qx "kdf argon2id ops=1 mem=8388608" "$url/super" &&
    grep -q "^wrapped-key [0-9a-f]\{144\}$" "$url/super" &&
    grep -q "^key-check [0-9a-f]\{64\}$" "$url/super" &&
    grep -q "^mac [0-9a-f]\{64\}$" "$url/super"
'

test_expect_success 'a mount writes the pattern; none of it is in the store' '
    buoy_mount w1 "$url" "$mp" --passphrase-file "$dir/pass" &&
    dd if="$dir/pattern" of="$mp/disk" bs=1M seek=8 conv=notrunc,fsync status=none &&
    "$BUOY" umount "$mp" &&
    not_mounted "$mp" &&
    log_clean w1 &&
    ls "$url"/seg/*/* >/dev/null &&
    grep -c BUOY-SECRET "$dir/pattern" >/dev/null &&
    test_must_fail grep -rqa BUOY-SECRET "$url" &&
    test_must_fail grep -rqa "BUOY-SECRET" "$url/seg" "$url/ckpt" "$url/lease"
'

test_expect_success 'a remount with the passphrase reads it back byte-identical' '
    buoy_mount r1 "$url" "$mp" --passphrase-file "$dir/pass" --read-only &&
    dd if="$mp/disk" of="$dir/back" bs=1M skip=8 count=4 status=none &&
    "$BUOY" umount "$mp" &&
    cmp "$dir/pattern" "$dir/back" &&
    log_clean r1
'

test_expect_success 'kill -9 with writes only in the local journal: it is sealed; a remount replays it' '
    buoy_mount k1 "$url" "$mp" --passphrase-file "$dir/pass" --durability local \
        --fault latency=8000,ops=put &&
    dd if="$dir/pattern" of="$mp/disk" bs=1M seek=40 conv=notrunc,fsync status=none &&
    kill -KILL "$(buoy_pid "$mp")" &&
    { "$BUOY" umount "$mp" 2>/dev/null; true; } &&
    not_mounted "$mp" &&
    find "$cache_root/k1" -name "*.jrn" -size +1M | grep -q . &&
    test_must_fail grep -rqa BUOY-SECRET "$cache_root/k1" &&
    head -c 8 "$(find "$cache_root/k1" -name "*.jrn" -size +1M | head -1)" | grep -q BUOYJRN1 &&
    buoy_mount k2 "$url" "$mp" --passphrase-file "$dir/pass" --cache-dir "$cache_root/k1" &&
    dd if="$mp/disk" of="$dir/back-k" bs=1M skip=40 count=4 status=none &&
    "$BUOY" umount "$mp" &&
    cmp "$dir/pattern" "$dir/back-k" &&
    test_must_fail grep -rqa BUOY-SECRET "$url" &&
    log_clean k2
'

test_expect_success 'a wrong passphrase is a one-line error and nothing is mounted' '
    test_must_fail "$BUOY" mount "$url" "$mp" --passphrase-file "$dir/wrong" \
        --cache-dir "$dir/c-wrong" 2>"$dir/err" &&
    cat "$dir/err" &&
    test "$(wc -l <"$dir/err")" -eq 1 &&
    grep -qx "buoy: wrong passphrase for $url" "$dir/err" &&
    not_mounted "$mp"
'

test_expect_success 'no passphrase is a clear error; so is one for a plain volume' '
    test_must_fail "$BUOY" mount "$url" "$mp" --cache-dir "$dir/c-none" 2>"$dir/err" &&
    grep -qx "buoy: $url is encrypted: give --passphrase-file" "$dir/err" &&
    not_mounted "$mp" &&
    "$BUOY" create "$dir/plain" --size 16M >/dev/null &&
    test_must_fail "$BUOY" info "$dir/plain" --passphrase-file "$dir/pass" 2>"$dir/err" &&
    grep -q "is not encrypted" "$dir/err"
'

test_expect_success 'buoy info shows the encryption; without the passphrase, the superblock and the error' '
    "$BUOY" info "$url" --passphrase-file "$dir/pass" >"$dir/info" &&
    grep -qx "encryption  xchacha20-poly1305, a random key wrapped under the passphrase by argon2id (1 passes, 8 MiB)" "$dir/info" &&
    grep -q "^lease       released by " "$dir/info" &&
    test_must_fail "$BUOY" info "$url" >"$dir/info2" 2>"$dir/err" &&
    grep -q "^encryption  xchacha20-poly1305" "$dir/info2" &&
    grep -q "^size        64 MiB" "$dir/info2" &&
    grep -qx "buoy: $url is encrypted: give --passphrase-file" "$dir/err"
'

test_expect_success 'snapshot and gc take the passphrase; URL@NAME reads the snapshot' '
    "$BUOY" snapshot create "$url" s1 --passphrase-file "$dir/pass" \
        --cache-dir "$dir/c-snap" >/dev/null &&
    "$BUOY" gc "$url" --passphrase-file "$dir/pass" --cache-dir "$dir/c-snap" >/dev/null &&
    test_must_fail "$BUOY" gc "$url" --cache-dir "$dir/c-snap" 2>"$dir/err" &&
    grep -q "is encrypted: give --passphrase-file" "$dir/err" &&
    "$BUOY" snapshot list "$url" >"$dir/snaps" &&
    grep -q "^s1 " "$dir/snaps" &&
    buoy_mount s1 "$url@s1" "$mp" --passphrase-file "$dir/pass" &&
    dd if="$mp/disk" of="$dir/back-s1" bs=1M skip=8 count=4 status=none &&
    "$BUOY" umount "$mp" &&
    cmp "$dir/pattern" "$dir/back-s1"
'

test_expect_success 'a clone of an encrypted snapshot: encrypted too, the same passphrase' '
    test_must_fail "$BUOY" clone "$url@s1" "$dir/clone" 2>"$dir/err" &&
    grep -qx "buoy: clone $url@s1 to $dir/clone: $url is encrypted: give --passphrase-file" "$dir/err" &&
    "$BUOY" clone "$url@s1" "$dir/clone" --passphrase-file "$dir/pass" >/dev/null &&
    head -1 "$dir/clone/super" | grep -qx "buoy-volume 3" &&
    grep -q "^base $url@s1$" "$dir/clone/super" &&
    test "$(grep ^wrapped-key "$dir/clone/super")" = "$(grep ^wrapped-key "$url/super")" &&
    buoy_mount cl "$dir/clone" "$mp" --passphrase-file "$dir/pass" &&
    dd if="$mp/disk" of="$dir/back-cl" bs=1M skip=8 count=4 status=none &&
    cmp "$dir/pattern" "$dir/back-cl" &&
    dd if="$dir/pattern" of="$mp/disk" bs=1M seek=20 conv=notrunc,fsync status=none &&
    "$BUOY" umount "$mp" &&
    log_clean cl &&
    test_must_fail grep -rqa BUOY-SECRET "$dir/clone" &&
    test_must_fail "$BUOY" mount "$dir/clone" "$mp" --passphrase-file "$dir/wrong" \
        --cache-dir "$dir/c-wrong" 2>"$dir/err" &&
    grep -qx "buoy: wrong passphrase for $dir/clone" "$dir/err" &&
    test_must_fail "$BUOY" snapshot delete "$url" s1 --passphrase-file "$dir/pass" 2>"$dir/err" &&
    grep -q "snapshot s1 has 1 clone" "$dir/err" &&
    "$BUOY" delete "$dir/clone" --passphrase-file "$dir/pass" >/dev/null &&
    "$BUOY" snapshot list "$url" | grep -q "^s1 "
'

# the segment holding most of the pattern, and a byte in its middle
big=$(ls -S "$url"/seg/*/* | head -1)
key=${big#"$url/"}
size=$(stat -c %s "$big")
flip() { # FILE OFFSET
    python3 -c '
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 1]))
' "$1" "$2"
}

test_expect_success 'a segment with a flipped byte reads as EIO and the log names it' '
    test -n "$key" &&
    flip "$big" $((size / 2)) &&
    test_when_finished "flip \"$big\" $((size / 2))" &&
    buoy_mount t1 "$url" "$mp" --passphrase-file "$dir/pass" --read-only &&
    test_when_finished "\"$BUOY\" umount \"$mp\"" &&
    test_must_fail dd if="$mp/disk" of="$dir/bad" bs=64K skip=128 count=64 iflag=direct \
        status=none 2>"$dir/dd" &&
    grep -q "Input/output error" "$dir/dd" &&
    grep -q "$key: GET: chunk [0-9]*: authentication failed: the object was altered" \
        "$TEST_OUT/daemons/t1.log" &&
    test "$(stat -c %s "$dir/bad")" -lt $((4 << 20)) &&
    head -c "$(stat -c %s "$dir/bad")" "$dir/pattern" | cmp - "$dir/bad"
'

test_expect_success 'two segments swapped are detected; put back, all reads again' '
    second=$(ls -S "$url"/seg/*/* | sed -n 2p) &&
    test -n "$second" &&
    mv "$big" "$dir/tmp" && mv "$second" "$big" && mv "$dir/tmp" "$second" &&
    buoy_mount t2 "$url" "$mp" --passphrase-file "$dir/pass" --read-only &&
    test_must_fail dd if="$mp/disk" of=/dev/null bs=1M skip=8 count=4 iflag=direct \
        status=none 2>/dev/null &&
    "$BUOY" umount "$mp" &&
    grep -q "authentication failed" "$TEST_OUT/daemons/t2.log" &&
    mv "$big" "$dir/tmp" && mv "$second" "$big" && mv "$dir/tmp" "$second" &&
    buoy_mount r2 "$url" "$mp" --passphrase-file "$dir/pass" --read-only &&
    dd if="$mp/disk" of="$dir/back2" bs=1M skip=8 count=4 iflag=direct status=none &&
    "$BUOY" umount "$mp" &&
    cmp "$dir/pattern" "$dir/back2"
'

if command -v nbdkit >/dev/null && command -v nbdcopy >/dev/null &&
    [ -f "$BUOY_OUT/nbdkit-buoy-plugin.so" ]; then
test_expect_success 'buoy serve --passphrase-file exports it over NBD; a wrong one is refused' '
    "$BUOY" serve "$url" -r --socket "$dir/nbd.sock" --passphrase-file "$dir/pass" \
        --run "nbdcopy \"\$uri\" $dir/nbd.img" &&
    cmp -n $((4 << 20)) -i $((8 << 20)):0 "$dir/nbd.img" "$dir/pattern" &&
    test_must_fail "$BUOY" serve "$url" -r --socket "$dir/nbd.sock" \
        --passphrase-file "$dir/wrong" --run true 2>"$dir/err" &&
    grep -qx "buoy: wrong passphrase for $url" "$dir/err"
'
fi

start_moto
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
s3=s3://crypt/vol

test_expect_success 'on moto: create, mount, write, remount, read back; no plaintext in a segment' '
    make_bucket "$MOTO_URL" crypt &&
    "$BUOY" create "$s3" --endpoint "$MOTO_URL" --size 64M --segment-size 1M \
        --passphrase-file "$dir/pass" "${kdf[@]}" >/dev/null &&
    buoy_mount m1 "$s3" "$mp" --endpoint "$MOTO_URL" --passphrase-file "$dir/pass" &&
    dd if="$dir/pattern" of="$mp/disk" bs=1M seek=2 conv=notrunc,fsync status=none &&
    "$BUOY" umount "$mp" &&
    "$BUOY" store ls --endpoint "$MOTO_URL" "$s3" seg/ >"$dir/ls" &&
    seg=$(sed -n 1p "$dir/ls") &&
    test -n "$seg" &&
    "$BUOY" store get --endpoint "$MOTO_URL" "$s3" "$seg" "$dir/seg" &&
    test -s "$dir/seg" &&
    test_must_fail grep -qa BUOY-SECRET "$dir/seg" &&
    buoy_mount m2 "$s3" "$mp" --endpoint "$MOTO_URL" --passphrase-file "$dir/pass" \
        --read-only &&
    dd if="$mp/disk" of="$dir/back3" bs=1M skip=2 count=4 status=none &&
    "$BUOY" umount "$mp" &&
    cmp "$dir/pattern" "$dir/back3" &&
    log_clean m1 && log_clean m2
'

test_expect_success 'on moto: a wrong passphrase is refused' '
    test_must_fail "$BUOY" info --endpoint "$MOTO_URL" "$s3" --passphrase-file "$dir/wrong" \
        >/dev/null 2>"$dir/err" &&
    grep -qx "buoy: wrong passphrase for $s3" "$dir/err"
'

test_done
