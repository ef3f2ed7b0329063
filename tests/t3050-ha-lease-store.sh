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

# one_active: exactly one node says it is active, and the same reading of
# its status says the lease is its own; sets a to that node.  With a fifth of
# the lease requests failing, the active node may step down now and then
# (correctly: it could not renew in time), and for a moment nobody is
# active: wait for one, never assume it at a given instant.
one_active() {
    local k n=0
    a=0
    for k in 1 2; do
        [ "$(ha_state $k)" = active ] && n=$((n + 1)) && a=$k
    done
    [ "$n" = 1 ] && grep -q "^lease .* ours yes" "$HA_DIR/status$a"
}
# settled: one active node, and it alone holds the address.
settled() { one_active && test "$(ha_vip_holders)" = 1; }
no_holder() { test "$(ha_vip_holders)" = 0; }
stepdowns() {
    local n
    n=$(cat "$TEST_OUT/daemons/ha1.log" "$TEST_OUT/daemons/ha2.log" |
        grep -c "lease not renewed in time")
    echo "${n:-0}"
}

test_expect_success 'with a fifth of lease requests failing or losing their answer: one active' '
    ha_start_store &&
    ha_start 1 && ha_start 2 &&
    wait_until 30 one_active &&
    never_two 8 &&
    wait_until 10 one_active &&
    grep "^lease" "$HA_DIR/status$a"
'

# cut_store K: node K's lease requests go nowhere (nft, in its namespace).
cut_store() {
    ha_in $1 nft add table inet $HA_ID-st &&
        ha_in $1 nft add chain inet $HA_ID-st output '{ type filter hook output priority 0; }' &&
        ha_in $1 nft add rule inet $HA_ID-st output ip daddr 10.50.0.200 drop
}
heal_store() { ha_in $1 nft delete table inet $HA_ID-st; }

test_expect_success 'the store unreachable from both: the active node steps down before its lease can end' '
    down0=$(stepdowns) &&
    cut_store 1 && cut_store 2 &&
    t0=$(date +%s%N) &&
    wait_until 20 no_holder &&
    t1=$(date +%s%N) &&
    echo "stepped down $(( (t1 - t0) / 1000000 )) ms after the store went away (lease_time 1500 ms)" &&
    test "$(stepdowns)" -gt "$down0" &&
    sleep 3 &&
    test "$(ha_vip_holders)" = 0 &&
    test "$(ha_state 1)" != active && test "$(ha_state 2)" != active &&
    ha_journal_ok
'

test_expect_success 'the store reachable again, lease object intact: one node active again' '
    heal_store 1 && heal_store 2 &&
    wait_until 30 settled &&
    never_two 3 &&
    wait_until 10 settled &&
    ha_journal_ok
'

test_expect_success 'the store killed (kill -9 of moto): nobody stays active' '
    kill_daemon moto KILL &&
    wait_until 20 no_holder &&
    sleep 2 &&
    test "$(ha_vip_holders)" = 0 &&
    ha_journal_ok
'

test_expect_success 'the store back (empty: moto keeps nothing): one node active again' '
    ha_start_store &&
    wait_until 30 settled &&
    never_two 3 &&
    wait_until 10 settled &&
    ha_journal_ok
'

test_done
