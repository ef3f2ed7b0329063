#!/bin/bash
# t1020-vol-model-moto.sh - the volume engine's model test (tests/unit/test_vol.c)
# on S3: moto's server, with and without 5% injected transient errors.
# Random unaligned writes, reads, trims, flushes, reopens and simulated
# crashes are compared with an in-memory reference.
. tests/lib/test-lib.sh

dir=$(mk_tmpdir)
start_moto
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test

test_expect_success 'the volume model test passes on moto' '
    make_bucket "$MOTO_URL" vols &&
    VOL_TEST_ENDPOINT=$MOTO_URL VOL_TEST_BUCKET=vols VOL_TEST_OPS=600 \
        "$BUOY_OUT/tests/test_vol" >"$dir/tap" 2>"$dir/err" &&
    cat "$dir/tap" &&
    grep -q "^ok .* no faults, default block cache: every read matched the reference" "$dir/tap" &&
    grep -q "^ok .* err=0.05.*: the whole volume matches at the end" "$dir/tap" &&
    ! grep -q "^not ok" "$dir/tap"
'

test_expect_success 'its segments and checkpoints are in the bucket' '
    "$BUOY" store ls --endpoint "$MOTO_URL" s3://vols >"$dir/ls" &&
    grep -q "/seg/[0-9a-f][0-9a-f]/[0-9a-f]\{16\}\.[0-9a-f]\{8\}$" "$dir/ls" &&
    grep -q "/ckpt/[0-9a-f]\{16\}\.[0-9a-f]\{8\}$" "$dir/ls" &&
    grep -q "/lease$" "$dir/ls" &&
    grep -q "/super$" "$dir/ls"
'

test_expect_success 'buoy info reads the volume the model test left' '
    vol=$(sed -n "s|^\(vol-[0-9]*\)/super$|\1|p" "$dir/ls") &&
    test -n "$vol" &&
    "$BUOY" info --endpoint "$MOTO_URL" "s3://vols/$vol" >"$dir/info" &&
    cat "$dir/info" &&
    nseg=$(grep -c "^$vol/seg/" "$dir/ls") &&
    grep -q "^segments    $nseg objects" "$dir/info" &&
    grep -q "^size        4 MiB (4194304 bytes), block size 4096, segment size 64 KiB" "$dir/info" &&
    grep -q "^checkpoint  ckpt/[0-9a-f]\{16\}" "$dir/info" &&
    grep -q "^live data   [1-9]" "$dir/info"
'

test_done
