#!/bin/bash
# t3110-ha-partition.sh - split brain, the way it happens: heartbeats between
# the two nodes cut with nftables while both still reach the lease store.
# In every trial, sampled every ~50 ms for longer than deadtime plus two
# lease times, at most one node holds the floating address and at most one
# says it is active; the web journal (start/stop times of the service on the
# floating address) never shows two nodes up at once.  Odd trials also cut
# the active node off from the store: it must stop its resources before its
# lease runs out, and only then may the other start.  After healing, one
# node is active and one standby.
. tests/lib/test-lib.sh
. tests/lib/ha-lib.sh

TRIALS=${HA_TRIALS:-6}
ha_net_setup 2
web=$(ha_web_script)

test_expect_success 'the lease store runs; two daemons start, one active' '
    ha_start_store &&
    for k in 1 2; do
        ha_conf $k "$HA_DIR/n$k.conf" <<EOF || return 1
resource vip ipaddr $HA_VIP/24 dev=eth0
resource web exec $web n$k $HA_DIR
EOF
    done &&
    ha_start 1 && ha_start 2 &&
    ha_wait_state 1 active 30 && ha_wait_state 2 standby 10
'

active_node() {
    local k
    for k in 1 2; do
        [ "$(ha_state $k)" = active ] && { echo $k; return 0; }
    done
    echo 0
}

# watch SECONDS: sample holders and states; fail on two of either.
watch() {
    local end=$((SECONDS + $1)) h a s1 s2 n=0
    while [ "$SECONDS" -lt "$end" ]; do
        h=$(ha_vip_holders)
        s1=$(ha_state 1) s2=$(ha_state 2)
        a=0
        [ "$s1" = active ] && a=$((a + 1))
        [ "$s2" = active ] && a=$((a + 1))
        n=$((n + 1))
        if [ "$h" -gt 1 ] || [ "$a" -gt 1 ]; then
            echo "DUAL ACTIVE: $h holders of $HA_VIP, states n1=$s1 n2=$s2" >&2
            return 1
        fi
        sleep 0.05
    done
    echo "samples $n"
}

for t in $(seq 1 "$TRIALS"); do
    test_expect_success "trial $t: heartbeats cut both ways$([ $((t % 2)) = 1 ] && echo ', the active node also cut off from the store'): never two active" '
        a=$(active_node) && test "$a" != 0 && b=$((3 - a)) &&
        ha_cut 1 2 && ha_cut 2 1 &&
        if [ $((t % 2)) = 1 ]; then
            ha_in $a nft add rule inet $HA_ID input ip saddr 10.50.0.200 drop
        fi &&
        watch 6 >"$HA_DIR/watch" &&
        cat "$HA_DIR/watch" &&
        if [ $((t % 2)) = 1 ]; then
            test "$(ha_state $b)" = active &&
            test "$(ha_state $a)" != active &&
            grep -q "lease not renewed in time" "$TEST_OUT/daemons/ha$a.log"
        else
            test "$(ha_state $a)" = active &&
            test "$(ha_state $b)" = acquiring
        fi &&
        ha_heal 1 && ha_heal 2 &&
        watch 3 >/dev/null &&
        n_act=$( (ha_state 1; ha_state 2) | grep -c "^active$") &&
        test "$n_act" = 1 &&
        test "$(ha_vip_holders)" = 1 &&
        ha_journal_ok
    '
done

test_expect_success 'the epoch only went up, once per change of holder' '
    ha_status 1 &&
    epoch=$(sed -n "s/^lease ha\/lease holder [^ ]* epoch \([0-9]*\) .*/\1/p" "$HA_DIR/status1") &&
    starts=$(grep -c " start " "$HA_DIR/journal") &&
    echo "epoch $epoch, service starts $starts" &&
    test "$epoch" -ge 1 && test "$starts" -le "$epoch"
'

test_done
