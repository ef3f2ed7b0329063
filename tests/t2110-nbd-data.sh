#!/bin/bash
# t2110-nbd-data.sh - data through "buoy serve": nbdcopy in and out of a
# random image, qemu-img convert and compare, qemu-io patterns (aligned and
# not), discard and write-zeroes reading back zeros, FUA writes, and
# several connections seeing one volume (nbdcopy --connections=4; a write
# and flush on one qemu-io connection read by another while both are open).
# buoy stats reads the statistics the server writes to --stats-file.
# On the directory store, then the same copy on S3 (moto).
. tests/lib/test-lib.sh
. tests/lib/nbd.sh

dir=$(mk_tmpdir)
vol=$dir/vol
sock=$dir/s
uri=$(nbd_uri "$sock")

test_expect_success 'setup: a 64 MiB volume, served' '
    "$BUOY" create "$vol" --size 64M >/dev/null &&
    serve_start srv "$vol" "$sock" --cache-dir "$dir/cache" --stats-file "$dir/stats" &&
    head -c 64M /dev/urandom >"$dir/img"
'

test_expect_success 'nbdcopy a random image in and back out: the same bytes' '
    nbdcopy "$dir/img" "$uri" &&
    nbdcopy "$uri" "$dir/out" &&
    cmp "$dir/img" "$dir/out"
'

test_expect_success 'buoy stats reads the served volume'"'"'s stats file' '
    written() { sed -n "s/^bytes_written //p" "$dir/stats" 2>/dev/null; } &&
    for i in $(seq 60); do test "$(written)" -ge $((64 << 20)) 2>/dev/null && break; sleep 0.1; done &&
    "$BUOY" stats "$dir/stats" >"$dir/st" &&
    grep -q "^volume     $vol (pid [0-9]*)" "$dir/st" &&
    grep -q "^requests   GET [0-9]*, PUT [1-9]" "$dir/st" &&
    "$BUOY" stats --json "$dir/stats" >"$dir/st.json" &&
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d[\"bytes_written\"] >= 64 << 20, d[\"bytes_written\"]" "$dir/st.json"
'

test_expect_success 'qemu-img compare sees the image, and a changed byte' '
    qemu-img compare -f raw -F raw "$dir/img" "$uri" &&
    cp "$dir/img" "$dir/img2" &&
    printf "\377" | dd of="$dir/img2" bs=1 seek=12345678 conv=notrunc 2>/dev/null &&
    test_expect_code 1 qemu-img compare -f raw -F raw "$dir/img2" "$uri" >"$dir/cmp"
'

test_expect_success 'qemu-img convert a sparse qcow2 over the data: holes read as zeros' '
    qemu-img create -f qcow2 "$dir/src.qcow2" 64M >/dev/null &&
    qemu-io -f qcow2 -c "write -P 0x61 0 1M" -c "write -P 0x62 33M 3M" \
        -c "write -P 0x63 63M 1M" "$dir/src.qcow2" >"$dir/io" &&
    qemu-img convert -n -f qcow2 -O raw "$dir/src.qcow2" "$uri" &&
    qemu-img compare -f qcow2 -F raw "$dir/src.qcow2" "$uri" &&
    qemu-io -f raw -c "read -P 0 1M 32M" -c "read -P 0x62 33M 3M" "$uri" >"$dir/io"
'

test_expect_success 'qemu-io patterns, aligned and unaligned, read back exactly' '
    qemu-io -f raw -c "write -z 0 2M" -c "write -P 0xa5 4096 65536" -c "write -P 0x5a 70001 3333" \
        -c "write -P 0x11 1048575 2" \
        -c "read -P 0xa5 4096 65536" -c "read -P 0 69632 369" -c "read -P 0x5a 70001 3333" \
        -c "read -P 0 1048574 1" -c "read -P 0x11 1048575 2" "$uri" >"$dir/io" 2>&1 ||
    { cat "$dir/io"; return 1; }
'

test_expect_success 'qemu-io: a wrong pattern is caught (the checks can fail)' '
    test_expect_code 1 qemu-io -f raw -c "read -P 0xa6 4096 4096" "$uri" >"$dir/io" &&
    grep -q "Pattern verification failed" "$dir/io"
'

test_expect_success 'discard (trim) reads back zeros, whole and partial blocks' '
    qemu-io -f raw -c "write -P 0x77 8M 1M" -c "discard 8M 512k" -c "read -P 0 8M 512k" \
        -c "read -P 0x77 8704k 512k" -c "discard 9000000 5000" -c "read -P 0 9000000 5000" \
        -c "read -P 0x77 8999000 1000" -c "read -P 0x77 9005000 1000" "$uri" >"$dir/io"
'

test_expect_success 'write-zeroes (with and without unmap) reads back zeros' '
    qemu-io -f raw -c "write -P 0x78 10M 1M" -c "write -z 10M 256k" -c "write -z -u 10752k 256k" \
        -c "read -P 0 10M 256k" -c "read -P 0x78 10496k 256k" -c "read -P 0 10752k 256k" \
        -c "read -P 0x78 11008k 256k" -c "write -z 11273193 999" -c "read -P 0 11273193 999" \
        -c "read -P 0x78 11272192 1001" -c "read -P 0x78 11274192 1000" "$uri" >"$dir/io" 2>&1 ||
    { cat "$dir/io"; return 1; }
'

test_expect_success 'FUA writes and flushes succeed and read back' '
    qemu-io -f raw -c "write -f -P 0x79 12M 128k" -c "flush" -c "read -P 0x79 12M 128k" \
        "$uri" >"$dir/io"
'

test_expect_success 'four connections at once copy in and out: the same bytes' '
    head -c 64M /dev/urandom >"$dir/img4" &&
    nbdcopy --connections=4 --requests=8 "$dir/img4" "$uri" &&
    nbdcopy --connections=4 "$uri" "$dir/out4" &&
    cmp "$dir/img4" "$dir/out4"
'

test_expect_success 'a write flushed on one connection is read on another, both open' '
    stdbuf -oL qemu-io -f raw -c "write -P 0x5e 20M 1M" -c "flush" -c "write -P 0x5f 30M 4k" \
        -c "sleep 20000" "$uri" >"$dir/writer.out" 2>&1 &
    writer=$!
    test_when_finished "kill $writer 2>/dev/null; wait $writer 2>/dev/null; :" &&
    for i in $(seq 600); do
        grep -q "wrote 4096/4096 bytes at offset 31457280" "$dir/writer.out" && break
        kill -0 $writer || break
        sleep 0.1
    done &&
    grep -q "wrote 4096/4096 bytes at offset 31457280" "$dir/writer.out" &&
    kill -0 $writer &&
    qemu-io -f raw -c "read -P 0x5e 20M 1M" -c "read -P 0x5f 30M 4k" "$uri" >"$dir/reader.out"
'

test_expect_success 'the server stops cleanly and the data is in the store' '
    stop_daemon srv &&
    qemu-io -f raw -c "write -P 0x5e 20M 1M" -c "write -P 0x5f 30M 4k" "$dir/img4" >"$dir/io" &&
    serve_start ro "$vol" "$sock" --read-only &&
    nbdcopy "$uri" "$dir/out5" &&
    cmp "$dir/img4" "$dir/out5" &&
    stop_daemon ro
'

start_moto
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
test_expect_success 'on S3 (moto): nbdcopy in, restart with a fresh cache, the same bytes out' '
    make_bucket "$MOTO_URL" nbd &&
    "$BUOY" create --endpoint "$MOTO_URL" s3://nbd/v --size 64M >/dev/null &&
    serve_start s3 s3://nbd/v "$sock" --endpoint "$MOTO_URL" --cache-dir "$dir/c3" &&
    head -c 24M /dev/urandom >"$dir/img6" &&
    nbdcopy "$dir/img6" "$uri" &&
    qemu-io -f raw -c "discard 4M 4M" "$uri" >"$dir/io" &&
    stop_daemon s3 &&
    serve_start s3 s3://nbd/v "$sock" --endpoint "$MOTO_URL" --cache-dir "$dir/c4" &&
    nbdcopy "$uri" "$dir/out6" &&
    stop_daemon s3 &&
    dd if=/dev/zero of="$dir/img6" bs=1M seek=4 count=4 conv=notrunc 2>/dev/null &&
    cmp -n 25165824 "$dir/img6" "$dir/out6" &&
    cmp -n 41943040 -i 25165824:25165824 /dev/zero "$dir/out6"
'

test_done
