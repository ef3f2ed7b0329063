#!/bin/bash
# t3160-ha-volume.sh - the volume resource: two nodes in network namespaces
# share a buoy volume in moto (the store namespace).  The active node mounts
# it (buoy mount --takeover); data written through its disk and flushed is
# there on the other node after the first one dies (kill -9, its network
# gone): the survivor takes the failover lease, then the volume's writer
# lease once the dead node's mount has stopped renewing it, and mounts it.
# The dead node's mount, cut off from the store, stops with I/O errors
# instead of writing on.  The volume is encrypted: the resource passes its
# passphrase_file= on to buoy mount.
. tests/lib/test-lib.sh
. tests/lib/ha-lib.sh
requires_root
[ -c /dev/fuse ] || skip_all "requires /dev/fuse"

requires nsenter pgrep
ha_net_setup 2
ha_start_store

# ip netns exec gives each daemon a mount namespace of its own: look at node
# K's FUSE mount from inside the namespace of its buoy mount process.
mount_pid() { pgrep -f -- "buoy mount s3://buoy-ha/vol1 $dir/mnt$1 " | head -1; }
in_mnt() { # K CMD...
    local k=$1 pid
    shift
    pid=$(mount_pid "$k") && [ -n "$pid" ] || { echo "no buoy mount for node $k" >&2; return 1; }
    nsenter -t "$pid" -m -- "$@"
}

dir=$(mk_tmpdir)
printf 'ha secret\n' >"$dir/pass"
chmod 600 "$dir/pass"
for k in 1 2; do
    mkdir -p "$dir/mnt$k"
    ha_conf "$k" "$HA_DIR/n$k.conf" <<EOF
resource disk volume s3://buoy-ha/vol1 $dir/mnt$k endpoint=$HA_STORE_EP cache_dir=$dir/cache$k lease_ms=1500 passphrase_file=$dir/pass
EOF
done

test_expect_success 'an encrypted volume in the shared store' '
    ha_in 1 "$BUOY" create s3://buoy-ha/vol1 --endpoint "$HA_STORE_EP" --size 64M \
        --passphrase-file "$dir/pass" --kdf-memory 8M --kdf-passes 1 >/dev/null
'

test_expect_success 'the active node mounts it; flushed writes go to the store' '
    ha_start 1 && ha_wait_state 1 active 30 &&
    ha_start 2 && ha_wait_state 2 standby 30 &&
    test "$(in_mnt 1 findmnt -n -o FSTYPE "$dir/mnt1")" = fuse.buoy &&
    test -z "$(mount_pid 2)" &&
    head -c 4M /dev/urandom >"$dir/data" &&
    in_mnt 1 dd if="$dir/data" of="$dir/mnt1/disk" bs=1M conv=notrunc,fsync status=none
'

test_expect_success 'node 1 dies: node 2 takes the volume over with the data' '
    t0=$(date +%s%N) &&
    ha_kill 1 &&
    ha_wait_state 2 active 40 &&
    t1=$(date +%s%N) &&
    say "volume failover: node 2 active with the volume mounted $(((t1 - t0) / 1000000)) ms after the kill" &&
    test "$(in_mnt 2 findmnt -n -o FSTYPE "$dir/mnt2")" = fuse.buoy &&
    in_mnt 2 cmp -n $((4 << 20)) "$dir/data" "$dir/mnt2/disk" &&
    grep -q "resource disk (volume) started" "$TEST_OUT/daemons/ha2.log"
'

test_expect_success 'the dead node'"'"'s mount, cut off from the store, refuses writes' '
    for i in $(seq 60); do
        in_mnt 1 dd if=/dev/zero of="$dir/mnt1/disk" bs=4k count=1 conv=notrunc,fsync \
            status=none 2>/dev/null || break
        sleep 0.5
    done &&
    test_must_fail in_mnt 1 dd if=/dev/zero of="$dir/mnt1/disk" bs=4k count=1 conv=notrunc,fsync \
        status=none &&
    in_mnt 2 cmp -n $((4 << 20)) "$dir/data" "$dir/mnt2/disk"
'

test_expect_success 'cleanup: node 2 stops its resources (its buoy mount exits)' '
    stop_daemon ha2 &&
    for i in $(seq 100); do test -z "$(mount_pid 2)" && break; sleep 0.1; done &&
    test -z "$(mount_pid 2)"
'

test_done
