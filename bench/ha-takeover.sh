#!/bin/bash
# ha-takeover.sh - buoy ha against keepalived (Debian's, VRRPv3 unicast) in
# the same network-namespace set-up as the tests: two nodes on a bridge, a
# client, the floating address 10.50.0.50 and a web server on each node
# bound to all addresses (so only the address moves; both daemons do the
# same job).  Timing made equivalent: buoy deadtime 2 s (keepalive 200 ms,
# lease 1500 ms); keepalived advert_int 0.65 s, so its master-down interval
# is 3 x 0.65 s + skew = about 2 s.
#
#   BUOY_OUT=build bench/ha-takeover.sh        (TRIALS=5 by default)
#
# Per trial: both daemons fresh, the active one's eth0 taken down and all its
# processes killed with kill -9 (the machine is gone); takeover = kill until the client's
# curl to the floating address gets the other node's answer.  Then a split:
# heartbeats (buoy: UDP 694; keepalived: VRRP, IP protocol 112) cut both ways
# with nftables for 8 s, sampling how many nodes hold the address.
# Results are printed as "# ..." lines; bench/RESULTS-ha.md keeps them.
. tests/lib/test-lib.sh
. tests/lib/ha-lib.sh
requires keepalived

TRIALS=${TRIALS:-5}
ha_net_setup 2

start_webs() {
    local k
    for k in 1 2; do
        mkdir -p "$HA_DIR/www$k" && echo "n$k" >"$HA_DIR/www$k/index.html"
        start_daemon "web$k" ip netns exec "$(ha_ns $k)" "$PYTHON" -m http.server --bind 0.0.0.0 8080 \
            --directory "$HA_DIR/www$k" || return 1
    done
}

who() { ha_in client curl -s --max-time 0.5 "http://$HA_VIP:8080/"; }

# takeover FROM TO: kill -9 node FROM's daemon (name $DAEMON$FROM), eth0 down,
# wait for TO to answer; prints ms.
takeover() {
    local from=$1 to=$2 t0 t1 i=0
    # The machine dies: its network first (so nothing it does while dying,
    # such as keepalived's child sending a priority-0 advert when its parent
    # goes, reaches anyone), then every process of the daemon at once.
    t0=$(date +%s%N)
    ip -n "$(ha_ns $from)" link set eth0 down
    kill -KILL -- "-$(daemon_pid "$DAEMON$from")"
    kill_daemon "$DAEMON$from" KILL 2>/dev/null
    until [ "$(who)" = "n$to" ]; do
        i=$((i + 1))
        [ $i -lt 600 ] || return 1
        sleep 0.02
    done
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000000))
}

# split SECONDS RULE: cut both ways; print the most holders seen at once.
split() {
    local end=$((SECONDS + $1)) max=0 h
    for k in 1 2; do
        ha_in $k nft add table inet "$HA_ID" &&
            ha_in $k nft add chain inet "$HA_ID" input '{ type filter hook input priority 0; }' &&
            ha_in $k nft add rule inet "$HA_ID" input ip saddr "10.50.0.$((3 - k))" $2 drop
    done
    while [ $SECONDS -lt $end ]; do
        h=$(ha_vip_holders)
        [ "$h" -gt "$max" ] && max=$h
        sleep 0.05
    done
    ha_heal 1; ha_heal 2
    echo "$max"
}

reset_nodes() {
    local k
    for k in 1 2; do
        ip -n "$(ha_ns $k)" addr del "$HA_VIP/24" dev eth0 2>/dev/null
        ip -n "$(ha_ns $k)" link set eth0 up
    done
}

test_expect_success 'set up: store, web servers' '
    ha_start_store && start_webs
'

# --- buoy ha ------------------------------------------------------------------------
DAEMON=ha
for k in 1 2; do
    ha_conf $k "$HA_DIR/n$k.conf" <<EOF
preferred n1
resource vip ipaddr $HA_VIP/24 dev=eth0
EOF
done
ours=()
for t in $(seq 1 "$TRIALS"); do
    test_expect_success "buoy ha trial $t: kill -9" '
        reset_nodes &&
        ha_start 1 && ha_start 2 && ha_wait_state 1 active 30 && ha_wait_state 2 standby 10 &&
        sleep 1 &&
        ms=$(takeover 1 2) && echo "$ms" >"$HA_DIR/t" &&
        stop_daemon ha2
    '
    ours+=("$(cat "$HA_DIR/t" 2>/dev/null)")
done
say "buoy ha takeover ms: ${ours[*]}"
test_expect_success 'buoy ha: heartbeats cut both ways for 8 s' '
    reset_nodes &&
    ha_start 1 && ha_start 2 && ha_wait_state 1 active 30 && ha_wait_state 2 standby 10 &&
    max=$(split 8 "udp dport 694") && echo "$max" >"$HA_DIR/split" &&
    stop_daemon ha1 && stop_daemon ha2
'
say "buoy ha split: at most $(cat "$HA_DIR/split") holder(s) of the address at once"

# --- keepalived ----------------------------------------------------------------------
DAEMON=ka
for k in 1 2; do
    cat >"$HA_DIR/ka$k.conf" <<EOF
global_defs {
    router_id n$k
    script_user root
    enable_script_security
}
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    version 3
    priority $((200 - k * 50))
    advert_int 0.65
    unicast_src_ip 10.50.0.$k
    unicast_peer {
        10.50.0.$((3 - k))
    }
    virtual_ipaddress {
        $HA_VIP/24 dev eth0
    }
}
EOF
done
start_ka() {
    start_daemon "ka$1" ip netns exec "$(ha_ns $1)" keepalived -n -l -D -P -f "$HA_DIR/ka$1.conf" \
        -p "$HA_DIR/ka$1.pid" -r "$HA_DIR/ka$1.vrrp.pid" -c "$HA_DIR/ka$1.chk.pid"
}
wait_who() {
    local i
    for i in $(seq 1 300); do [ "$(who)" = "$1" ] && return 0; sleep 0.05; done
    return 1
}
theirs=()
for t in $(seq 1 "$TRIALS"); do
    test_expect_success "keepalived trial $t: kill -9" '
        reset_nodes &&
        start_ka 1 && start_ka 2 && wait_who n1 &&
        sleep 1 &&
        ms=$(takeover 1 2) && echo "$ms" >"$HA_DIR/t" &&
        stop_daemon ka2
    '
    theirs+=("$(cat "$HA_DIR/t" 2>/dev/null)")
done
say "keepalived takeover ms: ${theirs[*]}"
test_expect_success 'keepalived: VRRP cut both ways for 8 s' '
    reset_nodes &&
    start_ka 1 && start_ka 2 && wait_who n1 && sleep 1 &&
    max=$(split 8 "ip protocol 112") && echo "$max" >"$HA_DIR/split" &&
    stop_daemon ka1 && stop_daemon ka2
'
say "keepalived split: at most $(cat "$HA_DIR/split") holder(s) of the address at once"

test_done
