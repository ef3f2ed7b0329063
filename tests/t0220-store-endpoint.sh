#!/bin/bash
# t0220-store-endpoint.sh - where the S3 endpoint comes from, and what a
# store that cannot be reached does: a person's command (info, create,
# store ls, mount) fails at once with one line naming the endpoint, without
# retrying a refused connection; a transient error is still retried, each
# retry a warn line; --endpoint, $AWS_ENDPOINT_URL_S3 and $AWS_ENDPOINT_URL
# win in that order (moto); and a mounted volume whose store refuses
# connections for a while keeps retrying its upload and gets it through.
. tests/lib/test-lib.sh

dir=$(mk_tmpdir)
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
dead=$(free_port)
DEAD=http://127.0.0.1:$dead

# refused_once FILE ENDPOINT SOURCE: FILE is one line saying the connection to
# ENDPOINT (from SOURCE) was refused, not retried, and nothing was retried.
refused_once() {
    test "$(wc -l <"$1")" -eq 1 &&
    grep -q "^buoy: s3://bkt/.*: cannot connect to $2 ($3): Connection refused; check the endpoint and that its server is running (not retried)$" "$1" &&
    ! grep -q "retrying in" "$1" || { cat "$1"; return 1; }
}

test_expect_success 'info, create and store ls on a refused endpoint: one line, no retry' '
    test_expect_code 1 "$BUOY" info s3://bkt/v --endpoint "$DEAD/" 2>"$dir/info.err" &&
    refused_once "$dir/info.err" "$DEAD" --endpoint &&
    test_expect_code 1 "$BUOY" create s3://bkt/v --size 1G --endpoint "$DEAD" 2>"$dir/create.err" &&
    refused_once "$dir/create.err" "$DEAD" --endpoint &&
    test_expect_code 1 "$BUOY" store ls s3://bkt/v --endpoint "$DEAD" 2>"$dir/ls.err" &&
    refused_once "$dir/ls.err" "$DEAD" --endpoint
'

test_expect_success 'a refused endpoint from $AWS_ENDPOINT_URL is named as such' '
    AWS_ENDPOINT_URL=$DEAD test_expect_code 1 "$BUOY" store ls s3://bkt 2>"$dir/env.err" &&
    refused_once "$dir/env.err" "$DEAD" "\$AWS_ENDPOINT_URL"
'

test_expect_success 'a transient error is still retried by a one-shot command, each retry one warn line' '
    mkdir "$dir/store" &&
    test_expect_code 1 "$BUOY" store ls "$dir/store" --fault err=1 --retries 3 2>"$dir/t.err" &&
    test "$(grep -c "^buoy: warn: dir://$dir/store/\*: LIST: fault: injected transient error (attempt [1-3] of 4); retrying in [0-9]* ms$" "$dir/t.err")" -eq 3 &&
    grep -q "(attempt 3 of 4)" "$dir/t.err" &&
    grep -q "^buoy: .*LIST: fault: injected transient error (gave up after 4 attempts)$" "$dir/t.err" &&
    test "$(wc -l <"$dir/t.err")" -eq 4
'

start_moto

test_expect_success 'moto: $AWS_ENDPOINT_URL is the endpoint when no --endpoint is given' '
    make_bucket "$MOTO_URL" bkt &&
    printf "hello" >"$dir/x" &&
    AWS_ENDPOINT_URL=$MOTO_URL "$BUOY" store put s3://bkt/p k "$dir/x" >/dev/null &&
    AWS_ENDPOINT_URL=$MOTO_URL "$BUOY" store get s3://bkt/p k "$dir/y" &&
    cmp "$dir/x" "$dir/y" &&
    AWS_ENDPOINT_URL=$MOTO_URL "$BUOY" create s3://bkt/vol --size 16M >/dev/null &&
    AWS_ENDPOINT_URL=$MOTO_URL "$BUOY" info s3://bkt/vol >"$dir/info" &&
    grep -q "16 MiB" "$dir/info"
'

test_expect_success 'moto: $AWS_ENDPOINT_URL_S3 wins over $AWS_ENDPOINT_URL, --endpoint over both' '
    AWS_ENDPOINT_URL=$DEAD AWS_ENDPOINT_URL_S3=$MOTO_URL "$BUOY" store ls s3://bkt/p >"$dir/ls" &&
    test "$(cat "$dir/ls")" = k &&
    AWS_ENDPOINT_URL=$DEAD AWS_ENDPOINT_URL_S3=$DEAD "$BUOY" store ls s3://bkt/p \
        --endpoint "$MOTO_URL" >"$dir/ls" &&
    test "$(cat "$dir/ls")" = k &&
    AWS_ENDPOINT_URL=$MOTO_URL AWS_ENDPOINT_URL_S3=$DEAD test_expect_code 1 \
        "$BUOY" store ls s3://bkt/p 2>"$dir/s3.err" &&
    refused_once "$dir/s3.err" "$DEAD" "\$AWS_ENDPOINT_URL_S3" &&
    AWS_ENDPOINT_URL=$MOTO_URL AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true test_expect_code 1 \
        "$BUOY" store ls s3://bkt/p --endpoint "$DEAD" 2>"$dir/ign.err" &&
    refused_once "$dir/ign.err" "$DEAD" --endpoint
'

test_expect_success 'moto: a bad $AWS_ENDPOINT_URL is a one-line error naming it' '
    AWS_ENDPOINT_URL=ftp://x test_expect_code 1 "$BUOY" store ls s3://bkt 2>"$dir/bad.err" &&
    test "$(wc -l <"$dir/bad.err")" -eq 1 &&
    grep -q "bad endpoint .ftp://x. (\$AWS_ENDPOINT_URL): use http(s)://host\[:port\]" "$dir/bad.err"
'

PROXY=$BUOY_OUT/bench/delayproxy
if [ "$(id -u)" -ne 0 ] || [ ! -c /dev/fuse ] || [ ! -x "$PROXY" ]; then
    skip_all "the daemon test needs root, /dev/fuse and $PROXY"
fi

pport=$(free_port)
start_proxy() {
    rm -f "$dir/proxy.ports" &&
    start_daemon proxy "$PROXY" --upstream "127.0.0.1:$MOTO_PORT" --listen "$pport" \
        --delay-ms 0 --port-file "$dir/proxy.ports" &&
    wait_for_file "$dir/proxy.ports" 10
}
mp=$dir/mp
mkdir "$mp"

test_expect_success 'a mount refuses to start on a refused endpoint, at once, in one line' '
    test_expect_code 1 "$BUOY" mount s3://bkt/vol "$mp" --endpoint "$DEAD" \
        --cache-dir "$dir/c0" --log-file "$dir/m0.log" 2>"$dir/m0.err" &&
    refused_once "$dir/m0.err" "$DEAD" --endpoint
'

test_expect_success 'a mounted volume rides out refused connections: retries, then uploads' '
    start_proxy &&
    "$BUOY" mount s3://bkt/vol "$mp" --endpoint "http://127.0.0.1:$pport" --retries 30 \
        --cache-dir "$dir/c1" --log-file "$dir/m1.log" &&
    test_when_finished "\"$BUOY\" umount \"$mp\" >/dev/null 2>&1; true" &&
    head -c 1048576 /dev/urandom >"$dir/data" &&
    dd if="$dir/data" of="$mp/disk" bs=64k conv=notrunc,fsync status=none &&
    stop_daemon proxy &&
    head -c 1048576 /dev/urandom >"$dir/data2" &&
    { dd if="$dir/data2" of="$mp/disk" bs=64k seek=16 conv=notrunc,fsync status=none &
      ddpid=$!; } &&
    wait_until 60 grep -q "Connection refused.*retrying in" "$dir/m1.log" &&
    start_proxy &&
    wait $ddpid &&
    "$BUOY" umount "$mp" &&
    grep -q "cannot connect to http://127.0.0.1:$pport (--endpoint): Connection refused; check the endpoint and that its server is running (attempt [0-9]* of 31); retrying in" "$dir/m1.log" &&
    grep -q "closed s3://bkt/vol: everything written is in the store" "$dir/m1.log" &&
    ! grep -q "gave up" "$dir/m1.log" &&
    "$BUOY" mount s3://bkt/vol "$mp" -r --endpoint "$MOTO_URL" --cache-dir "$dir/c2" \
        --log-file "$dir/m2.log" &&
    cmp -n 1048576 "$mp/disk" "$dir/data" &&
    cmp -n 1048576 -i 1048576:0 "$mp/disk" "$dir/data2" &&
    "$BUOY" umount "$mp"
'

test_done
