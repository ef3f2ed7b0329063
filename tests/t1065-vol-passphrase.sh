#!/bin/bash
# t1065-vol-passphrase.sh - buoy passphrase: an encrypted volume's
# passphrase changes with one superblock rewrite (its master key rewrapped);
# afterwards the old passphrase is wrong and the new one reads everything,
# snapshots included; no other object is touched; a clone keeps its own
# passphrase and still reads its base; a mount that runs across the change
# goes on writing.  Faults: the PUT's answer lost (the change landed and is
# reported done), the PUT failed (the old passphrase still opens it), a
# concurrent change (refused, not overwritten).  The same on moto.
. tests/lib/test-lib.sh
. tests/lib/fuse-lib.sh

dir=$(mk_tmpdir)
mp=$dir/mnt
mkdir -p "$mp"
url=$dir/store
kdf=(--kdf-memory 8M --kdf-passes 1)
for p in one two three four five; do
    printf 'passphrase %s\n' "$p" >"$dir/$p"
done
chmod 600 "$dir"/one "$dir"/two "$dir"/three "$dir"/four "$dir"/five
head -c $((3 << 20)) /dev/urandom >"$dir/pattern"

# every object but the superblock, with its checksum
objects() { (cd "$1" && find . -type f ! -name super ! -name lease -print0 | sort -z |
    xargs -0 md5sum); }

wrong() { # URL PASSFILE: info says the passphrase is wrong
    test_must_fail "$BUOY" info "$1" --passphrase-file "$2" "${@:3}" >/dev/null 2>"$dir/err" &&
        grep -qx "buoy: wrong passphrase for $1" "$dir/err"
}

test_expect_success 'an encrypted volume with data, a snapshot and a clone' '
    "$BUOY" create "$url" --size 32M --segment-size 1M --passphrase-file "$dir/one" "${kdf[@]}" \
        >/dev/null &&
    buoy_mount w1 "$url" "$mp" --passphrase-file "$dir/one" &&
    dd if="$dir/pattern" of="$mp/disk" bs=1M seek=4 conv=notrunc,fsync status=none &&
    "$BUOY" umount "$mp" &&
    log_clean w1 &&
    "$BUOY" snapshot create "$url" s1 --passphrase-file "$dir/one" --cache-dir "$dir/c" \
        >/dev/null &&
    "$BUOY" clone "$url@s1" "$dir/clone" --passphrase-file "$dir/one" >/dev/null
'

test_expect_success 'buoy passphrase rewrites the superblock alone' '
    objects "$url" >"$dir/objs.before" &&
    cp "$url/super" "$dir/super.before" &&
    "$BUOY" passphrase "$url" --passphrase-file "$dir/one" --new-passphrase-file "$dir/two" \
        >"$dir/out" &&
    grep -qx "changed the passphrase of $url; the old one no longer opens it" "$dir/out" &&
    objects "$url" >"$dir/objs.after" &&
    cmp "$dir/objs.before" "$dir/objs.after" &&
    test "$(grep ^uuid "$url/super")" = "$(grep ^uuid "$dir/super.before")" &&
    test "$(grep ^salt "$url/super")" != "$(grep ^salt "$dir/super.before")" &&
    test "$(grep ^wrapped-key "$url/super")" != "$(grep ^wrapped-key "$dir/super.before")" &&
    grep -qx "kdf argon2id ops=1 mem=8388608" "$url/super"
'

test_expect_success 'the old passphrase is wrong now; the new one reads the data and the snapshot' '
    wrong "$url" "$dir/one" &&
    buoy_mount r1 "$url" "$mp" --passphrase-file "$dir/two" --read-only &&
    cmp -n $((3 << 20)) -i $((4 << 20)):0 "$mp/disk" "$dir/pattern" &&
    "$BUOY" umount "$mp" &&
    buoy_mount r2 "$url@s1" "$mp" --passphrase-file "$dir/two" &&
    cmp -n $((3 << 20)) -i $((4 << 20)):0 "$mp/disk" "$dir/pattern" &&
    "$BUOY" umount "$mp" &&
    log_clean r1 && log_clean r2
'

test_expect_success 'the clone keeps its passphrase, reads its base, and changes its own' '
    wrong "$dir/clone" "$dir/two" &&
    buoy_mount c1 "$dir/clone" "$mp" --passphrase-file "$dir/one" --read-only &&
    cmp -n $((3 << 20)) -i $((4 << 20)):0 "$mp/disk" "$dir/pattern" &&
    "$BUOY" umount "$mp" &&
    "$BUOY" passphrase "$dir/clone" --passphrase-file "$dir/one" \
        --new-passphrase-file "$dir/three" >/dev/null &&
    wrong "$dir/clone" "$dir/one" &&
    buoy_mount c2 "$dir/clone" "$mp" --passphrase-file "$dir/three" --read-only &&
    cmp -n $((3 << 20)) -i $((4 << 20)):0 "$mp/disk" "$dir/pattern" &&
    "$BUOY" umount "$mp" &&
    log_clean c1 && log_clean c2
'

test_expect_success 'a mount running across the change goes on writing; the new passphrase reads it' '
    buoy_mount w2 "$url" "$mp" --passphrase-file "$dir/two" &&
    "$BUOY" passphrase "$url" --passphrase-file "$dir/two" --new-passphrase-file "$dir/three" \
        --kdf-memory 16M >/dev/null &&
    grep -qx "kdf argon2id ops=1 mem=16777216" "$url/super" &&
    dd if="$dir/pattern" of="$mp/disk" bs=1M seek=20 conv=notrunc,fsync status=none &&
    "$BUOY" umount "$mp" &&
    log_clean w2 &&
    buoy_mount r3 "$url" "$mp" --passphrase-file "$dir/three" --read-only &&
    cmp -n $((3 << 20)) -i $((20 << 20)):0 "$mp/disk" "$dir/pattern" &&
    cmp -n $((3 << 20)) -i $((4 << 20)):0 "$mp/disk" "$dir/pattern" &&
    "$BUOY" umount "$mp" &&
    log_clean r3
'

test_expect_success 'refused: a wrong current passphrase, none, a plain volume, a snapshot, no volume' '
    cp "$url/super" "$dir/super.before" &&
    test_must_fail "$BUOY" passphrase "$url" --passphrase-file "$dir/one" \
        --new-passphrase-file "$dir/four" 2>"$dir/err" &&
    grep -qx "buoy: passphrase $url: wrong passphrase for $url" "$dir/err" &&
    cmp "$url/super" "$dir/super.before" &&
    test_must_fail "$BUOY" passphrase "$url" --passphrase-file "$dir/three" 2>"$dir/err" &&
    grep -q "give the new passphrase with --new-passphrase-file" "$dir/err" &&
    test_must_fail "$BUOY" passphrase "$url" --new-passphrase-file "$dir/four" 2>"$dir/err" &&
    grep -q "give the current passphrase with --passphrase-file" "$dir/err" &&
    "$BUOY" create "$dir/plain" --size 16M >/dev/null &&
    test_must_fail "$BUOY" passphrase "$dir/plain" --passphrase-file "$dir/one" \
        --new-passphrase-file "$dir/four" 2>"$dir/err" &&
    grep -q "is not encrypted" "$dir/err" &&
    test_must_fail "$BUOY" passphrase "$url@s1" --passphrase-file "$dir/three" \
        --new-passphrase-file "$dir/four" 2>"$dir/err" &&
    grep -q "a snapshot has its volume.s passphrase" "$dir/err" &&
    test_expect_code 3 "$BUOY" passphrase "$dir/nothing" --passphrase-file "$dir/three" \
        --new-passphrase-file "$dir/four" 2>"$dir/err" &&
    grep -q "no volume at $dir/nothing" "$dir/err" &&
    test ! -e "$dir/nothing" &&
    cmp "$url/super" "$dir/super.before"
'

test_expect_success 'fault: the PUT lands but its answer is lost; the retry sees it done' '
    "$BUOY" passphrase "$url" --passphrase-file "$dir/three" --new-passphrase-file "$dir/four" \
        --fault ackloss=1,ops=put --retries 2 >"$dir/out" 2>"$dir/err" &&
    grep -q "changed the passphrase" "$dir/out" &&
    wrong "$url" "$dir/three" &&
    "$BUOY" info "$url" --passphrase-file "$dir/four" >/dev/null
'

test_expect_success 'fault: the PUT fails; the old passphrase still opens the volume' '
    cp "$url/super" "$dir/super.before" &&
    test_must_fail "$BUOY" passphrase "$url" --passphrase-file "$dir/four" \
        --new-passphrase-file "$dir/five" --fault fail_nth=2 2>"$dir/err" &&
    grep -q "the passphrase is unchanged" "$dir/err" &&
    cmp "$url/super" "$dir/super.before" &&
    "$BUOY" info "$url" --passphrase-file "$dir/four" >/dev/null &&
    wrong "$url" "$dir/five"
'

test_expect_success 'two changes at once: the later PUT is refused, never a lost passphrase' '
    ( "$BUOY" passphrase "$url" --passphrase-file "$dir/four" --new-passphrase-file "$dir/five" \
        --fault latency=3000,ops=put >"$dir/slow.out" 2>"$dir/slow.err"; echo $? >"$dir/slow.rc" ) &
    sleep 1 &&
    "$BUOY" passphrase "$url" --passphrase-file "$dir/four" --new-passphrase-file "$dir/one" \
        >/dev/null &&
    wait &&
    test "$(cat "$dir/slow.rc")" != 0 &&
    grep -q "the superblock changed while this ran" "$dir/slow.err" &&
    "$BUOY" info "$url" --passphrase-file "$dir/one" >/dev/null &&
    wrong "$url" "$dir/five"
'

start_moto
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
s3=s3://pass/vol

test_expect_success 'on moto: change the passphrase; the old is wrong, the new reads the data' '
    make_bucket "$MOTO_URL" pass &&
    "$BUOY" create "$s3" --endpoint "$MOTO_URL" --size 16M --segment-size 1M \
        --passphrase-file "$dir/one" "${kdf[@]}" >/dev/null &&
    buoy_mount m1 "$s3" "$mp" --endpoint "$MOTO_URL" --passphrase-file "$dir/one" &&
    dd if="$dir/pattern" of="$mp/disk" bs=1M seek=2 conv=notrunc,fsync status=none &&
    "$BUOY" umount "$mp" &&
    "$BUOY" passphrase "$s3" --endpoint "$MOTO_URL" --passphrase-file "$dir/one" \
        --new-passphrase-file "$dir/two" >/dev/null &&
    wrong "$s3" "$dir/one" --endpoint "$MOTO_URL" &&
    buoy_mount m2 "$s3" "$mp" --endpoint "$MOTO_URL" --passphrase-file "$dir/two" --read-only &&
    cmp -n $((3 << 20)) -i $((2 << 20)):0 "$mp/disk" "$dir/pattern" &&
    "$BUOY" umount "$mp" &&
    log_clean m1 && log_clean m2
'

test_done
