#!/bin/bash
# t2200-daemon-log.sh - the daemons' logs: buoy mount, buoy serve (the
# plugin inside nbdkit) and buoy ha run with --log-file write timestamped
# lines there, from the startup line to the last one at the stop; SIGHUP
# after logrotate moved the file makes them write to a new one; the logging
# options refuse bad combinations in one line.
. tests/lib/test-lib.sh
. tests/lib/fuse-lib.sh
requires nbdinfo

dir=$(mk_tmpdir)
mp=$dir/mp
mkdir "$mp"
stamp='^[0-9]\{4\}-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9]\{3\}Z buoy\[[0-9]*\]: '
"$BUOY" create "$dir/v" --size 16M >/dev/null || exit 1

# stamped FILE: FILE has lines and every one starts with a timestamp.
stamped() {
    test -s "$1" && ! grep -v "$stamp" "$1" || { echo "stamped: $1:"; cat "$1"; return 1; }
}

test_expect_success 'mount: the log file gets the start, SIGHUP reopens it, the stop lands in the new one' '
    (cd "$dir" && "$BUOY" mount v "$mp" --cache-dir "$dir/c1" --log-file m.log) &&
    grep -q "${stamp}notice: serving v at $mp/disk$" "$dir/m.log" &&
    pid=$(buoy_pid "$mp") &&
    mv "$dir/m.log" "$dir/m.log.1" &&
    kill -HUP "$pid" &&
    wait_until 10 test -e "$dir/m.log" &&
    dd if=/dev/urandom of="$mp/disk" bs=64k count=4 conv=notrunc,fsync status=none &&
    "$BUOY" umount "$mp" &&
    grep -q "${stamp}notice: unmounted $mp; closing v$" "$dir/m.log" &&
    grep -q "${stamp}notice: closed v: everything written is in the store$" "$dir/m.log" &&
    ! grep -q "unmounted" "$dir/m.log.1" &&
    stamped "$dir/m.log" && stamped "$dir/m.log.1" &&
    ! grep -q "Sanitizer\|runtime error" "$dir/m.log" "$dir/m.log.1"
'

test_expect_success 'mount -f: the lines on stderr carry timestamps too' '
    start_daemon mfg "$BUOY" mount "$dir/v" "$mp" -f --cache-dir "$dir/c1" &&
    wait_until 30 grep -q "notice: serving" "$TEST_OUT/daemons/mfg.log" &&
    stop_daemon mfg &&
    grep -q "notice: closed" "$TEST_OUT/daemons/mfg.log" &&
    not_mounted "$mp" &&
    grep -v "^--- " "$TEST_OUT/daemons/mfg.log" >"$dir/mfg" &&
    stamped "$dir/mfg"
'

test_expect_success 'the logging options: bad ones are one line and exit 2, a log file that cannot be opened exit 1' '
    test_expect_code 2 "$BUOY" mount "$dir/v" "$mp" --log-file "$dir/x" --syslog 2>"$dir/e1" &&
    test "$(wc -l <"$dir/e1")" -eq 1 &&
    grep -q "^buoy: mount: --log-file and --syslog send the log to different places; give one$" "$dir/e1" &&
    test_expect_code 2 "$BUOY" serve "$dir/v" --socket "$dir/s" --syslog-facility local9 2>"$dir/e2" &&
    test "$(wc -l <"$dir/e2")" -eq 1 &&
    grep -q "^buoy: serve: --syslog-facility takes daemon, user or local0..local7, not .local9.$" "$dir/e2" &&
    test_expect_code 1 "$BUOY" mount "$dir/v" "$mp" --log-file "$dir" 2>"$dir/e3" &&
    test "$(wc -l <"$dir/e3")" -eq 1 &&
    grep -q "^buoy: mount: --log-file $dir: Is a directory; choose a file the daemon can append to$" "$dir/e3" &&
    test_expect_code 2 "$BUOY" ha run -c /nonexistent --log-file "$dir/x" --syslog-facility user 2>"$dir/e4" &&
    test "$(wc -l <"$dir/e4")" -eq 1 &&
    not_mounted "$mp"
'

if [ ! -S /dev/log ]; then
    test_expect_success 'no /dev/log: a daemon that would log to syslog says its log is lost' '
        "$BUOY" mount "$dir/v" "$mp" --cache-dir "$dir/c1" 2>"$dir/nolog" &&
        "$BUOY" umount "$mp" &&
        grep -q "^buoy: warn: mount: no syslog on this host (/dev/log: .*): the daemon.s log is lost; give --log-file FILE next time$" "$dir/nolog"
    '
fi

test_expect_success 'serve: nbdkit and the plugin log to the file; SIGHUP reopens; SIGTERM closes the volume' '
    "$BUOY" serve "$dir/v" --socket "$dir/s" --cache-dir "$dir/c2" --pid-file "$dir/serve.pid" \
        --log-file "$dir/s.log" &&
    pid=$(cat "$dir/serve.pid") &&
    test_when_finished "kill $pid 2>/dev/null; true" &&
    nbdinfo --size "nbd+unix:///?socket=$dir/s" >"$dir/size" &&
    test "$(cat "$dir/size")" -eq 16777216 &&
    grep -q "${stamp}notice: serving $dir/v over NBD: 16777216 bytes, block size 4096$" "$dir/s.log" &&
    mv "$dir/s.log" "$dir/s.log.1" &&
    kill -HUP "$pid" &&
    wait_until 10 test -e "$dir/s.log" &&
    nbdinfo --size "nbd+unix:///?socket=$dir/s" >/dev/null &&
    kill -TERM "$pid" &&
    wait_until 60 gone "$pid" &&
    grep -q "${stamp}notice: stopping: closing $dir/v$" "$dir/s.log" &&
    grep -q "${stamp}notice: closed $dir/v: everything written is in the store$" "$dir/s.log" &&
    stamped "$dir/s.log" && stamped "$dir/s.log.1"
'

test_expect_success 'ha run: the log file gets the start; SIGHUP reopens it and reloads; the stop is in the new one' '
    printf "a-shared-secret-of-some-length\n" >"$dir/key" &&
    chmod 600 "$dir/key" &&
    cat >"$dir/ha.conf" <<-EOF &&
	node alpha
	peer beta 127.0.0.1
	port $(free_port)
	keepalive 0.1
	deadtime 1
	initdead 1
	lease_time 0.9
	lease_margin 0.2
	authkey $dir/key
	lease_store $dir/lease
	control $dir/ha.sock
	EOF
    start_daemon ha "$BUOY" ha run -c "$dir/ha.conf" --log-file "$dir/ha.log" &&
    wait_until 30 grep -q "${stamp}warn: ha: alpha starting" "$dir/ha.log" &&
    mv "$dir/ha.log" "$dir/ha.log.1" &&
    kill -HUP "$(daemon_pid ha)" &&
    wait_until 30 grep -q "configuration reloaded" "$dir/ha.log" &&
    stop_daemon ha &&
    grep -q "${stamp}warn: ha: alpha stopped$" "$dir/ha.log" &&
    stamped "$dir/ha.log" && stamped "$dir/ha.log.1"
'

test_done
