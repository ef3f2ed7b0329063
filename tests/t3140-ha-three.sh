#!/bin/bash
# t3140-ha-three.sh - three nodes on the bridge, auto_failback on with n1
# preferred: n1 active; kill -9 n1 -> exactly one of the others takes over
# (never two, sampled); n1 back -> it gets the resources back and the
# others are standby; n1 cut off from both peers' heartbeats (all still
# reach the store) -> still one active.
. tests/lib/test-lib.sh
. tests/lib/ha-lib.sh

ha_net_setup 3
web=$(ha_web_script)
for k in 1 2 3; do
    ha_conf $k "$HA_DIR/n$k.conf" <<EOF
preferred n1
auto_failback on
resource vip ipaddr $HA_VIP/24 dev=eth0
resource web exec $web n$k $HA_DIR
EOF
done

actives() { (ha_state 1; ha_state 2; ha_state 3) | grep -c "^active$"; }

# never_two SECONDS
never_two() {
    local end=$((SECONDS + $1))
    while [ "$SECONDS" -lt "$end" ]; do
        [ "$(ha_vip_holders)" -le 1 ] || { echo "two holders" >&2; return 1; }
        sleep 0.05
    done
}

test_expect_success 'three daemons: the preferred node is active, two standby' '
    ha_start_store &&
    ha_start 1 && ha_start 2 && ha_start 3 &&
    ha_wait_state 1 active 30 &&
    ha_wait_state 2 standby 10 && ha_wait_state 3 standby 10 &&
    test "$(ha_in client curl -s --max-time 2 http://$HA_VIP:8080/)" = n1
'

test_expect_success 'kill -9 n1: exactly one other node takes over' '
    ha_kill 1 && echo "$(date +%s%N) kill n1" >>"$HA_DIR/journal" &&
    ha_wait_state 2 active 20 &&
    never_two 3 &&
    test "$(ha_state 3)" = standby &&
    test "$(ha_in client curl -s --max-time 2 http://$HA_VIP:8080/)" = n2
'

test_expect_success 'n1 comes back: auto_failback gives it the resources' '
    ha_revive 1 && ha_start 1 &&
    ha_wait_state 1 active 30 &&
    ha_wait_state 2 standby 10 &&
    test "$(ha_state 3)" = standby &&
    test "$(ha_in client curl -s --max-time 2 http://$HA_VIP:8080/)" = n1 &&
    grep -q "auto_failback to the preferred node n1" "$TEST_OUT/daemons/ha2.log"
'

test_expect_success 'n1 cut off from both peers'"'"' heartbeats: still one active, never two' '
    ha_cut 1 2 && ha_cut 1 3 && ha_cut 2 1 && ha_cut 3 1 &&
    never_two 6 &&
    test "$(actives)" = 1 &&
    test "$(ha_state 1)" = active &&
    ha_heal 1 && ha_heal 2 && ha_heal 3 &&
    never_two 3 &&
    test "$(actives)" = 1 &&
    ha_journal_ok
'

test_done
