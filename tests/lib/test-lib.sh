# shellcheck shell=bash
# test-lib.sh - the harness every shell integration test sources.
#
# A test is one script per feature, tests/tNNNN-area-feature.sh, run from the
# repo top by prove, which reads the TAP it prints:
#
#     #!/bin/bash
#     . tests/lib/test-lib.sh
#     requires qemu-img
#     start_moto
#
#     test_expect_success 'a volume written through buoy reads back' '
#         make_bucket "$MOTO_URL" vol-bucket &&
#         dir=$(mk_tmpdir) &&
#         test_when_finished "rm -f \"$dir/out\"" &&
#         "$BUOY" ... >"$dir/out" &&
#         test_must_fail "$BUOY" --bogus-flag
#     '
#     test_done
#
# Rules the helpers below rely on:
#   * Commands in a test are joined with && so the first failure fails the
#     test.  They run in the script's own shell (variables persist into later
#     tests), stdin from /dev/null, stdout and stderr into tests/out/NAME/N.log,
#     which is printed when the test fails.  Never pipe a program's output: a
#     pipe hides its exit status.
#   * test_must_fail is for "this command must refuse"; a command that dies of
#     a signal, or of a sanitizer report (ASan/UBSan abort, see ASAN_OPTIONS
#     below), fails the test instead.
#   * Daemons are started with start_daemon and end with stop_daemon, which
#     fails the test when SIGTERM does not stop one within 10 s or it exits
#     with a status other than 0 or SIGTERM's.  test_done stops the ones left
#     and fails the script if one misbehaves; on any exit every daemon left is
#     killed, mounts under the temp dirs are detached, the temp dirs removed.
#   * Tests send traffic only to loopback (or to test hosts in namespaces the
#     test made): proxies are switched off, AWS_* from the caller's
#     environment is dropped and the EC2 metadata service is disabled.
#
# Options, as script arguments or environment:
#   -v, --verbose   TEST_VERBOSE=1  show every test's output, not only failures
#   -x, --trace     TEST_TRACE=1    run test bodies under set -x (into the log)
#   -k, --keep      TEST_KEEP=1     keep temp dirs and print where they are
#
# Helpers: test_expect_success test_must_fail test_expect_code test_when_finished test_done
#   requires requires_root skip_all say mk_tmpdir free_port
#   start_daemon stop_daemon kill_daemon daemon_pid daemon_running
#   wait_for_http wait_for_file wait_until
#   start_moto stop_moto kill_moto start_s3rver stop_s3rver kill_s3rver
#   make_bucket moto_iam_user
# Everything private is named _tl_*.

if [ -z "${BASH_VERSION:-}" ]; then
    echo "Bail out! tests/lib/test-lib.sh needs bash"
    exit 1
fi

# --- where we are ----------------------------------------------------------

TEST_NAME=$(basename "$0" .sh)
TEST_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd) || {
    echo "Bail out! cannot find the repo top from ${BASH_SOURCE[0]}"
    exit 1
}
cd "$TEST_TOP" || exit 1

for _tl_arg in "$@"; do
    case $_tl_arg in
    -v | --verbose) TEST_VERBOSE=1 ;;
    -x | --trace) TEST_TRACE=1 ;;
    -k | --keep) TEST_KEEP=1 ;;
    esac
done
TEST_VERBOSE=${TEST_VERBOSE:-}
TEST_TRACE=${TEST_TRACE:-}
TEST_KEEP=${TEST_KEEP:-}

BUOY_OUT=${BUOY_OUT:-build-asan}
case $BUOY_OUT in /*) ;; *) BUOY_OUT=$TEST_TOP/$BUOY_OUT ;; esac
BUOY=$BUOY_OUT/buoy
TOOLS=$BUOY_OUT/tools
PYTHON=${PYTHON:-python3}
export BUOY_OUT BUOY TOOLS PYTHON

# --- a clean, loopback-only environment ---------------------------------------

while read -r _tl_var; do
    case $_tl_var in AWS_*) unset "$_tl_var" ;; esac
done < <(compgen -e)
export AWS_EC2_METADATA_DISABLED=true
export AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_CONFIG_FILE=/dev/null
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY ftp_proxy FTP_PROXY
export no_proxy='*' NO_PROXY='*'
export LC_ALL=C TZ=UTC

# A sanitizer report aborts (SIGABRT), so test_must_fail and stop_daemon see
# a signal death, never an ordinary exit status.  The caller's options win.
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="abort_on_error=1:halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
ulimit -c 0 2>/dev/null || true

# scripts/run-tests.sh takes only the environment above, for the C unit tests.
if [ -n "${TEST_LIB_ENV_ONLY:-}" ]; then
    unset TEST_LIB_ENV_ONLY
    return 0
fi

set +m # start_daemon relies on background jobs sharing our process group

# --- output and temp dirs ---------------------------------------------------------

TEST_OUT=$TEST_TOP/tests/out/$TEST_NAME
rm -rf "$TEST_OUT"
mkdir -p "$TEST_OUT/daemons" || exit 1
_tl_tmproot=$(mktemp -d "${TMPDIR:-/tmp}/buoy-$TEST_NAME.XXXXXX") || {
    echo "Bail out! mktemp -d failed"
    exit 1
}

test_count=0
test_failed=0
_tl_in_test=
_tl_desc=
_tl_body=
_tl_log=
_tl_done=
_tl_subshell=0
_tl_cleanup=()
# What fds 1 and 2 are now, to find them again if a test body exits the shell
# while they point at its log (see _tl_restore_stdio).
_tl_stdout_id=$(readlink "/proc/$$/fd/1" 2>/dev/null || true)
_tl_stderr_id=$(readlink "/proc/$$/fd/2" 2>/dev/null || true)

# say MESSAGE...: a TAP comment.
say() {
    echo "# $*"
}

# Indented "# " lines on stderr, which prove shows even when not verbose.
_tl_diag() {
    echo "$*" | sed 's/^/#   /' >&2
}

_tl_diag_file() { # FILE [MAX_LINES]
    local n
    [ -s "$1" ] || {
        echo "#   (no output)" >&2
        return 0
    }
    n=$(wc -l <"$1")
    if [ "$n" -gt "${2:-200}" ]; then
        echo "#   ... (first $((n - ${2:-200})) of $n lines left out; all in $1)" >&2
    fi
    tail -n "${2:-200}" "$1" | sed 's/^/#   | /' >&2
}

# A mistake in the test script itself: says so and ends the script.
_tl_bug() {
    echo "test-lib: BUG in $TEST_NAME: $*" >&2
    exit 1
}

# --- tests -------------------------------------------------------------------

_tl_eval() {
    if [ -n "$TEST_TRACE" ]; then
        set -x
        eval "$1"
        { local _tl_x=$?; set +x; } 2>/dev/null
        return $_tl_x
    fi
    eval "$1"
}

# test_expect_success DESCRIPTION COMMANDS
test_expect_success() {
    [ $# -eq 2 ] || _tl_bug "test_expect_success takes 2 arguments (description, commands), got $#"
    [ -z "$_tl_in_test" ] || _tl_bug "test_expect_success inside a test"
    [ -z "$_tl_done" ] || _tl_bug "test_expect_success after test_done"
    test_count=$((test_count + 1))
    _tl_desc=$1
    _tl_body=$2
    _tl_log=$TEST_OUT/$test_count.log
    _tl_cleanup=()
    _tl_subshell=$BASH_SUBSHELL
    _tl_in_test=1
    # "&& ... ||" keeps a caller's set -e from ending the script on a failure.
    local _tl_rc _tl_cleanup_ok=1 _tl_c
    _tl_eval "$_tl_body" </dev/null >"$_tl_log" 2>&1 && _tl_rc=0 || _tl_rc=$?
    for _tl_c in "${_tl_cleanup[@]}"; do
        if ! _tl_eval "$_tl_c" </dev/null >>"$_tl_log" 2>&1; then
            echo "test_when_finished: cleanup failed: $_tl_c" >>"$_tl_log"
            _tl_cleanup_ok=
        fi
    done
    _tl_cleanup=()
    _tl_in_test=
    if [ "$_tl_rc" -eq 0 ] && [ -n "$_tl_cleanup_ok" ]; then
        echo "ok $test_count - $_tl_desc"
        if [ -n "$TEST_VERBOSE" ] && [ -s "$_tl_log" ]; then
            sed 's/^/#   | /' "$_tl_log"
        fi
    else
        test_failed=$((test_failed + 1))
        echo "not ok $test_count - $_tl_desc"
        _tl_report_failure "$_tl_rc"
    fi
    return 0
}

_tl_report_failure() { # STATUS
    local why="exit status $1" name pid
    [ "$1" -eq 0 ] && why="a cleanup failed"
    _tl_diag "failed: $TEST_NAME test $test_count ($why)"
    _tl_diag "commands:"
    echo "$_tl_body" | sed -e '/^[[:space:]]*$/d' -e 's/^/#   > /' >&2
    _tl_diag "output ($_tl_log):"
    _tl_diag_file "$_tl_log"
    # The daemons' side of the story.
    for name in $(_tl_daemon_names); do
        pid=$(daemon_pid "$name") || continue
        _tl_diag "daemon $name (pid $pid), end of $TEST_OUT/daemons/$name.log:"
        _tl_diag_file "$TEST_OUT/daemons/$name.log" 15
    done
}

# test_when_finished COMMANDS: run COMMANDS after the current test, whether it
# passed or not, the last registered first.  A failing cleanup fails the test.
test_when_finished() {
    [ -n "$_tl_in_test" ] || _tl_bug "test_when_finished outside a test"
    [ "$BASH_SUBSHELL" -eq "$_tl_subshell" ] ||
        _tl_bug "test_when_finished in a subshell would be lost"
    _tl_cleanup=("$*" "${_tl_cleanup[@]}")
}

# test_must_fail COMMAND [ARGS...]: succeeds when COMMAND exits non-zero by
# itself; fails when it succeeds, is not found, or dies of a signal (an exit
# status above 128 counts as one, and sanitizers abort).
test_must_fail() {
    local status
    "$@" && status=0 || status=$?
    if [ "$status" -eq 0 ]; then
        echo "test_must_fail: command succeeded: $*" >&2
        return 1
    elif [ "$status" -gt 128 ]; then
        echo "test_must_fail: killed by signal $((status - 128)) (SIG$(kill -l "$status" 2>/dev/null || echo '?')): $*" >&2
        return 1
    elif [ "$status" -eq 127 ] || [ "$status" -eq 126 ]; then
        echo "test_must_fail: command not found or not executable (exit $status): $*" >&2
        return 1
    fi
    return 0
}

# test_expect_code CODE CMD...: succeeds only if CMD exits with exactly CODE
# (a signal death never matches, since CODE is below 126).
test_expect_code() {
    local want=$1 status
    shift
    "$@" && status=0 || status=$?
    if [ "$status" -ne "$want" ]; then
        echo "test_expect_code: wanted exit $want, got $status: $*" >&2
        return 1
    fi
    return 0
}

# test_done: print the plan and exit, 1 if any test failed.  Daemons still
# running are stopped first; one that does not stop cleanly adds a failure.
test_done() {
    [ -z "$_tl_in_test" ] || _tl_bug "test_done inside a test"
    local name log
    for name in $(_tl_daemon_names); do
        log=$TEST_OUT/daemons/stop-$name.log
        if ! stop_daemon "$name" >"$log" 2>&1; then
            test_count=$((test_count + 1))
            test_failed=$((test_failed + 1))
            echo "not ok $test_count - daemon $name left running at test_done stops cleanly"
            _tl_diag_file "$log"
        fi
    done
    _tl_done=1
    echo "1..$test_count"
    if [ "$test_failed" -gt 0 ]; then
        say "failed $test_failed of $test_count tests in $TEST_NAME"
        exit 1
    fi
    exit 0
}

# skip_all REASON: skip the rest of the script.  Before any test this is
# "1..0 # SKIP REASON"; inside a test that test is reported as skipped.
skip_all() {
    local reason="$*"
    if [ -n "$_tl_in_test" ]; then
        _tl_restore_stdio
        _tl_in_test=
        echo "ok $test_count - $_tl_desc # SKIP $reason"
    elif [ "$test_count" -eq 0 ]; then
        echo "1..0 # SKIP $reason"
        _tl_done=1
        exit 0
    else
        say "skipping the rest: $reason"
    fi
    _tl_done=1
    echo "1..$test_count"
    [ "$test_failed" -eq 0 ] || exit 1
    exit 0
}

# requires TOOL...: skip the script unless every TOOL is on PATH.
requires() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || skip_all "requires $tool (run scripts/deps.sh)"
    done
}

requires_root() {
    [ "$(id -u)" -eq 0 ] || skip_all "requires root"
}

# --- temp dirs and ports ------------------------------------------------------

# mk_tmpdir [PREFIX]: print the path of a new empty directory, removed when
# the script exits.  Works inside $(...).
mk_tmpdir() {
    mktemp -d "$_tl_tmproot/${1:-tmp}.XXXXXX"
}

# free_port: print a TCP port nobody listens on at 127.0.0.1, below the
# kernel's ephemeral range so outgoing connections do not take it, and never
# the same one twice in a script.  Another process may still take it before
# the caller binds it; the start_* helpers below retry on another port.
free_port() {
    local ephemeral=32768
    read -r ephemeral _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null
    perl -MIO::Socket::INET -e '
        my ($lo, $hi, $file) = (10000, $ARGV[0], $ARGV[1]);
        my %used;
        if (open my $fh, "<", $file) { chomp(my @u = <$fh>); @used{@u} = (); }
        for (1 .. 200) {
            my $p = $lo + int(rand($hi - $lo));
            next if exists $used{$p};
            my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $p,
                                          Proto => "tcp", Listen => 1) or next;
            close $s;
            open my $fh, ">>", $file or die "free_port: $file: $!\n";
            print $fh "$p\n";
            print "$p\n";
            exit 0;
        }
        die "free_port: no free port found in $lo..$hi\n";
    ' "$ephemeral" "$TEST_OUT/ports"
}

# --- daemons ---------------------------------------------------------------
# One pid file per running daemon in $TEST_OUT/daemons, so the registry also
# sees daemons started inside $(...) and the exit trap finds them all.

_tl_daemon_names() {
    local f
    for f in "$TEST_OUT"/daemons/*.pid; do
        [ -e "$f" ] || continue
        f=${f##*/}
        echo "${f%.pid}"
    done
}

# daemon_pid NAME: print the pid of daemon NAME, fail if there is none.
daemon_pid() {
    local pid
    [ -f "$TEST_OUT/daemons/$1.pid" ] || return 1
    read -r pid <"$TEST_OUT/daemons/$1.pid" || return 1
    echo "$pid"
}

# _tl_alive PID: the process exists and is not a zombie.
_tl_alive() {
    local stat
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# daemon_running NAME
daemon_running() {
    local pid
    pid=$(daemon_pid "$1") && _tl_alive "$pid"
}

# start_daemon NAME COMMAND [ARGS...]: run COMMAND in the background in its
# own session, output to tests/out/SCRIPT/daemons/NAME.log.  It must stay in
# the foreground (no forking away) so its pid is the one recorded.
start_daemon() {
    [ $# -ge 2 ] || _tl_bug "start_daemon NAME COMMAND..."
    local name=$1 pid
    shift
    case $name in */* | '') _tl_bug "start_daemon: bad name '$name'" ;; esac
    if daemon_running "$name"; then
        echo "start_daemon: daemon $name is already running (pid $(daemon_pid "$name"))" >&2
        return 1
    fi
    echo "--- $(date +%T) start: $*" >>"$TEST_OUT/daemons/$name.log"
    setsid "$@" </dev/null >>"$TEST_OUT/daemons/$name.log" 2>&1 &
    pid=$!
    echo "$pid" >"$TEST_OUT/daemons/$name.pid"
    say "started daemon $name (pid $pid): $*"
}

# _tl_reap PID: collect a dead daemon's exit status into _tl_status, or "?"
# when it is not a child of this shell (started inside $(...)).  Never call
# it inside $(...) itself: a subshell cannot wait for our children.
_tl_reap() {
    local err=$TEST_OUT/daemons/wait.err
    wait "$1" 2>"$err" && _tl_status=0 || _tl_status=$?
    if [ "$_tl_status" -eq 127 ] && [ -s "$err" ]; then
        _tl_status='?'
    fi
    rm -f "$err"
}

_tl_unregister() {
    rm -f "$TEST_OUT/daemons/$1.pid"
}

# stop_daemon NAME: SIGTERM, wait up to STOP_TIMEOUT (10) seconds.  Fails,
# saying why, when the daemon was already gone, did not stop in time (then it
# is SIGKILLed), or exited with a status other than 0 or SIGTERM's 143.
stop_daemon() {
    local name=$1 pid i limit=$((${STOP_TIMEOUT:-10} * 10))
    pid=$(daemon_pid "$name") || {
        echo "stop_daemon: no daemon named $name" >&2
        return 1
    }
    if ! _tl_alive "$pid"; then
        _tl_reap "$pid"
        _tl_unregister "$name"
        echo "stop_daemon: daemon $name (pid $pid) had already exited (status $_tl_status); see $TEST_OUT/daemons/$name.log" >&2
        return 1
    fi
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < limit; i++)); do
        _tl_alive "$pid" || break
        sleep 0.1
    done
    if _tl_alive "$pid"; then
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
        _tl_reap "$pid"
        _tl_unregister "$name"
        echo "stop_daemon: daemon $name (pid $pid) did not stop within ${STOP_TIMEOUT:-10} s of SIGTERM; killed it" >&2
        return 1
    fi
    _tl_reap "$pid"
    kill -KILL -- "-$pid" 2>/dev/null # anything it left in its session
    _tl_unregister "$name"
    case $_tl_status in
    0 | 143 | "?") ;;
    *)
        echo "stop_daemon: daemon $name (pid $pid) exited with status $_tl_status after SIGTERM; see $TEST_OUT/daemons/$name.log" >&2
        return 1
        ;;
    esac
    say "stopped daemon $name (pid $pid)"
}

# kill_daemon NAME [SIGNAL]: send SIGNAL (default KILL) and, for a signal
# that ends it, wait for the daemon to go and forget it.  For crash tests;
# a clean stop is stop_daemon.
kill_daemon() {
    local name=$1 sig=${2:-KILL} pid i
    pid=$(daemon_pid "$name") || {
        echo "kill_daemon: no daemon named $name" >&2
        return 1
    }
    kill -"$sig" "$pid" || return 1
    case $sig in STOP | SIGSTOP | CONT | SIGCONT | 0) return 0 ;; esac
    for ((i = 0; i < 100; i++)); do
        _tl_alive "$pid" || break
        sleep 0.1
    done
    if _tl_alive "$pid"; then
        echo "kill_daemon: daemon $name (pid $pid) still running 10 s after SIG$sig" >&2
        return 1
    fi
    _tl_reap "$pid"
    kill -KILL -- "-$pid" 2>/dev/null
    _tl_unregister "$name"
}

# wait_for_http URL [TIMEOUT]: poll URL until any HTTP answer (whatever the
# status) or fail after TIMEOUT (30) seconds.
wait_for_http() {
    local url=$1 timeout=${2:-30} end
    end=$((SECONDS + timeout))
    until curl -s -o /dev/null --noproxy '*' --max-time 2 "$url"; do
        if [ "$SECONDS" -ge "$end" ]; then
            echo "wait_for_http: $url did not answer within $timeout s" >&2
            return 1
        fi
        sleep 0.1
    done
}

# wait_for_file PATH [TIMEOUT]: wait until PATH exists (a pid file, a socket).
wait_for_file() {
    local path=$1 timeout=${2:-30} end
    end=$((SECONDS + timeout))
    until [ -e "$path" ]; do
        if [ "$SECONDS" -ge "$end" ]; then
            echo "wait_for_file: $path did not appear within $timeout s" >&2
            return 1
        fi
        sleep 0.1
    done
}

# wait_until TIMEOUT CMD [ARGS...]: run CMD every 0.1 s until it succeeds, or
# fail after TIMEOUT seconds saying what it waited for.  For what a daemon
# reports a little after the effect a test saw (its state, a log line): wait
# for the report itself, never sleep a fixed time and hope.
wait_until() {
    local timeout=$1 end
    shift
    end=$((SECONDS + timeout))
    until "$@"; do
        if [ "$SECONDS" -ge "$end" ]; then
            echo "wait_until: still not true after $timeout s: $*" >&2
            return 1
        fi
        sleep 0.1
    done
}

# _tl_start_http_daemon NAME URL_HOSTPORT_VAR COMMAND...: start_daemon on a
# free port (the word @PORT@ in COMMAND is replaced by it) and wait for it
# to answer HTTP.  Up to 3 ports are tried, in case another process took the
# port first.  Sets _tl_port.
_tl_start_http_daemon() {
    local name=$1 attempt pid end arg
    local -a cmd
    shift
    for attempt in 1 2 3; do
        _tl_port=$(free_port) || return 1
        cmd=()
        for arg in "$@"; do cmd+=("${arg//@PORT@/$_tl_port}"); done
        start_daemon "$name" "${cmd[@]}" || return 1
        pid=$(daemon_pid "$name")
        end=$((SECONDS + 60))
        while _tl_alive "$pid"; do
            if curl -s -o /dev/null --noproxy '*' --max-time 2 "http://127.0.0.1:$_tl_port/"; then
                return 0
            fi
            if [ "$SECONDS" -ge "$end" ]; then
                stop_daemon "$name"
                echo "$name did not answer on 127.0.0.1:$_tl_port within 60 s; see $TEST_OUT/daemons/$name.log" >&2
                return 1
            fi
            sleep 0.1
        done
        _tl_reap "$pid"
        _tl_unregister "$name"
        say "$name exited at start (attempt $attempt, port $_tl_port)"
    done
    echo "$name exited at start 3 times; see $TEST_OUT/daemons/$name.log" >&2
    return 1
}

# --- fake S3 servers ----------------------------------------------------------

# start_moto [NAME]: moto's S3 on a free loopback port.  Exports MOTO_PORT and
# MOTO_URL.  moto accepts any credentials and does not check signatures.
start_moto() {
    local name=${1:-moto}
    requires "$PYTHON" curl perl
    "$PYTHON" -c 'import importlib.util as u, sys
sys.exit(not all(u.find_spec(m) for m in ("moto", "flask", "werkzeug")))' 2>/dev/null ||
        skip_all "moto server not installed for $PYTHON (run scripts/deps.sh)"
    _tl_start_http_daemon "$name" "$PYTHON" -m moto.server -H 127.0.0.1 -p @PORT@ || return 1
    export MOTO_PORT=$_tl_port MOTO_URL=http://127.0.0.1:$_tl_port
}
stop_moto() { stop_daemon "${1:-moto}"; }
kill_moto() { kill_daemon "${1:-moto}" KILL; }

# start_s3rver [NAME]: s3rver (from .deps, see scripts/deps.sh) on a free
# loopback port with a fresh data dir.  Exports S3RVER_PORT, S3RVER_URL,
# S3RVER_DIR, and the only key pair it knows in S3RVER_ACCESS_KEY and
# S3RVER_SECRET_KEY.  s3rver 3.x checks that the key id exists but does not
# verify V4 signatures.
start_s3rver() {
    local name=${1:-s3rver} bin=$TEST_TOP/.deps/s3rver/node_modules/.bin/s3rver dir
    local -a quiet=(--silent)
    [ -x "$bin" ] || skip_all "s3rver not installed in .deps/s3rver (run scripts/deps.sh)"
    requires node curl perl
    if [ -n "$TEST_VERBOSE" ]; then quiet=(); fi
    dir=$(mk_tmpdir "$name") || return 1
    # s3rver 3.7 makes ListObjectsV2 continuation tokens with DES, which
    # Node 17+ (OpenSSL 3) only offers through the legacy provider.
    NODE_OPTIONS="--openssl-legacy-provider${NODE_OPTIONS:+ $NODE_OPTIONS}" \
    _tl_start_http_daemon "$name" "$bin" --directory "$dir" --address 127.0.0.1 \
        --port @PORT@ "${quiet[@]}" || return 1
    export S3RVER_PORT=$_tl_port S3RVER_URL=http://127.0.0.1:$_tl_port S3RVER_DIR=$dir
    export S3RVER_ACCESS_KEY=S3RVER S3RVER_SECRET_KEY=S3RVER
}
stop_s3rver() { stop_daemon "${1:-s3rver}"; }
kill_s3rver() { kill_daemon "${1:-s3rver}" KILL; }

# moto_iam_user DIR: on a moto started with INITIAL_NO_AUTH_ACTION_COUNT=5
# (the readiness probe, these three IAM calls and one bucket go through
# unauthenticated), create an IAM user with an access key and an allow-all
# policy, and export its key as AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY:
# from then on moto checks the SigV4 signature of every request.
moto_iam_user() {
    local d=$1
    _tl_iam --data-urlencode Action=CreateUser --data-urlencode UserName=buoy >"$d/u.xml" &&
        _tl_iam --data-urlencode Action=CreateAccessKey --data-urlencode UserName=buoy >"$d/k.xml" &&
        _tl_iam --data-urlencode Action=PutUserPolicy --data-urlencode UserName=buoy \
            --data-urlencode PolicyName=all \
            --data-urlencode 'PolicyDocument={"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}' \
            >"$d/p.xml" || return 1
    AWS_ACCESS_KEY_ID=$(sed -n "s/.*<AccessKeyId>\([^<]*\)<.*/\1/p" "$d/k.xml")
    AWS_SECRET_ACCESS_KEY=$(sed -n "s/.*<SecretAccessKey>\([^<]*\)<.*/\1/p" "$d/k.xml")
    [ -n "$AWS_ACCESS_KEY_ID" ] && [ -n "$AWS_SECRET_ACCESS_KEY" ] || return 1
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
}
_tl_iam() {
    curl -sS --noproxy '*' --max-time 10 --aws-sigv4 aws:amz:us-east-1:iam --user boot:boot \
        -G "$MOTO_URL/" --data-urlencode "Version=2010-05-08" "$@"
}

# make_bucket URL NAME: create bucket NAME (3 to 63 characters) with an
# unsigned PUT, which both moto and s3rver accept.
make_bucket() {
    local url=$1 name=$2 code
    code=$(curl -sS --noproxy '*' --max-time 10 -o "$TEST_OUT/make_bucket.out" \
        -w '%{http_code}' -X PUT "$url/$name") || {
        echo "make_bucket: PUT $url/$name failed" >&2
        return 1
    }
    if [ "$code" != 200 ]; then
        echo "make_bucket: PUT $url/$name answered HTTP $code: $(tr -s "\n" " " <"$TEST_OUT/make_bucket.out")" >&2
        return 1
    fi
}

# --- the end ---------------------------------------------------------------------

# Point fds 1 and 2 back at the TAP stream when a test body ends the script
# while they point at its log.  bash keeps the originals on close-on-exec fds
# of 10 and above for the length of the redirection; find them by target.
_tl_restore_stdio() {
    local f n t out='' err=''
    for f in "/proc/$$/fd/"*; do
        n=${f##*/}
        [ "$n" -ge 10 ] 2>/dev/null || continue
        t=$(readlink "$f" 2>/dev/null) || continue
        [ -z "$out" ] && [ "$t" = "$_tl_stdout_id" ] && out=$n
        [ -z "$err" ] && [ "$t" = "$_tl_stderr_id" ] && err=$n
    done
    [ -n "$out" ] && exec 1>&"$out"
    [ -n "$err" ] && exec 2>&"$err"
    return 0
}

_tl_kill_daemons() {
    local name pid
    for name in $(_tl_daemon_names); do
        pid=$(daemon_pid "$name") || continue
        if _tl_alive "$pid"; then
            kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
        fi
    done
    for name in $(_tl_daemon_names); do
        pid=$(daemon_pid "$name") || continue
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            _tl_alive "$pid" || break
            sleep 0.1
        done
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
        _tl_unregister "$name"
    done
}

_tl_remove_tmp() {
    local m
    [ -d "$_tl_tmproot" ] || return 0
    if [ -n "$TEST_KEEP" ]; then
        echo "# kept temp dirs in $_tl_tmproot" >&2
        return 0
    fi
    # Detach anything a failed test left mounted there, deepest first, so rm
    # never walks into a mount.
    while read -r m; do
        fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
    done < <(awk -v root="$_tl_tmproot/" 'index($5, root) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
    # and loop devices backed by files there (buoy mount --fs makes them)
    local f
    for f in /sys/block/loop*/loop/backing_file; do
        [ -r "$f" ] || continue
        case $(cat "$f" 2>/dev/null) in
        "$_tl_tmproot"/*) losetup -d "/dev/$(basename "$(dirname "$(dirname "$f")")")" 2>/dev/null ;;
        esac
    done
    # fuse-lib.sh makes the root itself a (shared) mount
    while mountpoint -q "$_tl_tmproot"; do umount -l "$_tl_tmproot" || break; done
    rm -rf --one-file-system "$_tl_tmproot"
}

_tl_on_exit() {
    local status=$?
    set +eu
    if [ -n "$_tl_in_test" ]; then
        _tl_restore_stdio
        _tl_in_test=
        test_failed=$((test_failed + 1))
        echo "not ok $test_count - $_tl_desc"
        _tl_report_failure "$status"
        _tl_diag "the test ended the whole script (exit status $status): exit, set -e or set -u in a test?"
        echo "1..$test_count"
        status=1
    elif [ -z "$_tl_done" ] && [ "$status" -eq 0 ]; then
        echo "# $TEST_NAME ended without test_done" >&2
        status=1
    fi
    _tl_kill_daemons
    _tl_remove_tmp
    exit "$status"
}
trap _tl_on_exit EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 141' PIPE # output cut short (| head): still clean up
