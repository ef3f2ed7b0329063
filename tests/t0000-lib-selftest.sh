#!/bin/bash
# t0000-lib-selftest: the test harness itself (tests/lib/test-lib.sh).  Every
# other test trusts these helpers to fail when something is wrong, so this
# one checks that they do: failures are reported, signal deaths are not taken
# for "failed as expected", daemons that will not stop are caught, nothing is
# left behind, and both fake S3 servers start, take a bucket and stop.
. tests/lib/test-lib.sh

requires curl perl setsid

nested=$(mk_tmpdir nested)
scratch=$(mk_tmpdir scratch)

# Scripts that use the harness the wrong way or fail on purpose, run as
# separate processes so their failures are theirs, not ours.
cat >"$nested/t9990-fails.sh" <<'EOF'
#!/bin/bash
. tests/lib/test-lib.sh
test_expect_success 'this one fails' '
    test_when_finished "echo cleaned >\"$MARK\"" &&
    echo some output &&
    false &&
    echo not reached
'
test_expect_success 'this one passes' 'true'
test_expect_success 'this one has a failing cleanup' '
    test_when_finished false &&
    true
'
test_done
EOF

cat >"$nested/t9991-exits.sh" <<'EOF'
#!/bin/bash
. tests/lib/test-lib.sh
start_daemon sleeper sleep 300
daemon_pid sleeper >"$MARK.pid"
mk_tmpdir >"$MARK.tmp"
test_expect_success 'calls exit' 'echo before exit && exit 3'
test_done
EOF

cat >"$nested/t9992-skips.sh" <<'EOF'
#!/bin/bash
. tests/lib/test-lib.sh
requires no-such-tool-buoy-selftest
test_expect_success 'never runs' 'echo ran >"$MARK"'
test_done
EOF

cat >"$nested/t9993-stubborn.sh" <<'EOF'
#!/bin/bash
. tests/lib/test-lib.sh
test_expect_success 'start a daemon that ignores SIGTERM' '
    start_daemon stubborn sh -c "trap \"\" TERM; echo \$\$ >\"$MARK.pid\"; while :; do sleep 1; done" &&
    wait_for_file "$MARK.pid" 5
'
test_done
EOF

# run_nested NAME: run $nested/NAME.sh; its exit status goes to $nested/NAME.rc,
# stdout and stderr to NAME.out and NAME.err.
run_nested() {
    local rc
    MARK=$nested/$1.mark STOP_TIMEOUT=1 TEST_VERBOSE='' TEST_TRACE='' TEST_KEEP='' \
        bash "$nested/$1.sh" >"$nested/$1.out" 2>"$nested/$1.err" && rc=0 || rc=$?
    echo "$rc" >"$nested/$1.rc"
}

# --- test_must_fail -------------------------------------------------------------

test_expect_success 'test_must_fail accepts a command that fails' '
    test_must_fail false &&
    test_must_fail sh -c "exit 2"
'

test_expect_success 'test_must_fail rejects a command that succeeds' '
    if (test_must_fail true) 2>"$scratch/err"; then false; fi &&
    grep "command succeeded" "$scratch/err"
'

test_expect_success 'test_must_fail rejects a command killed by SIGSEGV' '
    if (test_must_fail sh -c "kill -SEGV \$\$") 2>"$scratch/err"; then false; fi &&
    grep "killed by signal 11 (SIGSEGV)" "$scratch/err"
'

test_expect_success 'test_must_fail rejects a command that is not there' '
    if (test_must_fail ./no-such-program-here) 2>"$scratch/err"; then false; fi &&
    grep "not found" "$scratch/err"
'

test_expect_success 'an AddressSanitizer report is a signal death, not a failure' '
    if ! command -v cc >/dev/null; then
        echo "no cc: nothing to check"
    else
        dir=$(mk_tmpdir asan) &&
        printf "%s\n" "#include <stdlib.h>" \
            "int main(int c, char **v) { char *p = malloc(4); p[c + 3] = 1; return p[0]; }" \
            >"$dir/overflow.c" &&
        cc -g -fsanitize=address "$dir/overflow.c" -o "$dir/overflow" &&
        if (test_must_fail "$dir/overflow") 2>"$scratch/err"; then false; fi &&
        grep "AddressSanitizer" "$scratch/err" &&
        grep "killed by signal 6 (SIGABRT)" "$scratch/err"
    fi
'

# --- test_when_finished, failure reports, exits, skips ------------------------------

test_expect_success 'test_when_finished runs cleanups after the test, last first' '
    order= &&
    test_when_finished "order=\${order}1" &&
    test_when_finished "order=\${order}2" &&
    test -z "$order"
'

test_expect_success '... and they ran' '
    test "$order" = 21
'

test_expect_success 'failing tests and cleanups are reported with commands and output' '
    run_nested t9990-fails &&
    test "$(cat "$nested/t9990-fails.rc")" = 1 &&
    grep -x "not ok 1 - this one fails" "$nested/t9990-fails.out" &&
    grep -x "ok 2 - this one passes" "$nested/t9990-fails.out" &&
    grep -x "not ok 3 - this one has a failing cleanup" "$nested/t9990-fails.out" &&
    grep -x "1\.\.3" "$nested/t9990-fails.out" &&
    grep "^#   failed: t9990-fails test 3 (a cleanup failed)" "$nested/t9990-fails.err" &&
    grep "^#   > *false &&" "$nested/t9990-fails.err" &&
    grep "^#   | some output" "$nested/t9990-fails.err" &&
    test_must_fail grep "^#   | not reached" "$nested/t9990-fails.err" &&
    test "$(cat "$nested/t9990-fails.mark")" = cleaned
'

test_expect_success 'a test that exits the script is a failure; daemons and temp dirs go' '
    run_nested t9991-exits &&
    test "$(cat "$nested/t9991-exits.rc")" = 1 &&
    grep -x "not ok 1 - calls exit" "$nested/t9991-exits.out" &&
    grep -x "1\.\.1" "$nested/t9991-exits.out" &&
    grep "ended the whole script (exit status 3)" "$nested/t9991-exits.err" &&
    pid=$(cat "$nested/t9991-exits.mark.pid") &&
    test_must_fail kill -0 "$pid" &&
    tmp=$(cat "$nested/t9991-exits.mark.tmp") &&
    test -n "$tmp" &&
    test ! -e "$tmp"
'

test_expect_success 'requires skips the whole script with a reason' '
    run_nested t9992-skips &&
    test "$(cat "$nested/t9992-skips.rc")" = 0 &&
    grep -x "1\.\.0 # SKIP requires no-such-tool-buoy-selftest (run scripts/deps.sh)" \
        "$nested/t9992-skips.out" &&
    test ! -e "$nested/t9992-skips.mark"
'

test_expect_success 'test_done fails the script when a daemon ignores SIGTERM' '
    run_nested t9993-stubborn &&
    test "$(cat "$nested/t9993-stubborn.rc")" = 1 &&
    grep -x "ok 1 - start a daemon that ignores SIGTERM" "$nested/t9993-stubborn.out" &&
    grep -x "not ok 2 - daemon stubborn left running at test_done stops cleanly" \
        "$nested/t9993-stubborn.out" &&
    grep "did not stop within 1 s of SIGTERM" "$nested/t9993-stubborn.err" &&
    pid=$(cat "$nested/t9993-stubborn.mark.pid") &&
    test_must_fail kill -0 "$pid"
'

# --- ports and daemons -------------------------------------------------------------

test_expect_success 'free_port gives an unused port, a new one each time' '
    port=$(free_port) &&
    port2=$(free_port) &&
    test "$port" -ge 1024 && test "$port" -le 65535 &&
    test "$port" != "$port2" &&
    test_must_fail curl -s "http://127.0.0.1:$port/"
'

test_expect_success 'wait_for_http gives up on a port nobody answers' '
    test_must_fail wait_for_http "http://127.0.0.1:$port/" 1
'

test_expect_success 'stop_daemon fails and kills a daemon that ignores SIGTERM' '
    start_daemon stubborn sh -c "trap \"\" TERM; exec sleep 300" &&
    pid=$(daemon_pid stubborn) &&
    sleep 0.2 &&
    STOP_TIMEOUT=1 test_must_fail stop_daemon stubborn &&
    test_must_fail kill -0 "$pid" &&
    test_must_fail daemon_running stubborn
'

test_expect_success 'stop_daemon fails for a daemon that crashed' '
    start_daemon crasher sh -c "kill -SEGV \$\$" &&
    pid=$(daemon_pid crasher) &&
    for i in $(seq 50); do daemon_running crasher || break; sleep 0.1; done &&
    test_must_fail daemon_running crasher &&
    if stop_daemon crasher 2>"$scratch/err"; then false; fi &&
    grep "had already exited (status 139)" "$scratch/err"
'

# --- the fake S3 servers --------------------------------------------------------------

test_expect_success 'moto starts, takes a bucket and an object, and lists them' '
    start_moto &&
    case $MOTO_URL in http://127.0.0.1:[0-9]*) ;; *) false ;; esac &&
    test "$MOTO_URL" = "http://127.0.0.1:$MOTO_PORT" &&
    dir=$(mk_tmpdir moto) &&
    make_bucket "$MOTO_URL" selftest-bucket &&
    echo hello >"$dir/obj" &&
    curl -sS -f -T "$dir/obj" "$MOTO_URL/selftest-bucket/some/key" &&
    curl -sS -f -o "$dir/list.xml" "$MOTO_URL/selftest-bucket" &&
    grep "<Name>selftest-bucket</Name>" "$dir/list.xml" &&
    grep "<Key>some/key</Key>" "$dir/list.xml" &&
    grep "<Size>6</Size>" "$dir/list.xml"
'

test_expect_success 'make_bucket reports a bucket the server refuses' '
    if make_bucket "$MOTO_URL" no 2>"$scratch/err"; then false; fi &&
    grep "answered HTTP 400" "$scratch/err"
'

test_expect_success 'stop_moto stops it' '
    pid=$(daemon_pid moto) &&
    stop_moto &&
    test_must_fail kill -0 "$pid" &&
    test_must_fail curl -s "$MOTO_URL/"
'

test_expect_success 's3rver starts, takes a bucket and an object, and lists them' '
    start_s3rver &&
    test "$S3RVER_URL" = "http://127.0.0.1:$S3RVER_PORT" &&
    dir=$(mk_tmpdir s3rver-client) &&
    make_bucket "$S3RVER_URL" selftest-bucket &&
    test -d "$S3RVER_DIR/selftest-bucket" &&
    echo hello >"$dir/obj" &&
    curl -sS -f -T "$dir/obj" "$S3RVER_URL/selftest-bucket/some/key" &&
    curl -sS -f -o "$dir/list.xml" "$S3RVER_URL/selftest-bucket" &&
    grep "<Name>selftest-bucket</Name>" "$dir/list.xml" &&
    grep "<Key>some/key</Key>" "$dir/list.xml" &&
    grep "<Size>6</Size>" "$dir/list.xml" &&
    curl -sS -f -o "$dir/got" "$S3RVER_URL/selftest-bucket/some/key" &&
    cmp "$dir/obj" "$dir/got"
'

test_expect_success 'stop_s3rver stops it' '
    pid=$(daemon_pid s3rver) &&
    stop_s3rver &&
    test_must_fail kill -0 "$pid" &&
    test_must_fail curl -s "$S3RVER_URL/"
'

test_done
