#!/bin/bash
# t3010-ha-cli.sh - buoy ha's command line and configuration, no network:
# --help of every verb and the man pages agree with the option and key
# tables; check-config reports a good file and refuses bad ones with one
# line naming the file and line; the key file must be mode 0600; the
# control verbs are for root only; buoy ha import converts the seed's
# Heartbeat set-up (ha.cf, haresources, authkeys) into a file that loads.
. tests/lib/test-lib.sh

dir=$(mk_tmpdir)
printf 'a-shared-secret-of-some-length\n' >"$dir/key"
chmod 600 "$dir/key"
printf '#!/bin/sh\necho "I have"\n' >"$dir/elastic-ip"
chmod 755 "$dir/elastic-ip"
cat >"$dir/good.conf" <<EOF
node alpha
peer beta 10.0.0.2
keepalive 1
deadtime 10
authkey $dir/key
lease_store $dir/store
resource vip ipaddr 10.0.0.100/24 dev=eth0
resource eip exec $dir/elastic-ip running="I have"
check web http http://10.0.0.100/ body=ok
EOF

test_expect_success 'buoy ha --help lists the verbs; each verb has --help' '
    "$BUOY" ha --help >"$dir/help" &&
    for v in run status standby takeover online clear reload check-config keys import; do
        grep -q "^  $v " "$dir/help" &&
        "$BUOY" ha $v --help >"$dir/h.$v" &&
        grep -q "^usage: buoy ha $v" "$dir/h.$v" || return 1
    done &&
    "$BUOY" --help >"$dir/top" && grep -q "ha run|status" "$dir/top"
'

test_expect_success 'docs/buoy.1 documents every buoy ha verb and option' '
    groff -man -Tascii -P-cbou docs/buoy.1 >"$dir/man.txt" 2>/dev/null &&
    for v in run status standby takeover online clear reload check-config keys import; do
        grep -q "ha $v" "$dir/man.txt" || { echo "buoy.1 lacks ha $v"; return 1; }
        sed -n "s/^ *\(-[a-z], \)\{0,1\}--\([a-z-]*\).*/\2/p" "$dir/h.$v" >"$dir/o.$v" &&
        while read -r opt; do
            grep -q -- "--$opt" "$dir/man.txt" || { echo "buoy.1 lacks --$opt ($v)"; return 1; }
        done <"$dir/o.$v" || return 1
    done
'

test_expect_success 'buoy-ha.conf(5) documents every key of the table, and every resource and check kind' '
    groff -man -Tascii -P-cbou docs/buoy-ha.conf.5 >"$dir/conf5.txt" 2>/dev/null &&
    grep -q "^NAME" "$dir/conf5.txt" && grep -q "^EXAMPLES" "$dir/conf5.txt" &&
    "$BUOY" ha keys >"$dir/keys" &&
    test "$(wc -l <"$dir/keys")" -ge 20 &&
    while read -r key rest; do
        grep -q "^       $key\b" "$dir/conf5.txt" || { echo "buoy-ha.conf.5 lacks $key"; return 1; }
    done <"$dir/keys" &&
    for kind in ipaddr ec2-eip volume fsmount service exec process tcp http command; do
        grep -q "^       $kind\b" "$dir/conf5.txt" || { echo "buoy-ha.conf.5 lacks kind $kind"; return 1; }
    done
'

test_expect_success 'check-config reports a good file' '
    "$BUOY" ha check-config -c "$dir/good.conf" >"$dir/out" &&
    grep -q "node alpha, 1 peer(s), 2 resource(s), 1 check(s); keepalive 1000ms, deadtime 10000ms" "$dir/out"
'

bad() { # NAME SED-EXPR WANT
    sed "$2" "$dir/good.conf" >"$dir/$1.conf" &&
    test_expect_code 1 "$BUOY" ha check-config -c "$dir/$1.conf" 2>"$dir/$1.err" &&
    test "$(wc -l <"$dir/$1.err")" = 1 &&
    grep -q "$3" "$dir/$1.err" || { cat "$dir/$1.err"; return 1; }
}

test_expect_success 'inconsistent or wrong settings are refused with one line' '
    bad dead "s/^deadtime 10/deadtime 2/" "deadtime (2000ms) must be more than 2 x keepalive (1000ms)" &&
    bad typo "s/^keepalive 1/keepalive one/" "good.conf\|typo.conf:3: keepalive: .one. is not a duration" &&
    bad kind "s/ ipaddr / ipadr /" "unknown resource kind .ipadr." &&
    bad opt "s/body=ok/bodi=ok/" "takes no option bodi=" &&
    bad peer "s/^peer beta 10.0.0.2/peer alpha 10.0.0.2/" "peer alpha is this node.s own name" &&
    bad nolease "/^lease_store/d" "no lease_store; add: lease_store URL"
'

test_expect_success 'a resource script that is missing or not executable is refused at load' '
    bad noscript "s|exec $dir/elastic-ip|exec $dir/no-such-script|" \
        "resource eip (line 8): $dir/no-such-script does not exist; install the resource script there" &&
    cp "$dir/elastic-ip" "$dir/noexec" && chmod 644 "$dir/noexec" &&
    bad noexec "s|exec $dir/elastic-ip|exec $dir/noexec|" \
        "resource eip (line 8): $dir/noexec is not executable (chmod +x $dir/noexec)" &&
    bad noprog "s|exec $dir/elastic-ip|exec no-such-program-here|" \
        "resource eip (line 8): no program no-such-program-here on PATH" &&
    bad nolsb "s|^resource eip .*|resource svc service no-such-service init=lsb|" \
        "resource svc (line 8): /etc/init.d/no-such-service does not exist; install the service.s init script"
'

test_expect_success 'buoy ha run refuses a missing resource script before it takes any lease' '
    sed "s|exec $dir/elastic-ip|exec $dir/no-such-script|" "$dir/good.conf" >"$dir/run.conf" &&
    echo "control $dir/run.sock" >>"$dir/run.conf" &&
    test_expect_code 1 "$BUOY" ha run -c "$dir/run.conf" 2>"$dir/run.err" &&
    grep -q "resource eip (line 8): $dir/no-such-script does not exist" "$dir/run.err" &&
    test ! -e "$dir/store/ha/lease"
'

test_expect_success 'a key file readable by others is refused' '
    cp "$dir/key" "$dir/key644" && chmod 644 "$dir/key644" &&
    bad mode "s|^authkey .*|authkey $dir/key644|" "has mode 0644; run chmod 600"
'

test_expect_success 'the control verbs are for root only' '
    requires setpriv &&
    test_expect_code 1 setpriv --reuid=65534 --regid=65534 --clear-groups \
        "$BUOY" ha status --socket "$dir/none.sock" 2>"$dir/err" &&
    grep -q "for root only" "$dir/err"
'

test_expect_success 'no daemon: status says where it looked' '
    test_expect_code 1 "$BUOY" ha status --socket "$dir/none.sock" 2>"$dir/err" &&
    grep -q "cannot reach the daemon at $dir/none.sock" "$dir/err"
'

test_expect_success 'unknown verbs and stray arguments are usage errors' '
    test_expect_code 2 "$BUOY" ha frob 2>"$dir/err" && grep -q "unknown verb .frob." "$dir/err" &&
    test_expect_code 2 "$BUOY" ha status extra 2>"$dir/err" && grep -q "takes no arguments" "$dir/err"
'

# The seed's Heartbeat files (../shared/seeds/002), with the addresses the
# article leaves out filled in.
mkdir -p "$dir/ha.d"
cat >"$dir/ha.d/ha.cf" <<'EOF'
# Log to syslog as facility "daemon"
logfacility daemon
# List of cluster members by short hostname (uname -n)
node server1 server2
# Send one heartbeat each second
keepalive 1
# Declare nodes dead after 10 seconds
deadtime 10
# internal IP of the peer
ucast eth0 10.0.0.1
ucast eth0 10.0.0.2
# Fail back, so we're normally running on the primary server
auto_failback on
EOF
echo "server1 elastic-ip" >"$dir/ha.d/haresources"
printf 'auth 1\n1 sha1 foobarbaz\n' >"$dir/ha.d/authkeys"

test_expect_success 'import converts the seed set-up into a configuration that loads' '
    "$BUOY" ha import --ha-cf "$dir/ha.d/ha.cf" --haresources "$dir/ha.d/haresources" \
        --authkeys "$dir/ha.d/authkeys" --node server2 --key-out "$dir/imported.key" \
        --lease-store "$dir/store" >"$dir/imported.conf" 2>"$dir/import.err" &&
    cat "$dir/imported.conf" "$dir/import.err" &&
    grep -qx "node server2" "$dir/imported.conf" &&
    grep -qx "peer server1 10.0.0.1" "$dir/imported.conf" &&
    grep -qx "keepalive 1" "$dir/imported.conf" &&
    grep -qx "deadtime 10" "$dir/imported.conf" &&
    grep -qx "preferred server1" "$dir/imported.conf" &&
    grep -qx "auto_failback on" "$dir/imported.conf" &&
    grep -q "^resource elastic-ip exec /etc/init.d/elastic-ip status=none$" "$dir/imported.conf" &&
    test "$(cat "$dir/imported.key")" = foobarbaz &&
    test "$(wc -l <"$dir/import.err")" = 2 &&
    grep -qx "buoy: ha import: warning: $dir/ha.d/ha.cf: .logfacility daemon. not converted: buoy ha logs to standard error .*" "$dir/import.err" &&
    grep -qx "# logfacility daemon: not converted; buoy ha logs to standard error (the journal under systemd)" "$dir/imported.conf" &&
    grep -qx "buoy: ha import: warning: resource elastic-ip: no script /etc/ha.d/resource.d/elastic-ip or /etc/init.d/elastic-ip on this machine; install the resource script as /etc/init.d/elastic-ip .*" "$dir/import.err" &&
    grep -qx "# /etc/init.d/elastic-ip does not exist yet: install the resource script there" "$dir/imported.conf" &&
    test "$(stat -c %a "$dir/imported.key")" = 600 &&
    test_expect_code 1 "$BUOY" ha check-config -c "$dir/imported.conf" 2>"$dir/err" &&
    grep -q "resource elastic-ip (line [0-9]*): /etc/init.d/elastic-ip does not exist" "$dir/err" &&
    sed "s|/etc/init.d/elastic-ip|$dir/elastic-ip|" "$dir/imported.conf" >"$dir/imported2.conf" &&
    "$BUOY" ha check-config -c "$dir/imported2.conf" >"$dir/out" &&
    grep -q "node server2, 1 peer(s), 1 resource(s)" "$dir/out"
'

test_expect_success 'import maps IPaddr and Filesystem, and refuses what it cannot convert' '
    echo "server1 IPaddr::10.0.0.100/24/eth0 Filesystem::/dev/sdb1::/data::ext4 elastic-ip" \
        >"$dir/ha.d/haresources2" &&
    "$BUOY" ha import --ha-cf "$dir/ha.d/ha.cf" --haresources "$dir/ha.d/haresources2" \
        --authkeys "$dir/ha.d/authkeys" --node server1 --key-out "$dir/k2" \
        --lease-store "$dir/store" >"$dir/i2.conf" &&
    grep -q "^resource ip1 ipaddr 10.0.0.100/24 dev=eth0$" "$dir/i2.conf" &&
    grep -q "^resource fs2 fsmount /dev/sdb1 /data type=ext4$" "$dir/i2.conf" &&
    grep -qx "peer server2 10.0.0.2" "$dir/i2.conf" &&
    sed "s|/etc/init.d/elastic-ip|$dir/elastic-ip|" "$dir/i2.conf" >"$dir/i2b.conf" &&
    "$BUOY" ha check-config -c "$dir/i2b.conf" >/dev/null &&
    sed "s/^ucast.*//" "$dir/ha.d/ha.cf" >"$dir/ha.d/bcast.cf" && echo "bcast eth0" >>"$dir/ha.d/bcast.cf" &&
    test_expect_code 1 "$BUOY" ha import --ha-cf "$dir/ha.d/bcast.cf" --haresources "$dir/ha.d/haresources" \
        --authkeys "$dir/ha.d/authkeys" --node server1 --key-out "$dir/k3" --lease-store "$dir/store" 2>"$dir/err" &&
    grep -q "bcast is not supported; buoy heartbeats are unicast" "$dir/err" &&
    test_expect_code 1 "$BUOY" ha import --ha-cf "$dir/ha.d/ha.cf" --haresources "$dir/ha.d/haresources" \
        --authkeys "$dir/ha.d/authkeys" --node server1 --key-out "$dir/k4" 2>"$dir/err" &&
    grep -qx "buoy: ha import: Heartbeat has no lease; give --lease-store URL (a store both nodes reach)" "$dir/err"
'

test_expect_success 'import creates the key file.s missing directory, mode 0700' '
    "$BUOY" ha import --ha-cf "$dir/ha.d/ha.cf" --haresources "$dir/ha.d/haresources" \
        --authkeys "$dir/ha.d/authkeys" --node server1 --key-out "$dir/etc/buoy/ha.key" \
        --lease-store "$dir/store" >"$dir/i5.conf" 2>/dev/null &&
    test "$(stat -c %a "$dir/etc/buoy")" = 700 &&
    test "$(stat -c %a "$dir/etc")" = 700 &&
    test "$(stat -c %a "$dir/etc/buoy/ha.key")" = 600 &&
    test "$(cat "$dir/etc/buoy/ha.key")" = foobarbaz &&
    grep -qx "authkey $dir/etc/buoy/ha.key" "$dir/i5.conf"
'

test_expect_success 'contrib/buoy-ha.service runs buoy ha run from /usr/local/bin, and systemd accepts it' '
    grep -qx "ExecStart=/usr/local/bin/buoy ha run -c /etc/buoy/ha.conf" contrib/buoy-ha.service &&
    grep -qx "ExecStartPre=/usr/local/bin/buoy ha check-config -c /etc/buoy/ha.conf" contrib/buoy-ha.service &&
    grep -qx "KillMode=mixed" contrib/buoy-ha.service &&
    if command -v systemd-analyze >/dev/null; then
        mkdir -p "$dir/unit" &&
        sed "s|/usr/local/bin/buoy|$BUOY|" contrib/buoy-ha.service >"$dir/unit/buoy-ha.service" &&
        systemd-analyze verify --man=no "$dir/unit/buoy-ha.service" >"$dir/verify" 2>&1 &&
        test ! -s "$dir/verify" || { cat "$dir/verify"; return 1; }
    else
        say "no systemd-analyze: the unit is not verified"
    fi
'

test_done
