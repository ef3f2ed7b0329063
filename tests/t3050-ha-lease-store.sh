#!/bin/bash
# t3050-ha-lease-store.sh - the lease when the store misbehaves, through the
# daemon: injected store errors and lost answers on every lease request
# (lease_fault, the store fault layer) still give exactly one active node;
# the store killed (kill -9 of moto) makes the active node stop its
# resources before its lease can have run out, and nobody is active until
# the store is back; then one node is active again.
. tests/lib/test-lib.sh
. tests/lib/ha-lib.sh

ha_net_setup 2
web=$(ha_web_script)

for k in 1 2; do
    ha_conf $k "$HA_DIR/n$k.conf" <<EOF
lease_fault err=0.2,ackloss=0.1,seed=$k
resource vip ipaddr $HA_VIP/24 dev=eth0
resource web exec $web n$k $HA_DIR
EOF
done

# never_two SECONDS: sampled, at most one holder of the address.
never_two() {
    local end=$((SECONDS + $1)) h
    while [ "$SECONDS" -lt "$end" ]; do
        h=$(ha_vip_holders)
        [ "$h" -le 1 ] || { echo "two holders of $HA_VIP" >&2; return 1; }
        sleep 0.05
    done
}

test_expect_success 'with a fifth of lease requests failing or losing their answer: one active' '
    ha_start_store &&
    ha_start 1 && ha_start 2 &&
    for i in $(seq 1 300); do
        n=$( (ha_state 1; ha_state 2) | grep -c "^active$")
        test "$n" = 1 && break
        sleep 0.1
    done &&
    test "$n" = 1 &&
    never_two 8 &&
    n=$( (ha_state 1; ha_state 2) | grep -c "^active$") &&
    test "$n" = 1 &&
    a=$(ha_state 1 | grep -q active && echo 1 || echo 2) &&
    ha_status $a && grep "^lease" "$HA_DIR/status$a" &&
    grep -q "ours yes" "$HA_DIR/status$a"
'

# cut_store K: node K's lease requests go nowhere (nft, in its namespace).
cut_store() {
    ha_in $1 nft add table inet $HA_ID-st &&
        ha_in $1 nft add chain inet $HA_ID-st output '{ type filter hook output priority 0; }' &&
        ha_in $1 nft add rule inet $HA_ID-st output ip daddr 10.50.0.200 drop
}
heal_store() { ha_in $1 nft delete table inet $HA_ID-st; }

wait_one_active() {
    for i in $(seq 1 300); do
        n=$( (ha_state 1; ha_state 2) | grep -c "^active$")
        test "$n" = 1 && return 0
        sleep 0.1
    done
    return 1
}

test_expect_success 'the store unreachable from both: the active node steps down before its lease can end' '
    cut_store 1 && cut_store 2 &&
    t0=$(date +%s%N) &&
    for i in $(seq 1 100); do
        test "$(ha_vip_holders)" = 0 && break
        sleep 0.05
    done &&
    t1=$(date +%s%N) &&
    test "$(ha_vip_holders)" = 0 &&
    echo "stepped down $(( (t1 - t0) / 1000000 )) ms after the store went away (lease_time 1500 ms)" &&
    grep -q "lease not renewed in time" "$TEST_OUT/daemons/ha1.log" "$TEST_OUT/daemons/ha2.log" &&
    sleep 3 &&
    test "$(ha_vip_holders)" = 0 &&
    test "$(ha_state 1)" != active && test "$(ha_state 2)" != active &&
    ha_journal_ok
'

test_expect_success 'the store reachable again, lease object intact: one node active again' '
    heal_store 1 && heal_store 2 &&
    wait_one_active &&
    never_two 3 &&
    test "$(ha_vip_holders)" = 1 &&
    ha_journal_ok
'

test_expect_success 'the store killed (kill -9 of moto): nobody stays active' '
    kill_daemon moto KILL &&
    for i in $(seq 1 100); do
        test "$(ha_vip_holders)" = 0 && break
        sleep 0.05
    done &&
    test "$(ha_vip_holders)" = 0 &&
    sleep 2 &&
    test "$(ha_vip_holders)" = 0 &&
    ha_journal_ok
'

test_expect_success 'the store back (empty: moto keeps nothing): one node active again' '
    ha_start_store &&
    wait_one_active &&
    never_two 3 &&
    test "$(ha_vip_holders)" = 1 &&
    ha_journal_ok
'

test_done
