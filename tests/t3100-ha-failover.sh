#!/bin/bash
# t3100-ha-failover.sh - two nodes in network namespaces on a bridge, a
# client, and the lease in moto's S3 in a store namespace.  The resources
# are the floating address (ipaddr, with gratuitous ARP) and a small HTTP
# service on it (exec).  kill -9 of the active daemon (and its machine's
# network) -> the standby owns the address and the client reads the
# service from it; the killed node comes back as standby (auto_failback
# off); manual standby and takeover; bad packets from the client are
# counted and change nothing.  Takeover times go to the log (and
# bench/RESULTS-ha.md), never into an assertion.
. tests/lib/test-lib.sh
. tests/lib/ha-lib.sh

ha_net_setup 2
web=$(ha_web_script)

test_expect_success 'the lease store (moto) runs in its namespace' '
    ha_start_store
'

for k in 1 2; do
    ha_conf $k "$HA_DIR/n$k.conf" <<EOF
preferred n1
resource vip ipaddr $HA_VIP/24 dev=eth0
resource web exec $web n$k $HA_DIR
EOF
done

test_expect_success 'both daemons start; the preferred node becomes active' '
    ha_start 1 && ha_start 2 &&
    ha_wait_state 1 active 30 &&
    ha_wait_state 2 standby 10 &&
    test "$(ha_vip_holders)" = 1 &&
    test "$(ha_in client curl -s --max-time 2 http://$HA_VIP:8080/)" = n1
'

# n2 learns that n1 is active from n1's next heartbeat, and who holds the
# lease from its next read of the lease (every lease_poll): a little after n1
# says it is active.
test_expect_success 'status shows both nodes, the lease holder and epoch, the resources' '
    ha_wait_status 2 10 "^peer n1 addr 10.50.0.1:694 state active .* alive yes" \
        "^lease ha/lease holder n1 epoch 1 state held ours no" &&
    grep -q "^node n2 state standby" "$HA_DIR/status2" &&
    ha_status 1 &&
    grep -q "^lease ha/lease holder n1 epoch 1 state held ours yes" "$HA_DIR/status1" &&
    grep -q "^resource vip kind ipaddr state running" "$HA_DIR/status1" &&
    grep -q "^resource web kind exec state running" "$HA_DIR/status1"
'

test_expect_success 'kill -9 the active node: the standby owns the address, the client reads from it' '
    mac1=$(ip -n $(ha_ns 1) -o link show eth0 | sed -n "s/.*link\/ether \([0-9a-f:]*\).*/\1/p") &&
    mac2=$(ip -n $(ha_ns 2) -o link show eth0 | sed -n "s/.*link\/ether \([0-9a-f:]*\).*/\1/p") &&
    ha_in client ip neigh show $HA_VIP >"$HA_DIR/neigh.before" &&
    grep -q "$mac1" "$HA_DIR/neigh.before" &&
    t0=$(date +%s%N) &&
    ha_kill 1 && echo "$(date +%s%N) kill n1" >>"$HA_DIR/journal" &&
    i=0 &&
    until test "$(ha_in client curl -s --max-time 1 http://$HA_VIP:8080/)" = n2; do
        i=$((i + 1)); test $i -lt 300 || return 1; sleep 0.05
    done &&
    t1=$(date +%s%N) &&
    echo "takeover_ms $(( (t1 - t0) / 1000000 ))" | tee "$HA_DIR/takeover" &&
    ha_wait_state 2 active 10 && # web answers just before the node calls itself active
    grep -q "^lease ha/lease holder n2 epoch 2 state held ours yes" "$HA_DIR/status2" &&
    ha_in client ip neigh show $HA_VIP >"$HA_DIR/neigh.after" &&
    grep -q "$mac2" "$HA_DIR/neigh.after"
'
say "$(cat "$HA_DIR/takeover" 2>/dev/null) (deadtime 2000 ms, lease_time 1500 ms)"

test_expect_success 'the killed node comes back as standby (auto_failback off)' '
    ha_revive 1 && ha_start 1 &&
    ha_wait_state 1 standby 20 &&
    sleep 2 &&
    test "$(ha_state 2)" = active &&
    test "$(ha_vip_holders)" = 1
'

test_expect_success 'buoy ha standby hands the resources over; takeover brings them back' '
    "$BUOY" ha standby --socket "$HA_DIR/n2.sock" >"$HA_DIR/out" &&
    grep -q "^ok" "$HA_DIR/out" &&
    ha_wait_state 1 active 20 &&
    ha_wait_state 2 standby 10 &&
    grep -q "flags standby" "$HA_DIR/status2" &&
    test "$(ha_in client curl -s --max-time 2 http://$HA_VIP:8080/)" = n1 &&
    "$BUOY" ha takeover --socket "$HA_DIR/n2.sock" >"$HA_DIR/out" &&
    ha_wait_state 2 active 20 &&
    ha_wait_state 1 standby 10 &&
    test "$(ha_in client curl -s --max-time 2 http://$HA_VIP:8080/)" = n2 &&
    test "$(ha_vip_holders)" = 1
'

test_expect_success 'the web journal never shows two nodes up at once' '
    ha_journal_ok
'

# Bad packets, sent from the client namespace to n1's heartbeat port: a
# replayed genuine heartbeat (captured from the wire is not possible here, so
# from n2's own socket is not either; we send our own bytes), garbage,
# truncated and oversized packets, and a packet signed with the wrong key.
cat >"$HA_DIR/bad.py" <<'EOF'
import hashlib, hmac, os, socket, struct, sys, time
dst = (sys.argv[1], 694)
key = open(sys.argv[2], "rb").read().split(b"\n")[0]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
def hb(k, name=b"n2", seq=1, state=3, t=None, inc=12345):
    t = int(time.time() * 1000) if t is None else t
    p = b"BYHA" + bytes([1, 1]) + struct.pack(">H", 128) + struct.pack(">QQQQ", inc, seq, t, 99)
    p += bytes([state, 0, 0, 0]) + struct.pack(">I", 0) + name.ljust(32, b"\0") + b"\0" * 16
    return p + hmac.new(k, p, hashlib.sha256).digest()
n = 0
for i in range(200):
    s.sendto(os.urandom(i % 300 + 1), dst); n += 1            # garbage
good = hb(key, seq=1, state=3, t=int(time.time() * 1000) - 600000)
s.sendto(good, dst); n += 1                                   # outside the window
s.sendto(hb(b"wrong key wrong key", seq=2), dst); n += 1       # wrong key
s.sendto(hb(key)[:100], dst); n += 1                          # truncated
s.sendto(hb(key) + b"x" * 50, dst); n += 1                    # oversized
s.sendto(hb(key, name=b"intruder"), dst); n += 1              # unknown node
s.sendto(hb(key, name=b"n1"), dst); n += 1                    # our own name
print(n)
EOF

# drops K: how many packets node K has dropped so far (every counter on its
# status line "packets sent N accept N mac N ..." but sent and accept).
drops() {
    ha_status "$1" &&
        awk '/^packets/ { s = 0; for (i = 6; i < NF; i += 2) s += $(i + 1); print s }' "$HA_DIR/status$1"
}
# all_dropped K N: node K has dropped N packets (the daemon reads its socket
# a little after they arrive).
all_dropped() {
    local n
    n=$(drops "$1") && test "$n" -ge "$2"
}

test_expect_success 'bad packets are dropped and counted, and change nothing' '
    ha_status 1 && before=$(grep "^node" "$HA_DIR/status1" | cut -d" " -f1-4) &&
    test "$before" = "node n1 state standby" &&
    drops_before=$(drops 1) &&
    sent=$(ha_in client "$PYTHON" "$HA_DIR/bad.py" 10.50.0.1 "$HA_DIR/key") &&
    test "$sent" = 206 &&
    wait_until 10 all_dropped 1 $((drops_before + sent)) &&
    grep "^packets" "$HA_DIR/status1" >"$HA_DIR/packets" && cat "$HA_DIR/packets" &&
    grep -q " mac [1-9]" "$HA_DIR/packets" &&
    grep -q " window [1-9]" "$HA_DIR/packets" &&
    grep -q " unknown-node [1-9]" "$HA_DIR/packets" &&
    grep -q " self [1-9]" "$HA_DIR/packets" &&
    grep -q " short [1-9]" "$HA_DIR/packets" &&
    grep -q " long [1-9]" "$HA_DIR/packets" &&
    test "$(grep "^node" "$HA_DIR/status1" | cut -d" " -f1-4)" = "node n1 state standby" &&
    test "$(ha_state 2)" = active &&
    grep -q "^peer n2 .* state active .* alive yes" "$HA_DIR/status1"
'

test_expect_success 'SIGTERM on the active node stops its resources and the standby takes over' '
    stop_daemon ha2 &&
    test "$(ip -n $(ha_ns 2) -o -4 addr show dev eth0 | grep -c " $HA_VIP/")" = 0 &&
    ha_wait_state 1 active 20 &&
    test "$(ha_in client curl -s --max-time 2 http://$HA_VIP:8080/)" = n1
'

test_done
