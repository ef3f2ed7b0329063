#!/bin/sh
# t0300-aws-creds.sh - EC2 instance-role credentials over IMDSv2, against
# moto's metadata server on 127.0.0.1: the role's creds are found, a refresh
# margin longer than their lifetime makes creds_get refetch, the default one
# does not, a failed refresh keeps still-valid creds, and a dead metadata
# service gives the clear "no AWS credentials" error.
#
# Self-contained for now (no tests/lib/test-lib.sh).  Run from the repo top;
# the tool is ${BUOY_OUT:-build-asan}/tools/credstool.  Only loopback is
# contacted: the metadata endpoint is set before the tool ever runs.

tool=${BUOY_OUT:-build-asan}/tools/credstool
test_count=0
test_failed=0
moto_pid=

# ---- a tiny TAP harness --------------------------------------------------------------------------

skip_all() {
	echo "1..0 # SKIP $*"
	exit 0
}

# test_ok DESCRIPTION COMMANDS: runs COMMANDS (joined with &&) and prints ok / not ok.
test_ok() {
	test_count=$((test_count + 1))
	if (eval "$2"); then
		echo "ok $test_count - $1"
	else
		echo "not ok $test_count - $1"
		test_failed=$((test_failed + 1))
		sed 's/^/#   /' <<-EOF
		$2
		EOF
		for f in "$tmp/out" "$tmp/err"; do
			[ -s "$f" ] && sed "s|^|# $(basename "$f"): |" "$f"
		done
	fi
}

# Runs the tool, output to $tmp/out and $tmp/err, exit status to $tmp/rc;
# $tmp/all collects every output for the secrets check.
run_tool() {
	"$tool" "$@" >"$tmp/out" 2>"$tmp/err"
	echo $? >"$tmp/rc"
	cat "$tmp/out" "$tmp/err" >>"$tmp/all"
}

# Fails on a signal death or a sanitizer exit as well as on success.
tool_failed() {
	test "$(cat "$tmp/rc")" -eq 1
}

has_line() {
	grep -qxF "$1" "$tmp/out"
}

cleanup() {
	if [ -n "$moto_pid" ]; then
		kill "$moto_pid" 2>/dev/null
		wait "$moto_pid" 2>/dev/null
	fi
	rm -rf "$tmp"
}

# ---- requirements and moto -----------------------------------------------------------------------

command -v python3 >/dev/null 2>&1 || skip_all "python3 not installed"
python3 -m moto.server --help >/dev/null 2>&1 || skip_all "python3 -m moto.server unavailable"
if [ ! -x "$tool" ]; then
	echo "Bail out! $tool not built (make asan)"
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/t0300.XXXXXX") || exit 1
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_port open|closed PORT: waits up to 20 s for 127.0.0.1:PORT to answer
# HTTP (open) or to refuse connections (closed).
cat >"$tmp/wait_port.py" <<'EOF'
import http.client, sys, time
want, port = sys.argv[1], int(sys.argv[2])
for _ in range(200):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        c.request("PUT", "/latest/api/token",
                  headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        c.getresponse().read()
        c.close()
        if want == "open":
            sys.exit(0)
    except OSError:
        if want == "closed":
            sys.exit(0)
    time.sleep(0.1)
sys.exit(1)
EOF

port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
[ -n "$port" ] || skip_all "cannot pick a loopback port"

unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE \
	AWS_EC2_METADATA_DISABLED
HOME=$tmp
AWS_SHARED_CREDENTIALS_FILE=$tmp/no-such-credentials
AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:$port
export HOME AWS_SHARED_CREDENTIALS_FILE AWS_EC2_METADATA_SERVICE_ENDPOINT

python3 -m moto.server -H 127.0.0.1 -p "$port" >"$tmp/moto.log" 2>&1 &
moto_pid=$!
if ! python3 "$tmp/wait_port.py" open "$port"; then
	echo "Bail out! moto did not answer on 127.0.0.1:$port"
	sed 's/^/# /' "$tmp/moto.log"
	exit 1
fi

# ---- tests ---------------------------------------------------------------------------------------

run_tool
test_ok 'instance role: credstool succeeds' '
	test "$(cat "$tmp/rc")" -eq 0
'
test_ok 'instance role: source is the instance role' '
	has_line "source: instance role default-role"
'
test_ok 'instance role: access key is test-key' '
	has_line "access_key: test-key"
'
test_ok 'instance role: session token present' '
	has_line "token: yes"
'
test_ok 'instance role: expiry is in the future, within two days' '
	exp=$(sed -n "s/^expires: //p" "$tmp/out") &&
	python3 -c "import sys, time, calendar
t = calendar.timegm(time.strptime(sys.argv[1], \"%Y-%m-%dT%H:%M:%SZ\"))
sys.exit(0 if time.time() < t <= time.time() + 2 * 86400 else 1)" "$exp"
'
test_ok 'instance role: fetched once' '
	has_line "fetches: 1"
'

run_tool --margin 172800 --twice
test_ok 'margin of two days: the second creds_get refetches' '
	test "$(cat "$tmp/rc")" -eq 0 &&
	has_line "fetches: 2" &&
	has_line "access_key: test-key"
'

run_tool --twice
test_ok 'default margin: the second creds_get does not refetch' '
	test "$(cat "$tmp/rc")" -eq 0 &&
	has_line "fetches: 1"
'

# Stop moto between the two calls: the refresh fails, the creds (valid until
# tomorrow) are kept, with a warning.
run_tool --margin 172800 --twice \
	--between "kill $moto_pid && python3 '$tmp/wait_port.py' closed $port"
test_ok 'moto stopped during a refresh: still-valid creds are kept' '
	test "$(cat "$tmp/rc")" -eq 0 &&
	has_line "access_key: test-key" &&
	has_line "fetches: 1" &&
	grep -qF "cannot refresh credentials of instance role default-role" "$tmp/err"
'
wait "$moto_pid" 2>/dev/null
moto_pid=

no_creds="no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, add a profile to"
no_creds="$no_creds ~/.aws/credentials, or run on EC2 with an instance role"
run_tool
test_ok 'moto stopped: the clear error' '
	tool_failed &&
	grep -qF "$no_creds" "$tmp/err" &&
	grep -qF "instance metadata at http://127.0.0.1:$port" "$tmp/err" &&
	test "$(wc -l <"$tmp/err")" -eq 1
'
test_ok 'no secret in any output' '
	test -s "$tmp/all" &&
	! grep -qe test-secret-key -e test-session-token "$tmp/all"
'

echo "1..$test_count"
[ "$test_failed" -eq 0 ]
