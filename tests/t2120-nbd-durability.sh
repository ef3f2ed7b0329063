#!/bin/bash
# t2120-nbd-durability.sh - what "buoy serve" promises about data:
#   * a clean stop (SIGTERM) uploads everything: a restart with an empty
#     cache dir, so nothing can come from the local journal, reads it all;
#   * --durability remote: once a flush has returned, kill -9 of the server
#     loses nothing, again reopened with an empty cache dir (on moto), as
#     another host would: with --takeover once the dead server's lease ran out;
#   * --durability local: once a flush has returned the data is in the
#     journal, and a restart with the same cache dir after kill -9 replays it.
# Uploads are slowed down (--fault latency on PUTs) so that the kill -9
# right after the flush comes before the engine's sealer (1 s) plus the
# upload could have stored the data on their own: a flush that returned
# before the data was uploaded fails the remote test.  qemu-io runs with
# -t writeback, or every write would be FUA (its default is writethrough).
# FUA alone is not tested here: qemu-io flushes when it closes.  The local
# test shows the journal replay; kill -9 cannot tell fdatasync from none
# (the page cache survives it), only a power cut could.
. tests/lib/test-lib.sh
. tests/lib/nbd.sh

dir=$(mk_tmpdir)
sock=$dir/s
uri=$(nbd_uri "$sock")

test_expect_success 'SIGTERM uploads everything: a restart with a fresh cache reads it back' '
    "$BUOY" create "$dir/v1" --size 48M >/dev/null &&
    head -c 40M /dev/urandom >"$dir/img" &&
    serve_start srv "$dir/v1" "$sock" --cache-dir "$dir/c1" &&
    nbdcopy "$dir/img" "$uri" &&
    qemu-io -f raw -c "write -P 0x33 45M 100k" "$uri" >"$dir/io" &&
    stop_daemon srv &&
    "$BUOY" info "$dir/v1" >"$dir/info" &&
    grep -q "^checkpoint  ckpt/" "$dir/info" &&
    serve_start srv "$dir/v1" "$sock" --cache-dir "$dir/c1-fresh" &&
    nbdcopy "$uri" "$dir/out" &&
    cmp -n 41943040 "$dir/img" "$dir/out" &&
    qemu-io -f raw -c "read -P 0x33 45M 100k" "$uri" >"$dir/io" &&
    stop_daemon srv
'

test_expect_success 'and again after a second round of writes on the restarted server' '
    serve_start srv "$dir/v1" "$sock" --cache-dir "$dir/c1-fresh" &&
    qemu-io -f raw -c "write -P 0x34 1M 3M" -c "discard 10M 2M" "$uri" >"$dir/io" &&
    stop_daemon srv &&
    serve_start ro "$dir/v1" "$sock" --read-only &&
    qemu-io -r -f raw -c "read -P 0x34 1M 3M" -c "read -P 0 10M 2M" -c "read -P 0x33 45M 100k" \
        "$uri" >"$dir/io" &&
    stop_daemon ro
'

test_expect_success 'durability local: flush, kill -9, the same cache dir replays the journal' '
    "$BUOY" create "$dir/v2" --size 16M >/dev/null &&
    serve_start loc "$dir/v2" "$sock" --cache-dir "$dir/c2" --durability local \
        --fault latency=2500,ops=put &&
    qemu-io -t writeback -f raw -c "write -P 0x44 2M 1M" -c "write -P 0x45 5000 3000" -c flush \
        "$uri" >"$dir/io" &&
    kill_daemon loc KILL &&
    serve_start loc "$dir/v2" "$sock" --cache-dir "$dir/c2" &&
    qemu-io -f raw -c "read -P 0x44 2M 1M" -c "read -P 0x45 5000 3000" "$uri" >"$dir/io" &&
    stop_daemon loc
'

start_moto
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test

test_expect_success 'durability remote on S3: flush, kill -9, a fresh cache dir reads it all' '
    make_bucket "$MOTO_URL" dur &&
    "$BUOY" create --endpoint "$MOTO_URL" s3://dur/v --size 32M >/dev/null &&
    serve_start rem s3://dur/v "$sock" --endpoint "$MOTO_URL" --cache-dir "$dir/c3" \
        --durability remote --fault latency=2500,ops=put --lease-ms 1000 &&
    head -c 6M /dev/urandom >"$dir/img3" &&
    nbdcopy "$dir/img3" "$uri" &&
    qemu-io -t writeback -f raw -c "write -P 0x55 20M 2M" -c "write -P 0x56 30000 7000" -c flush \
        "$uri" >"$dir/io" &&
    kill_daemon rem KILL &&
    serve_start rem s3://dur/v "$sock" --endpoint "$MOTO_URL" --cache-dir "$dir/c3-fresh" \
        --takeover --lease-ms 1000 &&
    qemu-io -f raw -c "read -P 0x55 20M 2M" "$uri" >"$dir/io" &&
    nbdcopy "$uri" "$dir/out3" &&
    qemu-io -f raw -c "write -P 0x56 30000 7000" "$dir/img3" >"$dir/io" &&
    cmp -n 6291456 "$dir/img3" "$dir/out3" &&
    stop_daemon rem
'

test_done
