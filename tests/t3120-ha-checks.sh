#!/bin/bash
# t3120-ha-checks.sh - health checks, what monit did next to Heartbeat: the
# service on the floating address is killed -> an http check notices (fall
# 2) and the resource is restarted on the same node; killed again and again
# -> after its local restarts the node fails over, and the other node serves.
# A process check (pid file), a tcp and a command check run beside it.
. tests/lib/test-lib.sh
. tests/lib/ha-lib.sh

ha_net_setup 2
web=$(ha_web_script)

# kill_web K: kill node K's service, and say so in the web journal: a killed
# server writes no "stop" line, and the daemon's stop writes none either once
# status sees the server gone, so without this line ha_journal_ok would take
# the server for still up when the other node starts.
kill_web() {
    local pid
    read -r pid <"$HA_DIR/web-n$1.pid" && kill -KILL "$pid" &&
        echo "$(date +%s%N) kill n$1" >>"$HA_DIR/journal"
}

# wait_restarts K N: node K's check "http" has made N restarts, and the last
# of them has finished: resource web is running after its N+1st start.  (The
# restart counts when it begins; a kill that lands while web.sh start still
# waits for its server makes that start hang until its timeout, and the node
# then fails over for a failed restart rather than for running out of them.)
wait_restarts() {
    local i
    for i in $(seq 1 200); do
        ha_status "$1" && grep -q "^check http kind http state up .* restarts $2/2" "$HA_DIR/status$1" &&
            grep -q "^resource web kind exec state running starts $(($2 + 1)) .* last \"started\"" \
                "$HA_DIR/status$1" &&
            return 0
        sleep 0.1
    done
    cat "$HA_DIR/status$1"
    return 1
}

wait_served_by() {
    local i
    for i in $(seq 1 200); do
        test "$(ha_in client curl -s --max-time 1 http://$HA_VIP:8080/)" = "$1" && return 0
        sleep 0.1
    done
    return 1
}

# The http check's timeout is generous: a killed server refuses at once, but
# a loaded machine can keep python's server from answering within 500 ms
# twice in a row, and that is a local restart the test did not ask for
# (wait_restarts then finds one restart too many, or the node fails over
# early).
for k in 1 2; do
    ha_conf $k "$HA_DIR/n$k.conf" <<EOF
preferred n1
failover_hold 20s
resource vip ipaddr $HA_VIP/24 dev=eth0
resource web exec $web n$k $HA_DIR
check http http http://$HA_VIP:8080/ body=n$k interval=300ms timeout=2s fall=2 restarts=2 resource=web
check pid process pidfile=$HA_DIR/web-n$k.pid interval=1s fall=5 restarts=2 resource=web
check up command "test -d $HA_DIR" interval=1s
check port tcp $HA_VIP:8080 interval=1s fall=5
EOF
done

test_expect_success 'two nodes with checks; n1 active and serving' '
    ha_start_store &&
    ha_start 1 && ha_start 2 &&
    ha_wait_state 1 active 30 && ha_wait_state 2 standby 10 &&
    wait_served_by n1
'

test_expect_success 'the service killed: the check restarts it on the same node' '
    kill_web 1 &&
    wait_restarts 1 1 &&
    wait_served_by n1 &&
    test "$(ha_state 1)" = active &&
    grep -q "local restart 1 of 2" "$TEST_OUT/daemons/ha1.log" &&
    grep -q "^check up kind command state up" "$HA_DIR/status1" &&
    for i in $(seq 1 100); do
        ha_status 1 && grep -q "^check port kind tcp state up runs [1-9]" "$HA_DIR/status1" && break
        sleep 0.1
    done &&
    grep -q "^check port kind tcp state up runs [1-9]" "$HA_DIR/status1"
'

test_expect_success 'killed again: a second local restart' '
    kill_web 1 &&
    wait_restarts 1 2 &&
    wait_served_by n1
'

test_expect_success 'killed a third time: no restarts left, n1 fails over and n2 serves' '
    kill_web 1 &&
    ha_wait_state 2 active 60 && # a restart that hangs takes its 20 s timeout first
    wait_served_by n2 &&
    ha_wait_state 1 standby 10 &&
    grep -q "flags hold" "$HA_DIR/status1" &&
    grep -q "after 2 local restarts: failing over" "$TEST_OUT/daemons/ha1.log" &&
    test "$(ha_vip_holders)" = 1 &&
    ha_journal_ok
'

test_done
