#!/bin/bash
# t3180-ha-failed-start.sh - a node in the failed state holds the lease only
# while a resource of it may still run (rule S6 of docs/HA-PROTOCOL.md).
# Two nodes in network namespaces, the lease in moto; the resources are the
# floating address and the test's web service, run through a wrapper that
# fails start and stop on a node while a file says it is broken (status=none,
# so buoy cannot look and has only the exit codes).
#   1. The preferred node cannot start the service: its start and its stop
#      fail.  It goes failed with nothing running (the address it did start
#      is stopped), lets the lease go, and the other node becomes active.
#   2. The failed node stays failed until buoy ha clear, then is standby.
#   3. The active node's service, which was running, does not stop: that
#      node goes failed and keeps the lease, so the other node does not start
#      on top of it; once the service is stopped by hand, buoy ha clear
#      releases the lease and the other node takes over.
# buoy ha status --json is checked on both nodes on the way.  Takeover times
# go to the log, never into an assertion.
. tests/lib/test-lib.sh
. tests/lib/ha-lib.sh

ha_net_setup 2
web=$(ha_web_script)
flaky=$HA_DIR/flaky.sh
cat >"$flaky" <<EOF
#!/bin/sh
# flaky.sh NODE DIR start|stop: web.sh, unless DIR/broken-NODE exists
if [ -e "\$2/broken-\$1" ]; then
    echo "\$1: cannot \$3 (the test broke it)"
    exit 1
fi
exec $web "\$@"
EOF
chmod +x "$flaky"

test_expect_success 'the lease store (moto) runs in its namespace' '
    ha_start_store
'

for k in 1 2; do
    ha_conf $k "$HA_DIR/n$k.conf" <<EOF
preferred n1
failover_hold 2
resource vip ipaddr $HA_VIP/24 dev=eth0
resource web exec $flaky n$k $HA_DIR status=none
check up command "test -d $HA_DIR" interval=300ms
EOF
done

test_expect_success 'the preferred node cannot start its service: it goes failed and lets the lease go' '
    touch "$HA_DIR/broken-n1" &&
    t0=$(date +%s%N) &&
    ha_start 1 && ha_start 2 &&
    ha_wait_state 1 failed 60 &&
    ha_wait_status 1 20 "^lease ha/lease holder .* ours no" &&
    grep -q "reason \"a stop failed, but nothing can be running (every resource stopped or had not started): lease released for a peer" \
        "$HA_DIR/status1" &&
    grep -q "^resource vip kind ipaddr state stopped" "$HA_DIR/status1" &&
    grep -q "^resource web kind exec state failed .* last \"stop failed: .*(it had not started)\"" \
        "$HA_DIR/status1"
'

test_expect_success 'the other node becomes active and serves' '
    ha_wait_state 2 active 30 &&
    t1=$(date +%s%N) &&
    echo "failed_start_to_active_ms $(( (t1 - t0) / 1000000 ))" | tee "$HA_DIR/takeover" &&
    grep -q "^lease ha/lease holder n2 epoch 2 state held ours yes" "$HA_DIR/status2" &&
    test "$(ha_vip_holders)" = 1 &&
    test "$(ha_in client curl -s --max-time 2 http://$HA_VIP:8080/)" = n2
'
say "$(cat "$HA_DIR/takeover" 2>/dev/null) (from daemon start; initdead 3000 ms, deadtime 2000 ms, lease_time 1500 ms)"

# json_check K EXPR...: node K's buoy ha status --json is valid JSON (json.tool)
# and every Python EXPR over it (as s) is true.
json_check() {
    local k=$1
    shift
    "$BUOY" ha status --json --socket "$HA_DIR/n$k.sock" >"$HA_DIR/status$k.json" &&
        "$PYTHON" -m json.tool "$HA_DIR/status$k.json" >/dev/null &&
        "$PYTHON" - "$HA_DIR/status$k.json" "$@" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
bad = [e for e in sys.argv[2:] if not eval(e, {"s": s})]
for e in bad:
    print("not true: " + e)
if bad:
    print(json.dumps(s, indent=1))
sys.exit(1 if bad else 0)
PY
}

test_expect_success 'buoy ha status --json: nodes, state, lease, resources, checks as JSON' '
    json_check 2 "s[\"node\"][\"name\"] == \"n2\" and s[\"node\"][\"state\"] == \"active\"" \
        "s[\"lease\"][\"holder\"] == \"n2\" and s[\"lease\"][\"state\"] == \"held\"" \
        "s[\"lease\"][\"ours\"] is True and s[\"lease\"][\"epoch\"] == 2 and s[\"lease\"][\"left_ms\"] > 0" \
        "[p[\"name\"] for p in s[\"peers\"]] == [\"n1\"] and s[\"peers\"][0][\"state\"] == \"failed\"" \
        "s[\"peers\"][0][\"alive\"] is True and s[\"peers\"][0][\"addr\"] == \"10.50.0.1\"" \
        "[(r[\"name\"], r[\"state\"], r[\"may_run\"]) for r in s[\"resources\"]] == [(\"vip\", \"running\", True), (\"web\", \"running\", True)]" \
        "[(c[\"name\"], c[\"kind\"], c[\"state\"]) for c in s[\"checks\"]] == [(\"up\", \"command\", \"up\")]" \
        "s[\"packets\"][\"sent\"] > 0 and s[\"packets\"][\"accepted\"] > 0 and s[\"packets\"][\"mac\"] == 0" &&
    json_check 1 "s[\"node\"][\"state\"] == \"failed\" and s[\"checks\"][0][\"state\"] == \"idle\"" \
        "s[\"lease\"][\"ours\"] is False and s[\"lease\"][\"holder\"] == \"n2\"" \
        "[(r[\"name\"], r[\"state\"], r[\"may_run\"]) for r in s[\"resources\"]] == [(\"vip\", \"stopped\", False), (\"web\", \"failed\", False)]"
'

test_expect_success 'the failed node stays failed, never claims, until buoy ha clear' '
    sleep 3 &&
    test "$(ha_state 1)" = failed &&
    test "$(ha_state 2)" = active &&
    rm -f "$HA_DIR/broken-n1" &&
    "$BUOY" ha clear --socket "$HA_DIR/n1.sock" >"$HA_DIR/out" &&
    grep -q "^ok: failed state cleared" "$HA_DIR/out" &&
    ha_wait_state 1 standby 10 &&
    sleep 2 &&
    test "$(ha_state 2)" = active &&
    test "$(ha_vip_holders)" = 1
'

test_expect_success 'a running service that does not stop: failed, the lease kept, nobody starts on top' '
    touch "$HA_DIR/broken-n2" &&
    "$BUOY" ha standby --socket "$HA_DIR/n2.sock" >"$HA_DIR/out" &&
    ha_wait_state 2 failed 30 &&
    grep -q "reason \"a resource that may be running did not stop: keeping the lease" \
        "$HA_DIR/status2" &&
    sleep 5 &&
    ha_status 2 &&
    grep -q "^lease ha/lease holder n2 epoch 2 state held ours yes" "$HA_DIR/status2" &&
    s1=$(ha_state 1) &&
    test "$s1" != active
'

test_expect_success 'stopped by hand and cleared: the lease is released and the other node takes over' '
    rm -f "$HA_DIR/broken-n2" &&
    "$web" n2 "$HA_DIR" stop &&
    "$BUOY" ha clear --socket "$HA_DIR/n2.sock" >"$HA_DIR/out" &&
    ha_wait_state 1 active 30 &&
    test "$(ha_vip_holders)" = 1 &&
    test "$(ha_in client curl -s --max-time 2 http://$HA_VIP:8080/)" = n1
'

test_expect_success 'the web journal never shows two nodes up at once' '
    ha_journal_ok
'

test_done
