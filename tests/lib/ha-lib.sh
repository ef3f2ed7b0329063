# shellcheck shell=bash
# ha-lib.sh - network namespaces and failover daemons for the buoy ha tests.
# Source after tests/lib/test-lib.sh.
#
#   ha_net_setup N        a bridge namespace, N node namespaces (eth0 at
#                         10.50.0.K/24), a client (10.50.0.100) and a store
#                         namespace (10.50.0.200); names carry $$ so parallel
#                         runs do not collide.  Everything is removed on exit,
#                         even when a test fails: processes in the namespaces
#                         (by pid), nft tables, veths, bridge, namespaces.
#   ha_ns K               the name of node K's namespace (client, store too)
#   ha_in NS CMD...       run CMD in namespace NS
#   ha_start_store        moto (S3 + EC2) in the store namespace at
#                         http://10.50.0.200:5000 and bucket "buoy-ha"; exports
#                         HA_STORE_EP (bucket buoy-ha)
#   ha_conf K FILE [extra lines on stdin]
#                         a buoy-ha.conf for node K of N (peers, lease in moto,
#                         key, control socket); extra lines appended
#   ha_start K            start_daemon haK: buoy ha run in node K's namespace
#   ha_kill K             kill -9 node K's daemon and its web server, and take
#                         its eth0 down (the machine is gone)
#   ha_status K           buoy ha status of node K (into $HA_DIR/statusK)
#   ha_state K            print node K's state
#   ha_wait_state K STATE [TIMEOUT]
#   ha_wait_status K TIMEOUT PATTERN...
#                         wait until one reading of node K's status (in
#                         $HA_DIR/statusK) matches every PATTERN (grep)
#   ha_cut K J / ha_heal K  drop node K's heartbeats from node J (nft table in K)
#   ha_vip_holders        how many node namespaces hold the floating address
#   ha_web_script         path of an exec resource script that runs a small
#                         HTTP server on the floating address saying its node
#
# Addresses: node K is 10.50.0.K, the floating address 10.50.0.50/24.

HA_ID=bh$$
HA_VIP=10.50.0.50
HA_N=0
HA_DIR=$(mk_tmpdir ha)
HA_STORE_EP=http://10.50.0.200:5000

ha_ns() { echo "$HA_ID-$1"; }

ha_in() {
    local ns
    ns=$(ha_ns "$1")
    shift
    ip netns exec "$ns" "$@"
}

_ha_teardown() {
    local k ns pid
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
        case $ns in "$HA_ID"-*) ;; *) continue ;; esac
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null
        done
    done
    for k in $(seq 1 "$HA_N") client store; do
        ip netns del "$(ha_ns "$k")" 2>/dev/null
    done
    ip netns del "$(ha_ns br)" 2>/dev/null
    return 0
}

_ha_exit() {
    local s=$?
    _tl_kill_daemons
    _ha_teardown
    (exit "$s")
    _tl_on_exit
}
trap _ha_exit EXIT

# _ha_link NAME ADDR: a namespace with eth0 on the bridge.
_ha_link() {
    local name=$1 addr=$2 ns br
    ns=$(ha_ns "$name")
    br=$(ha_ns br)
    ip netns add "$ns" &&
        ip link add "v$name-$$" netns "$ns" type veth peer name "p$name" netns "$br" &&
        ip -n "$br" link set "p$name" master br0 up &&
        ip -n "$ns" link set "v$name-$$" name eth0 &&
        ip -n "$ns" addr add "$addr/24" dev eth0 &&
        ip -n "$ns" link set eth0 up &&
        ip -n "$ns" link set lo up
}

ha_net_setup() {
    requires ip nft curl "$PYTHON"
    requires_root
    HA_N=$1
    local k br
    br=$(ha_ns br)
    ip netns add "$br" || skip_all "cannot create network namespaces"
    ip -n "$br" link add br0 type bridge &&
        ip -n "$br" link set br0 up || return 1
    for k in $(seq 1 "$HA_N"); do
        _ha_link "$k" "10.50.0.$k" || return 1
    done
    _ha_link client 10.50.0.100 && _ha_link store 10.50.0.200 || return 1
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$HA_DIR/key" && echo >>"$HA_DIR/key"
    chmod 600 "$HA_DIR/key"
}

# With HA_MOTO_AUTH=1, moto checks the SigV4 signature of every request
# after the first five (the readiness probe, three IAM calls that make a user
# with an allow-all policy, the bucket); AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY are then that user's.
ha_start_store() {
    local i noauth=
    export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
    [ -n "${HA_MOTO_AUTH:-}" ] && noauth=INITIAL_NO_AUTH_ACTION_COUNT=5
    start_daemon moto ip netns exec "$(ha_ns store)" env $noauth "$PYTHON" -m moto.server \
        -H 10.50.0.200 -p 5000 || return 1
    for i in $(seq 1 300); do
        ha_in store curl -s -o /dev/null --max-time 2 http://10.50.0.200:5000/ && break
        sleep 0.1
    done
    if [ -n "$noauth" ]; then
        _ha_iam Action=CreateUser UserName=buoy >"$HA_DIR/iam-u.xml" &&
            _ha_iam Action=CreateAccessKey UserName=buoy >"$HA_DIR/iam-k.xml" &&
            _ha_iam Action=PutUserPolicy UserName=buoy PolicyName=all \
                'PolicyDocument={"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}' \
                >"$HA_DIR/iam-p.xml" || return 1
        AWS_ACCESS_KEY_ID=$(sed -n 's/.*<AccessKeyId>\([^<]*\)<.*/\1/p' "$HA_DIR/iam-k.xml")
        AWS_SECRET_ACCESS_KEY=$(sed -n 's/.*<SecretAccessKey>\([^<]*\)<.*/\1/p' "$HA_DIR/iam-k.xml")
        [ -n "$AWS_ACCESS_KEY_ID" ] && [ -n "$AWS_SECRET_ACCESS_KEY" ] || return 1
    fi
    ha_in client curl -sS -f -o /dev/null -X PUT "$HA_STORE_EP/buoy-ha"
}

_ha_iam() {
    local a args=()
    for a in "$@"; do args+=(--data-urlencode "$a"); done
    ha_in client curl -sS -f --max-time 10 --aws-sigv4 aws:amz:us-east-1:iam --user boot:boot \
        -G "$HA_STORE_EP/" --data-urlencode Version=2010-05-08 "${args[@]}"
}

# ha_conf K FILE: node K's configuration; more lines from stdin if any.
ha_conf() {
    local k=$1 f=$2 j
    {
        echo "node n$k"
        for j in $(seq 1 "$HA_N"); do
            [ "$j" = "$k" ] || echo "peer n$j 10.50.0.$j"
        done
        echo "bind 10.50.0.$k"
        echo "keepalive 200ms"
        echo "warntime 1s"
        echo "deadtime 2s"
        echo "initdead 3s"
        echo "authkey $HA_DIR/key"
        echo "lease_store s3://buoy-ha/cluster"
        echo "lease_endpoint $HA_STORE_EP"
        echo "lease_time 1500ms"
        echo "lease_poll 200ms"
        echo "control $HA_DIR/n$k.sock"
        [ -t 0 ] || cat
    } >"$f"
}

ha_start() {
    start_daemon "ha$1" ip netns exec "$(ha_ns "$1")" "$BUOY" ha run -c "$HA_DIR/n$1.conf"
}

ha_kill() {
    local k=$1 pid ns
    ns=$(ha_ns "$k")
    kill_daemon "ha$k" KILL || return 1
    # The service dies with the machine, and so does a web.sh start the
    # daemon was still running: left alone, it would go on to write "start"
    # in the journal after the test's "kill" line (and a server it had just
    # started, before its pid file, would live on).  Other processes (a
    # buoy mount) are left to the test.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
        case $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) in
        *"$HA_DIR/web.sh n$k "* | *"$HA_DIR/www-n$k "*) kill -KILL "$pid" 2>/dev/null ;;
        esac
    done
    rm -f "$HA_DIR/web-n$k.pid"
    ip -n "$ns" link set eth0 down
}

# ha_revive K: the machine is back (eth0 up, no floating address left over).
ha_revive() {
    local k=$1
    ip -n "$(ha_ns "$k")" addr del "$HA_VIP/24" dev eth0 2>/dev/null
    ip -n "$(ha_ns "$k")" link set eth0 up
}

ha_status() {
    "$BUOY" ha status --socket "$HA_DIR/n$1.sock" >"$HA_DIR/status$1"
}

ha_state() {
    ha_status "$1" 2>/dev/null || { echo down; return 0; }
    sed -n 's/^node [^ ]* state \([a-z]*\) .*/\1/p' "$HA_DIR/status$1"
}

ha_wait_state() {
    local k=$1 want=$2 timeout=${3:-20} end s
    end=$((SECONDS + timeout))
    while :; do
        s=$(ha_state "$k")
        [ "$s" = "$want" ] && return 0
        if ! daemon_running "ha$k"; then
            echo "ha_wait_state: the daemon of n$k is not running" >&2
            return 1
        fi
        if [ "$SECONDS" -ge "$end" ]; then
            echo "ha_wait_state: n$k is $s, not $want, after $timeout s" >&2
            cat "$HA_DIR/status$k" >&2
            return 1
        fi
        sleep 0.1
    done
}

ha_wait_status() {
    local k=$1 timeout=$2 end re ok
    shift 2
    end=$((SECONDS + timeout))
    while :; do
        if ha_status "$k" 2>/dev/null; then
            ok=1
            for re in "$@"; do
                grep -q -- "$re" "$HA_DIR/status$k" || { ok=; break; }
            done
            [ -n "$ok" ] && return 0
        fi
        if [ "$SECONDS" -ge "$end" ]; then
            echo "ha_wait_status: n$k's status does not show $re after $timeout s" >&2
            cat "$HA_DIR/status$k" >&2
            return 1
        fi
        sleep 0.1
    done
}

ha_cut() {
    local k=$1 j=$2 t=$HA_ID
    ha_in "$k" nft list table inet "$t" >/dev/null 2>&1 ||
        ha_in "$k" nft add table inet "$t" &&
        ha_in "$k" nft add chain inet "$t" input '{ type filter hook input priority 0; }' ||
        return 1
    ha_in "$k" nft add rule inet "$t" input ip saddr "10.50.0.$j" udp dport 694 drop
}

ha_heal() {
    ha_in "$1" nft delete table inet "$HA_ID" 2>/dev/null
    return 0
}

ha_vip_holders() {
    local k n=0
    for k in $(seq 1 "$HA_N"); do
        # a dead machine (eth0 down) holds nothing
        ip -n "$(ha_ns "$k")" -o -4 addr show dev eth0 up 2>/dev/null | grep -q " $HA_VIP/" && n=$((n + 1))
    done
    echo "$n"
}

# A resource script: a small HTTP server on the floating address that says
# which node it runs on.  NODE and DIR come from its arguments.
ha_web_script() {
    local s=$HA_DIR/web.sh
    cat >"$s" <<'EOF'
#!/bin/sh
# web.sh NODE DIR start|stop|status - the test's service on the floating address
node=$1 dir=$2 pidf=$2/web-$1.pid
case $3 in
start)
    mkdir -p "$dir/www-$node" && echo "$node" >"$dir/www-$node/index.html"
    python3 -m http.server --bind 10.50.0.50 8080 --directory "$dir/www-$node" \
        >>"$dir/web-$node.log" 2>&1 </dev/null &
    echo $! >"$pidf"
    i=0
    while ! curl -s -o /dev/null --max-time 1 http://10.50.0.50:8080/; do
        i=$((i + 1)); [ $i -lt 400 ] || exit 1; sleep 0.05
    done
    echo "$(date +%s%N) start $node" >>"$dir/journal"
    ;;
stop)
    [ -f "$pidf" ] && kill "$(cat "$pidf")" 2>/dev/null
    rm -f "$pidf"
    echo "$(date +%s%N) stop $node" >>"$dir/journal"
    ;;
status)
    # A killed server stays a zombie until init reaps it, which may take
    # seconds: kill -0 alone would call it running for as long.
    [ -f "$pidf" ] && pid=$(cat "$pidf") &&
        st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null) &&
        [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
    ;;
esac
EOF
    chmod +x "$s"
    echo "$s"
}

# ha_journal_ok: 0 when no two nodes' start..stop intervals in the web
# journal overlap (a killed node's interval ends when it was killed: the
# test writes "kill NODE" lines).
ha_journal_ok() {
    [ -f "$HA_DIR/journal" ] || return 0
    sort -n "$HA_DIR/journal" | awk '
        $2 == "start" { if (up != "" && up != $3) { print "overlap: " $3 " started while " up " was up"; bad = 1 } up = $3 }
        ($2 == "stop" || $2 == "kill") && up == $3 { up = "" }
        END { exit bad }'
}
