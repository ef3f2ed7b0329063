#!/bin/bash
# t1000-vol-create.sh - "buoy create": a new volume is its superblock,
# written once; creating over a volume is refused unless --force, which
# removes the old volume's objects (and only those); bad input is a one-line
# error.  On the directory store and on moto.
. tests/lib/test-lib.sh

dir=$(mk_tmpdir)

test_expect_success 'create writes a readable superblock' '
    "$BUOY" create "$dir/v1" --size 16G >"$dir/out" &&
    grep -q "created volume .*: 16 GiB, block size 4096, segment size 8 MiB, compression none, uuid " "$dir/out" &&
    "$BUOY" store get "$dir/v1" super "$dir/super" &&
    grep -qx "buoy-volume 1" "$dir/super" &&
    grep -qx "size 17179869184" "$dir/super" &&
    grep -qx "block-size 4096" "$dir/super" &&
    grep -q "^check [0-9a-f]\{16\}$" "$dir/super"
'

test_expect_success 'creating over a volume is refused and leaves it alone' '
    test_expect_code 1 "$BUOY" create "$dir/v1" --size 1G 2>"$dir/err" &&
    test "$(wc -l <"$dir/err")" -eq 1 &&
    grep -q "a volume already exists at .* use --force" "$dir/err" &&
    "$BUOY" store get "$dir/v1" super "$dir/super2" &&
    cmp "$dir/super" "$dir/super2"
'

test_expect_success '--force replaces the volume and only the volume' '
    printf x >"$dir/x" &&
    "$BUOY" store put "$dir/v1" seg/00/0000000000000001.00000000 "$dir/x" >/dev/null &&
    "$BUOY" store put "$dir/v1" ckpt/0000000000000001.00000000 "$dir/x" >/dev/null &&
    "$BUOY" store put "$dir/v1" not-ours "$dir/x" >/dev/null &&
    "$BUOY" create "$dir/v1" --size 1G --force >"$dir/out" &&
    grep -q ": 1 GiB" "$dir/out" &&
    "$BUOY" store ls "$dir/v1" >"$dir/ls" &&
    printf "not-ours\nsuper\n" >"$dir/want" &&
    cmp "$dir/want" "$dir/ls" &&
    ! cmp -s "$dir/super" "$dir/v1/super"
'

test_expect_success 'buoy info shows a fresh volume' '
    "$BUOY" info "$dir/v1" >"$dir/info" &&
    grep -q "^size        1 GiB (1073741824 bytes), block size 4096, segment size 8 MiB" "$dir/info" &&
    grep -q "^segments    0 objects" "$dir/info" &&
    grep -q "^checkpoint  none yet" "$dir/info" &&
    test_expect_code 3 "$BUOY" info "$dir/empty" 2>"$dir/err" && # 3: not found
    grep -q "no volume at .*; make one with buoy create" "$dir/err"
'

test_expect_success 'custom block and segment sizes' '
    "$BUOY" create "$dir/v2" --size 1G --block-size 512 --segment-size 32M >"$dir/out" &&
    grep -q "block size 512, segment size 32 MiB" "$dir/out"
'

test_expect_success 'bad sizes are one-line usage errors and create nothing' '
    test_expect_code 2 "$BUOY" create "$dir/v3" --size lots 2>"$dir/err" &&
    grep -q "is not a size" "$dir/err" &&
    test_expect_code 2 "$BUOY" create "$dir/v3" --size 1000 2>"$dir/err" &&
    grep -q "not a positive multiple of the block size" "$dir/err" &&
    test_expect_code 2 "$BUOY" create "$dir/v3" --size 1G --block-size 3000 2>"$dir/err" &&
    grep -q "power of two" "$dir/err" &&
    test_expect_code 2 "$BUOY" create "$dir/v3" 2>"$dir/err" &&
    grep -q "size is required" "$dir/err" &&
    test ! -e "$dir/v3/super"
'

test_expect_success 'sizes take fractions and P; a volume too large is refused naming the limit' '
    "$BUOY" create "$dir/v4" --size 1.5G >"$dir/out" &&
    grep -q ": 1536 MiB," "$dir/out" &&
    "$BUOY" create "$dir/v5" --size 1P >"$dir/out" &&
    grep -q ": 1 PiB," "$dir/out" &&
    test_expect_code 2 "$BUOY" create "$dir/v6" --size 8E 2>"$dir/err" &&
    test "$(wc -l <"$dir/err")" -eq 1 &&
    grep -q "(8 EiB) is too large: the limit is 18014398505287680 bytes (16 PiB less 4 MiB) with 4096-byte blocks" "$dir/err" &&
    test ! -e "$dir/v6/super"
'

start_moto
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
test_expect_success 'create on S3 (moto), and refused twice' '
    make_bucket "$MOTO_URL" vols &&
    "$BUOY" create --endpoint "$MOTO_URL" s3://vols/a --size 2G >"$dir/out" &&
    "$BUOY" store ls --endpoint "$MOTO_URL" s3://vols >"$dir/ls" &&
    test "$(cat "$dir/ls")" = "a/super" &&
    test_expect_code 1 "$BUOY" create --endpoint "$MOTO_URL" s3://vols/a --size 2G 2>"$dir/err" &&
    grep -q "already exists" "$dir/err"
'

test_expect_success 'a missing bucket is a one-line error' '
    test_expect_code 3 "$BUOY" create --endpoint "$MOTO_URL" s3://no-such-bucket/a --size 1G \
        2>"$dir/err" &&
    test "$(wc -l <"$dir/err")" -eq 1 &&
    grep -q "bucket .no-such-bucket. does not exist" "$dir/err"
'

seg_bytes() { # URL: bytes of its segment objects
    "$BUOY" store ls -l "$1" seg/ | awk '$1 ~ /^[0-9]+$/ { s += $1 } END { print s + 0 }'
}
test_expect_success 'create --compression zstd: compressible data is stored smaller' '
    "$BUOY" create "$dir/z" --size 64M --compression zstd:5 >"$dir/out" &&
    grep -q "compression zstd:5" "$dir/out" &&
    "$BUOY" info "$dir/z" >"$dir/info" &&
    grep -q "compression zstd:5" "$dir/info" &&
    python3 -c "import sys; sys.stdout.write(\"buoy compresses this line\\n\" * 320000)" >"$dir/text" &&
    truncate -s 8M "$dir/text" &&
    "$BUOY" create "$dir/z2" --compression zstd --import "$dir/text" --cache-dir "$dir/c" >/dev/null &&
    stored=$(seg_bytes "$dir/z2") &&
    test "$stored" -gt 0 && test "$stored" -lt $((1 << 20)) &&
    test_expect_code 2 "$BUOY" create "$dir/z3" --size 1G --compression lz4 2>"$dir/err" &&
    grep -q "compression .lz4. is not supported: none, zstd or zstd:1..19" "$dir/err"
'

test_expect_success 'a dir store whose parent directories are missing is created with them' '
    "$BUOY" create "$dir/no/such/parent/vol" --size 16M >/dev/null &&
    "$BUOY" info "$dir/no/such/parent/vol" >"$dir/info" &&
    grep -q "16 MiB" "$dir/info" &&
    test_expect_code 3 "$BUOY" info "$dir/no/other/vol" 2>/dev/null &&
    ! test -e "$dir/no/other"
'

test_done
