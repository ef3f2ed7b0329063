#!/bin/bash
# t3150-ha-fsmount.sh - one node (its peer never answers) on loopback with a
# directory lease store: after initdead it claims and mounts an ext4 image
# (fsmount, through a loop device) and runs an exec resource on it; a stop
# that fails (the mount is busy) puts the node in the failed state, where it
# keeps its lease and ignores takeover (every resource is still tried, in
# reverse order); once the operator has unmounted,
# buoy ha clear and online bring it back.  Resources start in order and stop
# in reverse (the exec resource's journal shows it).
. tests/lib/test-lib.sh
requires_root
requires mkfs.ext4 mount umount
dir=$(mk_tmpdir)
mnt=$dir/mnt
mkdir -p "$mnt" "$dir/store"
truncate -s 16M "$dir/img" && mkfs.ext4 -q -F "$dir/img" || skip_all "mkfs.ext4 failed"
mount -o loop "$dir/img" "$mnt" 2>/dev/null || skip_all "no loop devices here"
umount "$mnt"
printf 'secret-secret-secret\n' >"$dir/key" && chmod 600 "$dir/key"
p1=$(free_port) && p2=$(free_port)

cat >"$dir/order.sh" <<'EOF'
#!/bin/sh
# order.sh NAME JOURNAL start|stop|status
case $3 in
start) echo "start $1" >>"$2"; : >"$2.$1" ;;
stop) echo "stop $1" >>"$2"; rm -f "$2.$1" ;;
status) [ -e "$2.$1" ] ;;
esac
EOF
chmod +x "$dir/order.sh"

cat >"$dir/ha.conf" <<EOF
node solo
peer gone 127.0.0.1:$p2
port $p1
bind 127.0.0.1
keepalive 100ms
deadtime 1s
initdead 1s
authkey $dir/key
lease_store $dir/store
lease_time 800ms
control $dir/ha.sock
resource a exec $dir/order.sh a $dir/journal
resource fs fsmount $dir/img $mnt type=ext4 options=loop
resource b exec $dir/order.sh b $dir/journal
EOF

state() {
    "$BUOY" ha status --socket "$dir/ha.sock" >"$dir/status" 2>/dev/null || { echo down; return; }
    sed -n 's/^node solo state \([a-z]*\) .*/\1/p' "$dir/status"
}
wait_state() {
    for i in $(seq 1 150); do
        [ "$(state)" = "$1" ] && return 0
        sleep 0.1
    done
    cat "$dir/status"
    return 1
}
mounted() { grep -q " $mnt " /proc/self/mounts; }
reloads() { grep -c "configuration reloaded" "$TEST_OUT/daemons/ha.log"; }
reloads_at_least() { test "$(reloads)" -ge "$1"; }

test_expect_success 'alone after initdead: it claims, mounts, starts in order' '
    start_daemon ha "$BUOY" ha run -c "$dir/ha.conf" &&
    wait_state active &&
    mounted &&
    printf "start a\nstart b\n" >"$dir/want" &&
    cmp "$dir/want" "$dir/journal" &&
    grep -q "^peer gone .* state unknown heard_ms_ago never alive no" "$dir/status"
'

test_expect_success 'standby with the mount busy: the stop fails, the node is failed and keeps its lease' '
    (cd "$mnt" && : >"$dir/busy-in-mnt" && exec sleep 60) </dev/null >/dev/null 2>&1 &
    busy=$! &&
    test_when_finished "kill $busy 2>/dev/null; true" &&
    wait_for_file "$dir/busy-in-mnt" 10 && # the mount is busy once it is in there
    "$BUOY" ha standby --socket "$dir/ha.sock" >/dev/null &&
    wait_state failed &&
    mounted &&
    grep -q "^lease ha/lease holder solo epoch 1 state held ours yes" "$dir/status" &&
    grep -q "^resource fs kind fsmount state failed" "$dir/status" &&
    printf "start a\nstart b\nstop b\nstop a\n" >"$dir/want" && cmp "$dir/want" "$dir/journal" &&
    test_must_fail "$BUOY" ha takeover --socket "$dir/ha.sock" 2>"$dir/err" &&
    grep -q "this node is failed" "$dir/err" &&
    sleep 1.5 && test "$(state)" = failed &&
    grep -q "ours yes" "$dir/status" &&
    kill $busy && { wait $busy 2>/dev/null; true; }
'

test_expect_success 'the operator unmounts; clear, then online: active again' '
    umount "$mnt" &&
    "$BUOY" ha clear --socket "$dir/ha.sock" >/dev/null &&
    wait_state standby &&
    "$BUOY" ha online --socket "$dir/ha.sock" >/dev/null &&
    wait_state active &&
    mounted
'

test_expect_success 'reload: timings change at once; a changed resource list or a broken file is refused' '
    sed -i "s/^keepalive 100ms/keepalive 150ms/" "$dir/ha.conf" &&
    "$BUOY" ha reload --socket "$dir/ha.sock" >"$dir/out" &&
    grep -q "^ok: reloaded" "$dir/out" &&
    grep -q "configuration reloaded" "$TEST_OUT/daemons/ha.log" &&
    cp "$dir/ha.conf" "$dir/ha.conf.good" &&
    echo "resource c exec $dir/order.sh c $dir/journal" >>"$dir/ha.conf" &&
    test_expect_code 1 "$BUOY" ha reload --socket "$dir/ha.sock" 2>"$dir/err" &&
    grep -q "reload: the resources changed; restart the daemon" "$dir/err" &&
    cp "$dir/ha.conf.good" "$dir/ha.conf" && echo "deadtime 100ms" >>"$dir/ha.conf" &&
    test_expect_code 1 "$BUOY" ha reload --socket "$dir/ha.sock" 2>"$dir/err" &&
    grep -q "ha.conf:[0-9]*: deadtime is set twice" "$dir/err" &&
    cp "$dir/ha.conf.good" "$dir/ha.conf" &&
    kill -HUP "$(daemon_pid ha)" &&
    wait_until 10 reloads_at_least 2 && # the daemon reads the signal a little later
    test "$(reloads)" = 2 &&
    test "$(state)" = active && mounted
'

test_expect_success 'SIGTERM: stops in reverse order and unmounts' '
    stop_daemon ha &&
    ! mounted &&
    tail -n 2 "$dir/journal" >"$dir/last" &&
    printf "stop b\nstop a\n" >"$dir/want" && cmp "$dir/want" "$dir/last"
'

test_done
