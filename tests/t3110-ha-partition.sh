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

# watch MIN [MAX COND]: sample the holders of the address and the states
# every ~50 ms, for MIN seconds; fail on two holders or two active nodes.
# With COND, go on sampling after MIN seconds until COND holds for a sample
# (it reads that sample: st[1], st[2], h), failing after MAX seconds: under
# load the daemons take longer to get where the test expects them.
watch() {
    local min=$1 max=${2:-$1} cond=${3:-} t0=$SECONDS h na n=0
    local -a st
    while :; do
        h=$(ha_vip_holders)
        st[1]=$(ha_state 1) st[2]=$(ha_state 2)
        na=0
        [ "${st[1]}" = active ] && na=$((na + 1))
        [ "${st[2]}" = active ] && na=$((na + 1))
        n=$((n + 1))
        if [ "$h" -gt 1 ] || [ "$na" -gt 1 ]; then
            echo "DUAL ACTIVE: $h holders of $HA_VIP, states n1=${st[1]} n2=${st[2]}" >&2
            return 1
        fi
        if [ $((SECONDS - t0)) -ge "$min" ]; then
            [ -z "$cond" ] && break
            $cond && break
            if [ $((SECONDS - t0)) -ge "$max" ]; then
                echo "watch: $cond not true after $max s: $h holders, n1=${st[1]} n2=${st[2]}" >&2
                return 1
            fi
        fi
        sleep 0.05
    done
    echo "samples $n"
}

# Conditions for watch, on node $a (active before the cut) and node $b.
b_took_over() { [ "${st[$b]}" = active ] && [ "${st[$a]}" != active ]; }
a_kept_it() { [ "${st[$a]}" = active ] && [ "${st[$b]}" = acquiring ]; }
one_active() {
    [ "$h" = 1 ] && [ "$( (echo "${st[1]}"; echo "${st[2]}") | grep -c "^active$")" = 1 ]
}

# stepdowns K: how many times node K has said it stepped down for its lease.
stepdowns() {
    local n
    n=$(grep -c "lease not renewed in time" "$TEST_OUT/daemons/ha$1.log")
    echo "${n:-0}"
}

for t in $(seq 1 "$TRIALS"); do
    test_expect_success "trial $t: heartbeats cut both ways$([ $((t % 2)) = 1 ] && echo ', the active node also cut off from the store'): never two active" '
        a=$(active_node) && test "$a" != 0 && b=$((3 - a)) &&
        down0=$(stepdowns $a) &&
        ha_cut 1 2 && ha_cut 2 1 &&
        if [ $((t % 2)) = 1 ]; then
            ha_in $a nft add rule inet $HA_ID input ip saddr 10.50.0.200 drop &&
            watch 6 30 b_took_over >"$HA_DIR/watch" &&
            test "$(stepdowns $a)" -gt "$down0"
        else
            watch 6 30 a_kept_it >"$HA_DIR/watch"
        fi &&
        cat "$HA_DIR/watch" &&
        ha_heal 1 && ha_heal 2 &&
        watch 3 20 one_active >/dev/null &&
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
