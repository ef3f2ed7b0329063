#!/bin/bash
# profile.sh - look inside buoy while a bench workload runs, to find what
# limits it.  Same setup as bench/run.sh (moto on loopback, bench/delayproxy
# in front with BENCH_DELAY_MS, default 20), one buoy volume, --durability
# remote unless BUOY_DURABILITY says otherwise; BUOY_MOUNT_OPTS adds mount
# options (e.g. --unsigned-payload); BENCH_PROFILE_TAG names the output dir.
#
#   bench/profile.sh seqwrite   fio 1 GiB sequential write + fsync; meanwhile
#                               CPU time of every process (daemon, moto, fio,
#                               proxy) and perf record -g of the daemon
#   bench/profile.sh rss        fio 1 GiB sequential write + fsync, three times:
#                               glibc malloc defaults, MALLOC_MMAP_THRESHOLD_=
#                               128 KiB (no dynamic threshold), and that with
#                               MALLOC_ARENA_MAX=2; the daemon's VmHWM and
#                               smaps_rollup for each
#   bench/profile.sh randread   random 4 KiB writes over 256 MiB, cold remount,
#                               fio 4 KiB random reads QD16; meanwhile gdb
#                               stacks of every daemon thread (3 samples) and
#                               perf record -g of the daemon
#
# Output in bench/out/profile-WORKLOAD/: cpu.txt, perf.txt (perf report
# --no-children, top entries), stacks.txt (gdb), stack-summary.txt (where
# the threads are), fio.json, proxy counters before/after.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
what=${1:?usage: bench/profile.sh seqwrite|randread}
# Our mounts live in a mount namespace of our own: a namespace that another
# process makes while a FUSE mount of ours exists (ip netns exec does) would
# hold a copy of it, and then unmounting ours does not end the FUSE
# connection, so the daemon never exits.
if [ -z "${BENCH_IN_NS:-}" ] && command -v unshare >/dev/null; then
    export BENCH_IN_NS=1
    exec unshare --mount --propagation private "$0" "$@"
fi
BUOY=$top/build/buoy PROXY=$top/build/bench/delayproxy
out=$top/bench/out/profile-$what${BENCH_PROFILE_TAG:+-$BENCH_PROFILE_TAG}
rm -rf "$out"
mkdir -p "$out"
work=$(mktemp -d /tmp/buoy-profile.XXXXXX)
mp=$work/mnt
mkdir -p "$mp"
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_EC2_METADATA_DISABLED=true
export AWS_SHARED_CREDENTIALS_FILE=/dev/null no_proxy='*' NO_PROXY='*'
pids=()
cleanup() {
    set +e
    mountpoint -q "$mp" && fusermount3 -u -z "$mp"
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    sleep 0.3
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m moto.server -H 127.0.0.1 -p "$mport" >"$out/moto.log" 2>&1 &
moto=$!
pids+=("$moto")
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$mport/" && break; sleep 0.2; done
curl -sf -o /dev/null -X PUT "http://127.0.0.1:$mport/bench"
"$PROXY" --upstream "127.0.0.1:$mport" --delay-ms "${BENCH_DELAY_MS:-20}" --port-file "$work/ports" \
    2>"$out/proxy.log" &
proxy=$!
pids+=("$proxy")
for _ in $(seq 50); do [ -s "$work/ports" ] && break; sleep 0.1; done
read -r PORT SPORT <"$work/ports"
EP=http://127.0.0.1:$PORT
"$BUOY" create s3://bench/vol --size 16G --endpoint "$EP" >/dev/null

mount_buoy() {
    "$BUOY" mount s3://bench/vol "$mp" --endpoint "$EP" --cache-dir "$work/cache" \
        --durability "${BUOY_DURABILITY:-remote}" --log-file "$out/daemon.log" \
        ${BUOY_MOUNT_OPTS:-}
    DPID=$(sed -n 's/^pid //p' "$mp/stats")
    pids+=("$DPID")
}
umount_buoy() {
    "$BUOY" umount "$mp"
    while [ -e "/proc/$DPID" ] && ! grep -q ') Z ' "/proc/$DPID/stat"; do sleep 0.05; done
}
ticks() { # PID: utime+stime in clock ticks, all threads
    awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
FIO=(fio --output-format=json --direct=1 --ioengine=libaio --filename="$mp/disk"
     --randrepeat=0 --norandommap)

perf_daemon() { # SECONDS
    perf record -e cpu-clock -F 999 -g -p "$DPID" -o "$out/perf.data" -- sleep "$1" \
        >"$out/perf-record.log" 2>&1 || true
}
perf_report() {
    perf report -i "$out/perf.data" --no-children --stdio --percent-limit 1.5 \
        --sort symbol 2>/dev/null | grep -v '^$' | head -n 120 >"$out/perf.txt" || true
    perf report -i "$out/perf.data" --no-children --stdio --sort dso 2>/dev/null |
        grep '%' | head -n 15 >"$out/perf-dso.txt" || true
}

case $what in
seqwrite)
    mount_buoy
    curl -s "http://127.0.0.1:$SPORT/" >"$out/proxy-before.txt"
    declare -A t0
    t_start=$(date +%s.%N)
    "${FIO[@]}" --name=seqwrite --rw=write --bs=1M --iodepth=8 --size=1024M --end_fsync=1 \
        --output="$out/fio.json" &
    fio=$!
    sleep 0.3
    for p in "$DPID" "$moto" "$proxy" "$fio"; do t0[$p]=$(ticks "$p"); done
    perf_daemon 3 &
    perfp=$!
    # CPU of fio is read just before it ends: sample every 100 ms.
    declare -A last
    while kill -0 "$fio" 2>/dev/null; do
        for p in "$DPID" "$moto" "$proxy" "$fio"; do
            v=$(ticks "$p")
            [ "$v" != 0 ] && last[$p]=$v
        done
        sleep 0.1
    done
    wait "$fio"
    t_end=$(date +%s.%N)
    wait "$perfp" || true
    hz=$(getconf CLK_TCK)
    {
        echo "wall_s $(awk -v a="$t_start" -v b="$t_end" 'BEGIN { printf "%.2f", b - a }')"
        for n in daemon:$DPID moto:$moto proxy:$proxy fio:$fio; do
            p=${n#*:}
            awk -v n="${n%%:*}" -v a="${t0[$p]}" -v b="${last[$p]:-0}" -v hz="$hz" \
                'BEGIN { printf "cpu_s_%s %.2f\n", n, (b - a) / hz }'
        done
    } >"$out/cpu.txt"
    curl -s "http://127.0.0.1:$SPORT/" >"$out/proxy-after.txt"
    grep -E 'pending|uploaded|upload_in_flight' "$mp/stats" >"$out/stats-after.txt" || true
    umount_buoy
    perf_report
    ;;
randread)
    mount_buoy
    "${FIO[@]}" --name=fill --rw=write --bs=1M --iodepth=8 --size=256M --end_fsync=1 \
        --output="$out/fill.json"
    "${FIO[@]}" --name=randwrite --rw=randwrite --bs=4k --iodepth=16 --size=256M --fsync=64 \
        --time_based --runtime=20 --output="$out/randwrite.json"
    umount_buoy
    rm -rf "$work/cache"
    mount_buoy
    curl -s "http://127.0.0.1:$SPORT/" >"$out/proxy-before.txt"
    "${FIO[@]}" --name=randread --rw=randread --bs=4k --iodepth=16 --size=256M --time_based \
        --runtime=20 --output="$out/fio.json" &
    fio=$!
    sleep 3
    : >"$out/stacks.txt"
    for i in 1 2 3; do
        echo "=== sample $i" >>"$out/stacks.txt"
        gdb -p "$DPID" -batch -ex "thread apply all bt" >>"$out/stacks.txt" 2>/dev/null || true
        sleep 1
    done
    perf_daemon 5
    wait "$fio"
    curl -s "http://127.0.0.1:$SPORT/" >"$out/proxy-after.txt"
    grep -E 'cache_|fetched|readahead|requests_get' "$mp/stats" >"$out/stats-after.txt" || true
    # Where are the threads?  The innermost buoy frame of each thread.
    awk '
        /^=== sample/ { s = $3 }
        /^Thread / { if (t != "") c[t]++; t = ""; inner = 1; next }
        / in (vol_|fuse_|op_|store_|read_blocks|fetch_hdr|get_hdr|seal|reap|sealer_main|s3_|fe_)[a-z_]* / && inner {
            for (i = 1; i <= NF; i++) if ($i == "in") { t = $(i + 1); break }
            inner = 0
        }
        /pthread_mutex_lock|__lll_lock_wait/ && t == "" { lockwait = 1 }
        END { if (t != "") c[t]++; for (k in c) printf "%4d  %s\n", c[k], k }
    ' "$out/stacks.txt" | sort -rn >"$out/stack-summary.txt"
    grep -c '__lll_lock_wait\|pthread_mutex_lock' "$out/stacks.txt" >"$out/lock-waiters.txt" || true
    umount_buoy
    perf_report
    ;;
rss)
    : >"$out/rss.txt"
    for variant in default mmap128k mmap128k-arena2; do
        case $variant in
        default) envs=() ;;
        mmap128k) envs=(MALLOC_MMAP_THRESHOLD_=131072) ;;
        mmap128k-arena2) envs=(MALLOC_MMAP_THRESHOLD_=131072 MALLOC_ARENA_MAX=2) ;;
        esac
        env "${envs[@]}" "$BUOY" mount s3://bench/vol "$mp" --endpoint "$EP" \
            --cache-dir "$work/cache" --log-file "$out/daemon.log"
        DPID=$(sed -n 's/^pid //p' "$mp/stats")
        pids+=("$DPID")
        "${FIO[@]}" --name=seqwrite --rw=write --bs=1M --iodepth=8 --size=1024M --end_fsync=1 \
            --output="$out/fio-$variant.json"
        {
            echo "=== $variant: ${envs[*]}"
            grep -E '^(VmHWM|VmRSS|RssAnon|RssFile|Threads)' "/proc/$DPID/status"
            grep -E '^(Rss|Anonymous|Private_Dirty)' "/proc/$DPID/smaps_rollup"
            python3 -c "import json,sys; j=json.load(open(sys.argv[1]))['jobs'][0]['write']; print('MBps %.0f' % (j['bw_bytes']/1e6))" "$out/fio-$variant.json"
        } >>"$out/rss.txt"
        umount_buoy
    done
    cat "$out/rss.txt"
    ;;
*)
    echo "usage: bench/profile.sh seqwrite|rss|randread" >&2
    exit 2
    ;;
esac
echo "profile.sh: results in $out" >&2
