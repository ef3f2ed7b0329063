#!/bin/bash
# t0300-aws-creds.sh - EC2 instance-role credentials over IMDSv2, against
# moto's metadata server on 127.0.0.1: the role's creds are found, a refresh
# margin longer than their lifetime makes creds_get refetch, the default one
# does not, a failed refresh keeps still-valid creds, and a dead metadata
# service gives the clear "no AWS credentials" error.
#
# The harness disables the metadata service; credstool is only ever run
# through imds_credstool below, which points it at moto and re-enables it for
# that one command, so only loopback is contacted, never 169.254.169.254.
. tests/lib/test-lib.sh

dir=$(mk_tmpdir)

start_moto

# imds_credstool ARGS...: credstool with moto as the metadata service.  The
# endpoint is checked first: empty, the tool would go to 169.254.169.254.
# Refuses with 125, which no check below takes for success.
imds_credstool() {
    case ${MOTO_URL:-} in
    http://127.0.0.1:[0-9]*) ;;
    *)
        echo "imds_credstool: MOTO_URL '${MOTO_URL:-}' is not a loopback URL; not running credstool" >&2
        return 125
        ;;
    esac
    env -u AWS_EC2_METADATA_DISABLED AWS_EC2_METADATA_SERVICE_ENDPOINT="$MOTO_URL" \
        "$TOOLS/credstool" "$@"
}

# Run by credstool (sh -c) between its two creds_get calls: says so, then
# waits up to 30 s for the test to have stopped moto.
cat >"$dir/pause.sh" <<'EOF'
: >"$1/paused"
i=0
while [ ! -e "$1/resume" ]; do
    i=$((i + 1))
    [ "$i" -le 300 ] || exit 1
    sleep 0.1
done
EOF

test_expect_success 'instance role: credstool succeeds' '
    imds_credstool >"$dir/role.out" 2>"$dir/role.err"
'

test_expect_success 'instance role: source is the instance role' '
    grep -qxF "source: instance role default-role" "$dir/role.out"
'

test_expect_success 'instance role: access key is test-key' '
    grep -qxF "access_key: test-key" "$dir/role.out"
'

test_expect_success 'instance role: session token present' '
    grep -qxF "token: yes" "$dir/role.out"
'

test_expect_success 'instance role: expiry is in the future, within two days' '
    exp=$(sed -n "s/^expires: //p" "$dir/role.out") &&
    "$PYTHON" -c "import sys, time, calendar
t = calendar.timegm(time.strptime(sys.argv[1], \"%Y-%m-%dT%H:%M:%SZ\"))
sys.exit(0 if time.time() < t <= time.time() + 2 * 86400 else 1)" "$exp"
'

test_expect_success 'instance role: fetched once' '
    grep -qxF "fetches: 1" "$dir/role.out"
'

test_expect_success 'margin of two days: the second creds_get refetches' '
    imds_credstool --margin 172800 --twice >"$dir/margin.out" 2>"$dir/margin.err" &&
    grep -qxF "fetches: 2" "$dir/margin.out" &&
    grep -qxF "access_key: test-key" "$dir/margin.out"
'

test_expect_success 'default margin: the second creds_get does not refetch' '
    imds_credstool --twice >"$dir/default.out" 2>"$dir/default.err" &&
    grep -qxF "fetches: 1" "$dir/default.out"
'

# moto is stopped between the two calls: the refresh fails, the creds (valid
# until tomorrow) are kept, with a warning.
test_expect_success 'moto stopped during a refresh: still-valid creds are kept' '
    imds_credstool --margin 172800 --twice --between "sh \"$dir/pause.sh\" \"$dir\"" \
        >"$dir/refresh.out" 2>"$dir/refresh.err" &
    pid=$! &&
    test_when_finished "touch \"$dir/resume\"" &&
    wait_for_file "$dir/paused" 30 &&
    stop_moto &&
    test_expect_code 7 curl -sS --noproxy "*" --max-time 5 -o /dev/null "$MOTO_URL/" &&
    touch "$dir/resume" &&
    wait "$pid" &&
    grep -qxF "access_key: test-key" "$dir/refresh.out" &&
    grep -qxF "fetches: 1" "$dir/refresh.out" &&
    grep -qF "cannot refresh credentials of instance role default-role" "$dir/refresh.err"
'

no_creds="no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, add a profile to"
no_creds="$no_creds ~/.aws/credentials, or run on EC2 with an instance role"

test_expect_success 'moto stopped: the clear error' '
    test_expect_code 1 imds_credstool >"$dir/dead.out" 2>"$dir/dead.err" &&
    grep -qF "$no_creds" "$dir/dead.err" &&
    grep -qF "instance metadata at $MOTO_URL" "$dir/dead.err" &&
    test "$(wc -l <"$dir/dead.err")" -eq 1
'

test_expect_success 'no secret in any output' '
    cat "$dir"/role.out "$dir"/role.err "$dir"/margin.out "$dir"/margin.err \
        "$dir"/default.out "$dir"/default.err "$dir"/refresh.out "$dir"/refresh.err \
        "$dir"/dead.out "$dir"/dead.err >"$dir/all" &&
    test -s "$dir/all" &&
    test_expect_code 1 grep -e test-secret-key -e test-session-token "$dir/all"
'

test_done
