#!/bin/bash
# t4000-bench-proxy.sh - bench/delayproxy, the latency injector the benchmarks
# put in front of the S3 server: objects go through it intact (fixed-length,
# chunked and Expect: 100-continue uploads, ranged GETs, HEAD), every
# response waits at least the delay, kept-alive connections carry several
# requests, requests are counted by kind on the stats port, many concurrent
# connections work, and --bw caps a connection's bandwidth.
. tests/lib/test-lib.sh
requires curl cmp
PROXY=$BUOY_OUT/bench/delayproxy
[ -x "$PROXY" ] || skip_all "no $PROXY (make MODE=asan all builds it)"
start_moto

dir=$(mk_tmpdir)
SIG=(--aws-sigv4 aws:amz:us-east-1:s3 --user bench:bench)

# start_proxy NAME ARGS...: sets PORT and SPORT from its port file.
start_proxy() {
    local name=$1
    shift
    rm -f "$dir/$name.ports" &&
    start_daemon "$name" "$PROXY" --upstream "127.0.0.1:$MOTO_PORT" \
        --port-file "$dir/$name.ports" "$@" &&
    wait_for_file "$dir/$name.ports" 10 &&
    read -r PORT SPORT <"$dir/$name.ports"
}
# pstat NAME: one counter from the stats port of the proxy on $SPORT.
pstat() {
    curl -sS --noproxy '*' --max-time 5 "http://127.0.0.1:$SPORT/" >"$dir/stats" &&
    sed -n "s/^$1 //p" "$dir/stats"
}
# c ARGS...: curl through the proxy, signed, failing on an HTTP error.
c() {
    curl -sS --no-progress-meter --fail --noproxy '*' --max-time 30 "${SIG[@]}" "$@"
}

test_expect_success 'objects go through intact: PUT, GET, ranged GET, HEAD, chunked, 100-continue' '
    start_proxy p1 --delay-ms 20 &&
    P=http://127.0.0.1:$PORT &&
    c -X PUT "$P/bkt" -o /dev/null &&
    head -c 3000000 /dev/urandom >"$dir/big" &&
    head -c 70000 /dev/urandom >"$dir/small" &&
    c -T "$dir/big" -H "Expect: 100-continue" "$P/bkt/big" -o /dev/null &&
    c -T - "$P/bkt/chunked" -o /dev/null <"$dir/small" &&
    c "$P/bkt/big" -o "$dir/big.back" &&
    cmp "$dir/big" "$dir/big.back" &&
    c "$P/bkt/chunked" -o "$dir/small.back" &&
    cmp "$dir/small" "$dir/small.back" &&
    c -r 1000-1999 "$P/bkt/big" -o "$dir/range" &&
    cmp -n 1000 -i 1000:0 "$dir/big" "$dir/range" &&
    test "$(stat -c %s "$dir/range")" -eq 1000 &&
    c -I "$P/bkt/big" >"$dir/head" &&
    grep -qi "^content-length: 3000000" "$dir/head" &&
    c "$P/bkt?list-type=2" -o "$dir/list" &&
    grep -q "<Key>big</Key>" "$dir/list"
'

test_expect_success 'requests are counted by kind, bytes both ways' '
    test "$(pstat put)" -eq 3 &&
    test "$(pstat get)" -eq 3 &&
    test "$(pstat head)" -eq 1 &&
    test "$(pstat list)" -eq 1 &&
    test "$(pstat requests)" -eq 8 &&
    test "$(pstat bytes_up)" -eq $((3000000 + 70000)) &&
    test "$(pstat bytes_down)" -gt $((3000000 + 70000 + 1000)) &&
    test "$(pstat status_2xx)" -eq 8 &&
    test_must_fail c "$P/bkt/missing" -o /dev/null &&
    test "$(pstat status_4xx)" -eq 1
'

test_expect_success 'every response waits at least the delay' '
    start_proxy p2 --delay-ms 150 &&
    for i in 1 2 3; do
        c -w "%{time_starttransfer}\n" "http://127.0.0.1:$PORT/bkt/chunked" -o /dev/null >>"$dir/ttfb" || return 1
    done &&
    c -w "%{time_total}\n" -X PUT -T "$dir/small" "http://127.0.0.1:$PORT/bkt/x" -o /dev/null >>"$dir/ttfb" &&
    cat "$dir/ttfb" &&
    test "$(wc -l <"$dir/ttfb")" -eq 4 &&
    awk "\$1 < 0.150 { bad = 1 } END { exit bad }" "$dir/ttfb"
'

test_expect_success 'one kept-alive connection carries several requests' '
    before=$(pstat connections) &&
    c "http://127.0.0.1:$PORT/bkt/chunked" "http://127.0.0.1:$PORT/bkt/chunked" \
      "http://127.0.0.1:$PORT/bkt/big" -o /dev/null -o /dev/null -o /dev/null &&
    test "$(pstat connections)" -eq $((before + 1))
'

test_expect_success '32 concurrent connections all get their object' '
    urls=() && outs=() &&
    for i in $(seq 1 32); do
        urls+=("http://127.0.0.1:$PORT/bkt/big") && outs+=(-o "$dir/par.$i")
    done &&
    c --parallel --parallel-max 32 "${urls[@]}" "${outs[@]}" &&
    for i in $(seq 1 32); do cmp "$dir/big" "$dir/par.$i" || return 1; done &&
    test "$(pstat active)" -le 32
'

test_expect_success '--bw caps the bandwidth of a connection' '
    start_proxy p3 --delay-ms 0 --bw 2000000 &&
    c -w "%{time_total}\n" "http://127.0.0.1:$PORT/bkt/big" -o "$dir/slow" >"$dir/t" &&
    cmp "$dir/big" "$dir/slow" &&
    cat "$dir/t" &&
    awk "\$1 < 1.4 { bad = 1 } END { exit bad }" "$dir/t"
'

test_expect_success 'the proxies stop on SIGTERM' '
    stop_daemon p1 && stop_daemon p2 && stop_daemon p3
'

test_done
