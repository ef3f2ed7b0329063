#!/bin/bash
# t3170-ha-slow-start.sh - a resource start that outlasts the lease.  n1
# takes the resources over; its "slow" resource's start hangs (as a mount
# that waits on a dead disk would), and then n1 is cut off from the lease
# store and from n2's heartbeats.  Its lease cannot be renewed, so the start
# must be cancelled (its process group stopped) and the floating address
# given up before the lease runs out, long before the start's own timeout:
# otherwise n2, which takes the lease once it has run out, would hold the
# address too.  Sampled throughout: never two holders of the address.
. tests/lib/test-lib.sh
. tests/lib/ha-lib.sh

ha_net_setup 2
web=$(ha_web_script)

# slow.sh NODE DIR start|stop|status: hangs in start while DIR/hang-NODE exists
cat >"$HA_DIR/slow.sh" <<'EOF'
#!/bin/sh
node=$1 dir=$2
case $3 in
start)
    if [ -e "$dir/hang-$node" ]; then
        echo "$(date +%s%N) slow-begin $node" >>"$dir/slow-journal"
        sleep 60
        echo "$(date +%s%N) slow-done $node" >>"$dir/slow-journal"
    fi
    touch "$dir/slow-$node.up"
    ;;
stop) rm -f "$dir/slow-$node.up" ;;
status) [ -e "$dir/slow-$node.up" ] ;;
esac
EOF
chmod +x "$HA_DIR/slow.sh"

for k in 1 2; do
    ha_conf $k "$HA_DIR/n$k.conf" <<EOF
preferred n1
resource vip ipaddr $HA_VIP/24 dev=eth0
resource slow exec $HA_DIR/slow.sh n$k $HA_DIR timeout=90s
resource web exec $web n$k $HA_DIR
EOF
done

# watch_until SECS COND: samples the address holders until COND holds; fails
# at once if two nodes ever hold it, or if COND does not hold within SECS.
watch_until() {
    local end=$((SECONDS + $1)) n
    while [ $SECONDS -lt $end ]; do
        n=$(ha_vip_holders)
        if [ "$n" -gt 1 ]; then
            echo "two nodes hold $HA_VIP" >&2
            return 1
        fi
        "$2" && return 0
        sleep 0.1
    done
    echo "watch_until: $2 did not hold within $1 s" >&2
    return 1
}

n2_active() { test "$(ha_state 2)" = active && test "$(ha_vip_holders)" = 1; }

test_expect_success 'two nodes; n1 active; then standby moves everything to n2' '
    ha_start_store &&
    ha_start 1 && ha_start 2 &&
    ha_wait_state 1 active 30 && ha_wait_state 2 standby 10 &&
    "$BUOY" ha standby --socket "$HA_DIR/n1.sock" >/dev/null &&
    ha_wait_state 2 active 30 && ha_wait_state 1 standby 10 &&
    test "$(ha_vip_holders)" = 1
'

test_expect_success 'n1 takes over; its slow resource hangs in start, holding the address' '
    touch "$HA_DIR/hang-n1" &&
    "$BUOY" ha takeover --socket "$HA_DIR/n1.sock" >/dev/null &&
    wait_until 30 grep -q "slow-begin n1" "$HA_DIR/slow-journal" &&
    test "$(ip -n "$(ha_ns 1)" -o -4 addr show dev eth0 | grep -c " $HA_VIP/")" = 1 &&
    test "$(ha_vip_holders)" = 1
'

test_expect_success 'cut off from the store and from n2: the start is cancelled, the address freed, n2 takes over' '
    ha_cut 1 2 && ha_cut 2 1 &&
    ha_in 1 nft add rule inet "$HA_ID" input ip saddr 10.50.0.200 drop &&
    watch_until 40 n2_active &&
    grep -q "slow.sh cancelled: the lease is no longer valid" "$TEST_OUT/daemons/ha1.log" &&
    test "$(ip -n "$(ha_ns 1)" -o -4 addr show dev eth0 | grep -c " $HA_VIP/")" = 0 &&
    test_must_fail grep -q "slow-done n1" "$HA_DIR/slow-journal" &&
    test "$(ha_in client curl -s --max-time 2 http://$HA_VIP:8080/)" = n2
'

# n1's takeover request still stands, so after healing either node may end up
# active; exactly one must.
one_active() {
    test "$( (ha_state 1; ha_state 2) | grep -c "^active$")" = 1 && test "$(ha_vip_holders)" = 1
}

test_expect_success 'healed: one active node, the web journal never shows two up' '
    rm -f "$HA_DIR/hang-n1" &&
    ha_heal 1 && ha_heal 2 &&
    sleep 3 &&
    watch_until 40 one_active &&
    test_must_fail grep -q "slow-done n1" "$HA_DIR/slow-journal" &&
    ha_journal_ok
'

test_done
