#!/bin/bash
# t2100-nbd-serve.sh - "buoy serve": a volume exported through nbdkit on a
# unix socket and on a loopback TCP port, with the size and the flags
# nbdinfo sees; --read-only; the background mode with a pid file; captive
# --run; and bad input (missing volume, unknown URL scheme, port or socket
# in use, missing --socket/--port) as one line on stderr, a non-zero exit
# and no process left behind.
. tests/lib/test-lib.sh
. tests/lib/nbd.sh

dir=$(mk_tmpdir)
vol=$dir/vol
sock=$dir/s
uri=$(nbd_uri "$sock")

test_expect_success 'serve --help and the man page list the same options' '
    "$BUOY" serve --help >"$dir/help" &&
    grep -q "^usage: buoy serve \[options\] URL" "$dir/help" &&
    groff -man -Tascii -P-cbou docs/buoy.1 >"$dir/man.txt" 2>/dev/null &&
    grep -q "buoy serve" "$dir/man.txt" &&
    sed -n "s/^ *\(-[a-z], \)\{0,1\}--\([a-z-]*\).*/\2/p" "$dir/help" >"$dir/opts" &&
    grep -qx socket "$dir/opts" && grep -qx durability "$dir/opts" &&
    while read -r opt; do
        grep -q -- "--$opt" "$dir/man.txt" || {
            echo "docs/buoy.1 does not document --$opt (serve)"; return 1; }
    done <"$dir/opts" &&
    "$BUOY" --help >"$dir/top" &&
    grep -q "serve URL" "$dir/top"
'

test_expect_success 'a volume is exported on a unix socket with its size and flags' '
    "$BUOY" create "$vol" --size 96M >/dev/null &&
    serve_start unix "$vol" "$sock" --cache-dir "$dir/cache" &&
    nbdinfo "$uri" >"$dir/info" &&
    grep -q "export-size: 100663296 " "$dir/info" &&
    for f in can_flush can_fua can_trim can_zero can_fast_zero can_multi_conn; do
        grep -q "^[[:space:]]*$f: true" "$dir/info" || { echo "$f is not true"; return 1; }
    done &&
    grep -q "is_read_only: false" "$dir/info" &&
    grep -q "block_size_preferred: 4096" "$dir/info"
'

test_expect_success 'and read and written there' '
    qemu-io -f raw -c "write -P 0x3c 1M 256k" -c "read -P 0x3c 1M 256k" "$uri" >"$dir/io" &&
    stop_daemon unix
'

port=$(free_port)
test_expect_success 'a volume is exported on a loopback TCP port' '
    serve_start_tcp tcp "$vol" "$port" --cache-dir "$dir/cache" &&
    nbdinfo "nbd://127.0.0.1:$port" >"$dir/info" &&
    grep -q "export-size: 100663296 " "$dir/info" &&
    grep -q "can_multi_conn: true" "$dir/info" &&
    qemu-io -f raw -c "read -P 0x3c 1M 256k" "nbd://127.0.0.1:$port" >"$dir/io" &&
    ss -ltnH "sport = :$port" >"$dir/ss" &&
    grep -q "127.0.0.1:$port " "$dir/ss"
'

test_expect_success 'a port in use is a one-line error, and nothing stays running' '
    "$BUOY" create "$dir/other" --size 16M >/dev/null &&
    test_expect_code 1 "$BUOY" serve "$dir/other" --port "$port" --cache-dir "$dir/c2" \
        -f 2>"$dir/err" &&
    test "$(wc -l <"$dir/err")" -eq 1 &&
    grep -q "^buoy: serve: cannot listen on 127.0.0.1 port $port: Address already in use" \
        "$dir/err" &&
    no_server_for "url=$dir/other" &&
    stop_daemon tcp
'

test_expect_success 'a missing volume is a one-line error, and nothing stays running' '
    test_expect_code 3 "$BUOY" serve "$dir/nothing" --socket "$dir/s2" --cache-dir "$dir/c2" \
        -f 2>"$dir/err" &&
    test "$(wc -l <"$dir/err")" -eq 1 &&
    grep -q "^buoy: no volume at $dir/nothing; make one with buoy create" "$dir/err" &&
    test ! -e "$dir/s2" &&
    no_server_for "url=$dir/nothing"
'

test_expect_success 'the same error in the background mode: non-zero exit, no daemon' '
    test_expect_code 3 "$BUOY" serve "$dir/nothing" --socket "$dir/s2" --cache-dir "$dir/c2" \
        --pid-file "$dir/nothing.pid" 2>"$dir/err" &&
    test "$(wc -l <"$dir/err")" -eq 1 &&
    grep -q "no volume at" "$dir/err" &&
    test ! -e "$dir/nothing.pid" &&
    no_server_for "url=$dir/nothing"
'

test_expect_success 'an unknown URL scheme and a missing --socket/--port are refused' '
    test_expect_code 2 "$BUOY" serve ftp://host/vol --socket "$dir/s2" 2>"$dir/err" &&
    test "$(wc -l <"$dir/err")" -eq 1 &&
    grep -q "unknown store URL scheme .ftp." "$dir/err" &&
    test_expect_code 2 "$BUOY" serve "$vol" 2>"$dir/err" &&
    grep -q "give one of --socket PATH or --port N" "$dir/err" &&
    test_expect_code 2 "$BUOY" serve "$vol" --socket "$dir/s2" --port 1 2>"$dir/err" &&
    test_expect_code 2 "$BUOY" serve "$vol" --socket "$dir/s2" --durability soon 2>"$dir/err" &&
    grep -q "durability takes remote or local" "$dir/err" &&
    test_expect_code 2 "$BUOY" serve "$vol" --port 0 2>"$dir/err" &&
    grep -q "port takes a whole number from 1 to 65535" "$dir/err" &&
    test_expect_code 1 "$BUOY" serve "$vol" --port "$(free_port)" --bind not-an-address \
        2>"$dir/err" &&
    test "$(wc -l <"$dir/err")" -eq 1 &&
    no_server_for "--socket $dir/s2"
'

test_expect_success 'a socket a server listens on is refused; a stale one is reused' '
    serve_start unix "$vol" "$sock" --cache-dir "$dir/cache" &&
    test_expect_code 1 "$BUOY" serve "$dir/other" --socket "$sock" --cache-dir "$dir/c2" -f \
        2>"$dir/err" &&
    test "$(wc -l <"$dir/err")" -eq 1 &&
    grep -q "is in use by a running server" "$dir/err" &&
    stop_daemon unix &&
    test -S "$sock" &&
    serve_start unix "$vol" "$sock" --cache-dir "$dir/cache" &&
    qemu-io -f raw -c "read -P 0x3c 1M 256k" "$uri" >"$dir/io" &&
    stop_daemon unix &&
    printf x >"$dir/plain" &&
    test_expect_code 1 "$BUOY" serve "$vol" --socket "$dir/plain" --cache-dir "$dir/cache" \
        2>"$dir/err" &&
    grep -q "exists and is not a socket" "$dir/err"
'

test_expect_success '--read-only exports a volume that refuses writes' '
    serve_start ro "$vol" "$sock" --read-only &&
    nbdinfo "$uri" >"$dir/info" &&
    grep -q "is_read_only: true" "$dir/info" &&
    qemu-io -r -f raw -c "read -P 0x3c 1M 256k" "$uri" >"$dir/io" &&
    test_must_fail qemu-io -f raw -c "write -P 0x11 1M 4k" "$uri" >"$dir/io" 2>&1 &&
    stop_daemon ro &&
    serve_start unix "$vol" "$sock" --cache-dir "$dir/cache" &&
    qemu-io -f raw -c "read -P 0x3c 1M 256k" "$uri" >"$dir/io" &&
    stop_daemon unix
'

test_expect_success 'the background mode: returns once serving, writes the pid file, SIGTERM stops it' '
    test_when_finished "kill -KILL \$(cat \"$dir/pid\" 2>/dev/null) 2>/dev/null || :" &&
    "$BUOY" serve "$vol" --socket "$sock" --cache-dir "$dir/cache" --pid-file "$dir/pid" &&
    read -r bgpid <"$dir/pid" &&
    _tl_alive "$bgpid" &&
    grep -q "url=$vol" "/proc/$bgpid/cmdline" &&
    qemu-io -f raw -c "write -P 0x9d 2M 64k" "$uri" >"$dir/io" &&
    kill -TERM "$bgpid" &&
    for i in $(seq 100); do _tl_alive "$bgpid" || break; sleep 0.1; done &&
    ! _tl_alive "$bgpid" &&
    BUOY_NBDKIT=/nonexistent/nbdkit test_expect_code 1 "$BUOY" serve "$vol" --socket "$sock" \
        --cache-dir "$dir/cache" 2>"$dir/err" &&
    grep -q "cannot run /nonexistent/nbdkit" "$dir/err" &&
    serve_start unix "$vol" "$sock" --cache-dir "$dir/fresh-cache" &&
    qemu-io -f raw -c "read -P 0x9d 2M 64k" "$uri" >"$dir/io" &&
    stop_daemon unix
'

test_expect_success '--run serves while a command runs, then stops and closes the volume' '
    "$BUOY" serve "$vol" --socket "$sock" --cache-dir "$dir/cache" \
        --run "qemu-io -f raw -c \"write -P 0x42 3M 64k\" \"\$uri\" >/dev/null && nbdinfo --size \"\$uri\"" \
        >"$dir/run" &&
    test "$(cat "$dir/run")" = 100663296 &&
    test_expect_code 1 "$BUOY" serve "$vol" --socket "$sock" --cache-dir "$dir/cache" \
        --run "exit 1" &&
    serve_start ro "$vol" "$sock" --read-only &&
    qemu-io -r -f raw -c "read -P 0x42 3M 64k" "$uri" >"$dir/io" &&
    stop_daemon ro
'

test_expect_success 'the background mode on a volume in use: the daemon error, exit 1, nothing running' '
    serve_start unix "$vol" "$sock" --cache-dir "$dir/cache" &&
    test_when_finished "stop_daemon unix" &&
    test_expect_code 1 "$BUOY" serve "$vol" --socket "$dir/s3" --cache-dir "$dir/c3" \
        --pid-file "$dir/busy.pid" 2>"$dir/err" &&
    test "$(wc -l <"$dir/err")" = 1 &&
    grep -q "is in use by" "$dir/err" &&
    ! test -e "$dir/busy.pid" &&
    ! pgrep -f "cache_dir=$dir/c3" >/dev/null &&
    test_must_fail nbdinfo --size "nbd+unix:///?socket=$dir/s3" 2>/dev/null
'

test_done
