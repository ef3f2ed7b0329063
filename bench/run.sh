#!/bin/bash
# run.sh - buoy against s3backer, side by side, under S3-like latency.
#
#   bench/run.sh                 the full run (about 25 minutes on 2 cores)
#   BENCH_QUICK=1 bench/run.sh   smaller sizes and shorter runs (a few minutes)
#
# Environment knobs (defaults in brackets):
#   BENCH_DELAY_MS [20]   delay the proxy puts before each response's first byte
#   BENCH_BW [0]          per-connection bandwidth cap in bytes/s (0: none)
#   BENCH_SYSTEMS         which systems, of: buoy-remote buoy-local s3b-64k s3b-1m,
#                         and the encrypted ones buoy-crypt s3b-64k-crypt (bench/crypt.sh)
#   BENCH_REPORT [1]      0: leave bench/RESULTS.md alone (the caller reports)
#   BENCH_WORKLOADS       which workloads, of: seqwrite seqread randwrite randread untar
#   BENCH_OUT [bench/out] raw results (fio JSON, logs, results.tsv)
#   BENCH_REPS            how many times every system runs every workload
#                         (full mode 2, quick 1); the report takes the median
#
# What it does, for each system in turn: a fresh moto server on loopback
# (python3 -m moto.server, data in memory), bench/delayproxy in front of it,
# the system's FUSE daemon talking to the proxy, then the workloads:
#   seqwrite   fio: 1 GiB sequential 1 MiB writes, QD8, direct, ending in fsync;
#              then unmount (uploads anything left, counted with it)
#   seqread    cold remount (buoy: cache dir emptied; s3backer: restarted),
#              fio: the same 1 GiB read sequentially, 1 MiB, QD8, direct
#   randwrite  fio: 4 KiB random writes, QD16, fsync every 64 writes, over the
#              first 256 MiB (already written: overwrites), time-based
#   randread   cold remount, fio: 4 KiB random reads, QD16, same span, time-based
#   untar      cold remount, loop device (direct I/O) on the disk file, mkfs.ext4,
#              mount, sync, wait for the daemon to upload it all; timed: tar x
#              of 20,000 small files, then sync; then unmount everything
# Every timed write is measured twice: what the application waited for (fio,
# or tar + sync), and "durable": that plus the wait until the daemon's stats
# say nothing is left to upload.  s3backer's fsync returns with its dirty
# blocks still in memory, so only the durable time compares like with like;
# buoy --durability remote's fsync already waits.  The unmount after a
# write workload is timed separately (umount_s).
# Every request is counted by the proxy (bench/delayproxy.c), so both systems
# are measured the same way.  Before the systems, a ceiling: bench/ceiling
# PUTs and GETs 8 MiB objects through the proxy at several parallelisms.
# Results go to $BENCH_OUT/results.tsv; bench/report.py turns them into
# bench/RESULTS.md and bench/results.png.
#
# Everything started here (servers, daemons, mounts, loop devices) is undone
# on exit, also on failure or ^C.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
BUOY=$top/build/buoy
PROXY=$top/build/bench/delayproxy
CEILING=$top/build/bench/ceiling
PYTHON=${PYTHON:-python3}
for f in "$BUOY" "$PROXY" "$CEILING"; do
    [ -x "$f" ] || { echo "run.sh: $f missing; run make first" >&2; exit 1; }
done
for cmd in fio s3backer mkfs.ext4 losetup fusermount3 tar curl "$PYTHON"; do
    command -v "$cmd" >/dev/null || { echo "run.sh: $cmd not found; run scripts/deps.sh --bench" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "run.sh: needs root (FUSE, loop devices, mount)" >&2; exit 1; }
# Our mounts live in a mount namespace of our own: a namespace that another
# process makes while a FUSE mount of ours exists (ip netns exec does) would
# hold a copy of it, and then unmounting ours does not end the FUSE
# connection, so the daemon never exits.
if [ -z "${BENCH_IN_NS:-}" ] && command -v unshare >/dev/null; then
    export BENCH_IN_NS=1
    exec unshare --mount --propagation private "$0" "$@"
fi

QUICK=${BENCH_QUICK:-}
DELAY=${BENCH_DELAY_MS:-20}
BW=${BENCH_BW:-0}
SYSTEMS=${BENCH_SYSTEMS:-buoy-remote buoy-local s3b-64k s3b-1m}
WORKLOADS=${BENCH_WORKLOADS:-seqwrite seqread randwrite randread untar}
VOL_SIZE=16G
if [ -n "$QUICK" ]; then
    SEQ_MB=256 SPAN_MB=64 RUNTIME=10 NFILES=4000 CEIL_COUNT=24 CEIL_SMALL=500 MODE=quick REPS=1
else
    SEQ_MB=1024 SPAN_MB=256 RUNTIME=40 NFILES=20000 CEIL_COUNT=64 CEIL_SMALL=2000 MODE=full REPS=2
fi
REPS=${BENCH_REPS:-$REPS}
OUT=${BENCH_OUT:-$top/bench/out}
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.log "$OUT"/results.tsv "$OUT"/ceiling*.txt
work=$(mktemp -d /tmp/buoy-bench.XXXXXX)

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy='*' NO_PROXY='*' LC_ALL=C

log() { echo "bench: $(date +%T) $*" >&2; }

# --- cleanup ---------------------------------------------------------------
pids=()       # processes we started
fsmounts=()   # ext4 mounts
loops=()      # loop devices
fusemounts=() # FUSE mount points

cleanup() {
    local m l p
    set +e
    for m in "${fsmounts[@]}"; do mountpoint -q "$m" && umount -l "$m"; done
    for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null; done
    for m in "${fusemounts[@]}"; do
        mountpoint -q "$m" && fusermount3 -u -z "$m" 2>/dev/null
    done
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    sleep 0.5
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- servers ---------------------------------------------------------------
free_port() {
    "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

moto_pid= proxy_pid= PORT= SPORT=
start_servers() { # NAME
    local mport
    mport=$(free_port)
    "$PYTHON" -m moto.server -H 127.0.0.1 -p "$mport" >"$OUT/moto-$1.log" 2>&1 &
    moto_pid=$!
    pids+=("$moto_pid")
    for _ in $(seq 100); do
        curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$mport/" && break
        sleep 0.2
    done
    curl -sf -o /dev/null -X PUT "http://127.0.0.1:$mport/bench" || {
        log "moto did not start; see $OUT/moto-$1.log"
        return 1
    }
    rm -f "$work/ports"
    "$PROXY" --upstream "127.0.0.1:$mport" --delay-ms "$DELAY" --bw "$BW" \
        --port-file "$work/ports" 2>"$OUT/proxy-$1.log" &
    proxy_pid=$!
    pids+=("$proxy_pid")
    for _ in $(seq 50); do [ -s "$work/ports" ] && break; sleep 0.1; done
    read -r PORT SPORT <"$work/ports"
    EP=http://127.0.0.1:$PORT
}
stop_servers() {
    kill -TERM "$proxy_pid" "$moto_pid" 2>/dev/null || true
    wait "$proxy_pid" "$moto_pid" 2>/dev/null || true
}

# snap FILE: the proxy's counters, "name value" lines; the peak of requests
# in flight restarts from here.
snap() {
    curl -sf --max-time 5 "http://127.0.0.1:$SPORT/reset-peak" >"$1"
}

# --- the systems under test -----------------------------------------------
# Each defines: sys_create, sys_mount (sets DISK and DPID), sys_umount,
# sys_cold (drops local caches before the next mount).
mp=$work/mnt fsdir=$work/fs
mkdir -p "$mp" "$fsdir"

# The encrypted systems share one passphrase file (buoy: Argon2id at its
# defaults, XChaCha20-Poly1305; s3backer: --encrypt, its default cipher).
printf 'bench passphrase\n' >"$work/pass"
chmod 600 "$work/pass"
buoy_common() {
    echo --endpoint "$EP" --cache-dir "$work/cache"
    if [ "$CRYPT" = 1 ]; then echo --passphrase-file "$work/pass"; fi
}
buoy_create() {
    local -a c=()
    if [ "$CRYPT" = 1 ]; then c=(--passphrase-file "$work/pass"); fi
    "$BUOY" create s3://bench/vol --size "$VOL_SIZE" --endpoint "$EP" "${c[@]}" \
        >"$OUT/$sys-create.log" 2>&1
}
buoy_mount() {
    # shellcheck disable=SC2046
    "$BUOY" mount s3://bench/vol "$mp" $(buoy_common) --durability "$DUR" \
        --log-file "$OUT/$sys-daemon.log"
    fusemounts+=("$mp")
    DISK=$mp/disk
    DPID=$(sed -n 's/^pid //p' "$mp/stats")
    pids+=("$DPID")
}
buoy_umount() {
    "$BUOY" umount "$mp" >>"$OUT/$sys-umount.log" 2>&1
    wait_exit
}
# alive PID: the process exists and is not a zombie (a daemon that forked
# away is reaped by PID 1, which may take its time).
alive() {
    local st
    read -r st 2>/dev/null <"/proc/$1/stat" || return 1
    st=${st##*) }
    [ "${st%% *}" != Z ]
}
# wait_exit: wait (up to 60 s) for the daemon to exit after its unmount.
wait_exit() {
    local i
    for ((i = 0; i < 3000; i++)); do
        alive "$DPID" || return 0
        sleep 0.02
    done
    log "$sys: daemon $DPID still running 60 s after its unmount; killing it"
    kill -KILL "$DPID"
}
buoy_cold() {
    rm -rf "$work/cache"
}

s3b_create() { :; }
s3b_mount() {
    local -a c=()
    if [ "$CRYPT" = 1 ]; then c=(--encrypt --passwordFile="$work/pass"); fi
    s3backer -f --baseURL="$EP/" --accessId=bench --accessKey=bench \
        --size="$VOL_SIZE" --blockSize="$BS" --listBlocks "${c[@]}" bench "$mp" \
        >>"$OUT/$sys-daemon.log" 2>&1 &
    DPID=$!
    pids+=("$DPID")
    DISK=$mp/file
    fusemounts+=("$mp")
    for _ in $(seq 600); do
        [ -e "$DISK" ] && return 0
        kill -0 "$DPID" 2>/dev/null || break
        sleep 0.1
    done
    log "s3backer did not mount; see $OUT/$sys-daemon.log"
    return 1
}
s3b_umount() {
    fusermount3 -u "$mp"
    # s3backer writes its dirty blocks and clears its mounted flag on the way out.
    wait_exit
}
s3b_cold() { :; }

# rss_kb: the daemon's peak resident set (VmHWM) in KiB.
rss_kb() {
    sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$DPID/status" 2>/dev/null || echo 0
}

# --- measuring ---------------------------------------------------------------
printf '%s\n' "system	workload	seconds	durable_s	umount_s	user_bytes	MBps	durable_MBps	iops	durable_iops	p50_us	p99_us	put	get	head	list	delete	post	bytes_up	bytes_down	rss_kb	mean_inflight	peak_inflight	rep" >"$OUT/results.tsv"

# record WORKLOAD: one line of results.tsv from these globals:
#   SECS     the timed part (fio, or tar + sync): what the application waited
#   DURABLE  SECS plus the wait until the daemon reports nothing left to upload
#            (s3backer's fsync does not wait for its uploads; buoy
#            --durability local's waits for the journal only)
#   UMOUNT   how long the unmount after it took (not in DURABLE)
#   UB IOS IOPS P50 P99 RSS   user bytes, operations, fio's IOPS and latencies, VmHWM
# and the proxy snapshots $work/a (start), $work/m (end of the timed part:
# requests in flight, mean and peak) and $work/b (end: request counts).
record() {
    awk -v rep="$REP" -v sys="$sys" -v w="$1" -v secs="$SECS" -v dur="$DURABLE" -v um="$UMOUNT" -v ub="$UB" -v ios="$IOS" \
        -v iops="$IOPS" -v p50="$P50" -v p99="$P99" -v rss="$RSS" '
        FNR == 1 { f++ }
        f == 1 { before[$1] = $2; next }
        f == 2 { mid[$1] = $2; next }
        { d[$1] = $2 - before[$1] }
        END {
            inflight = secs > 0 ? (mid["busy_us"] - before["busy_us"]) / 1e6 / secs : 0
            # %.0f, not %d: awk may print integers past 2^31 - 1 as 2147483647
            printf "%s\t%s\t%.3f\t%.3f\t%.3f\t%.0f\t%.2f\t%.2f\t%.1f\t%.1f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.2f\t%.0f\t%d\n",
                sys, w, secs, dur, um, ub, ub / secs / 1e6, ub / dur / 1e6, iops, ios / dur,
                p50, p99, d["put"], d["get"], d["head"], d["list"], d["delete"], d["post"],
                d["bytes_up"], d["bytes_down"], rss, inflight, mid["inflight_peak"], rep
        }' "$work/a" "$work/m" "$work/b" >>"$OUT/results.tsv"
    tail -n 1 "$OUT/results.tsv" | sed 's/^/bench:   /' >&2
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# fio_stats FILE DIR: "io_bytes ios iops p50_us p99_us" of direction DIR (read|write).
fio_stats() {
    "$PYTHON" - "$1" "$2" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0][sys.argv[2]]
p = j.get("clat_ns", {}).get("percentile", {})
print(j["io_bytes"], j["total_ios"], "%.1f" % j["iops"], "%.0f" % (p.get("50.000000", 0) / 1000),
      "%.0f" % (p.get("99.000000", 0) / 1000))
EOF
}

FIO=(fio --output-format=json --direct=1 --ioengine=libaio --group_reporting
     --randrepeat=0 --norandommap)

# run_fio NAME DIR UNMOUNT FIO-ARGS...: one fio workload, recorded; with
# UNMOUNT=1 (the write workloads) the wait until everything is uploaded is
# the durable time, and the unmount after it is timed too.
run_fio() {
    local name=$1 dir=$2 unmount=$3 t0 t1 t2 t3
    shift 3
    snap "$work/a"
    t0=$(now)
    "${FIO[@]}" --name="$name" --filename="$DISK" --output="$OUT/$sys-r$REP-$name.json" "$@"
    t1=$(now)
    snap "$work/m"
    RSS=$(rss_kb)
    if [ "$unmount" = 1 ]; then settle; fi
    t2=$(now)
    if [ "$unmount" = 1 ]; then "${sys_pfx}_umount"; fi
    t3=$(now)
    snap "$work/b"
    read -r UB IOS IOPS P50 P99 < <(fio_stats "$OUT/$sys-r$REP-$name.json" "$dir")
    SECS=$(elapsed "$t0" "$t1") DURABLE=$(elapsed "$t0" "$t2") UMOUNT=$(elapsed "$t2" "$t3")
    if [ "$unmount" != 1 ]; then DURABLE=$SECS; fi
    record "$name"
}

wl_seqwrite() {
    run_fio seqwrite write 1 --rw=write --bs=1M --iodepth=8 --size=${SEQ_MB}M --end_fsync=1
}
wl_seqread() {
    run_fio seqread read 0 --rw=read --bs=1M --iodepth=8 --size=${SEQ_MB}M
}
wl_randwrite() {
    run_fio randwrite write 1 --rw=randwrite --bs=4k --iodepth=16 --size=${SPAN_MB}M \
        --fsync=64 --time_based --runtime="$RUNTIME"
}
wl_randread() {
    run_fio randread read 0 --rw=randread --bs=4k --iodepth=16 --size=${SPAN_MB}M \
        --time_based --runtime="$RUNTIME"
}

# settle: wait (up to 5 minutes, polling every 20 ms) until the daemon's
# stats file says nothing is left to upload: buoy's pending_bytes (written,
# not yet in the store), s3backer's block_cache_dirty_ratio.
settle() {
    local i
    for ((i = 0; i < 15000; i++)); do
        case $sys_pfx in
        buoy) grep -qx 'pending_bytes 0' "$mp/stats" && return 0 ;;
        s3b) grep -Eq '^block_cache_dirty_ratio +0\.0000$' "$mp/stats" && return 0 ;;
        esac
        sleep 0.02
    done
    log "$sys: still uploading after 5 minutes"
}

# The tarball: NFILES files of 512 B .. 8 KiB in 200 directories, made once.
make_tarball() {
    TARBALL=$OUT/files-$NFILES.tar
    TAR_BYTES_FILE=$TARBALL.bytes
    [ -s "$TARBALL" ] && [ -s "$TAR_BYTES_FILE" ] && return 0
    log "making $TARBALL"
    "$PYTHON" - "$TARBALL" "$NFILES" <<'EOF'
import io, random, sys, tarfile
path, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
total = 0
with tarfile.open(path + ".tmp", "w", format=tarfile.GNU_FORMAT) as t:
    for i in range(n):
        size = rng.randint(512, 8192)
        data = rng.randbytes(size)
        info = tarfile.TarInfo("tree/d%03d/f%05d" % (i % 200, i))
        info.size = size
        info.mtime = 1700000000
        t.addfile(info, io.BytesIO(data))
        total += size
import os
os.rename(path + ".tmp", path)
open(path + ".bytes", "w").write("%d\n" % total)
EOF
}

wl_untar() {
    local dev t0 t1 t2 t3
    make_tarball
    dev=$(losetup --direct-io=on --find --show "$DISK")
    loops+=("$dev")
    mkfs.ext4 -q -F -E nodiscard,lazy_itable_init=1,lazy_journal_init=1 "$dev"
    # noinit_itable: no background zeroing of inode tables during the run
    mount -t ext4 -o noinit_itable "$dev" "$fsdir"
    fsmounts+=("$fsdir")
    sync -f "$fsdir"
    settle
    sleep 1
    snap "$work/a"
    t0=$(now)
    tar -xf "$TARBALL" -C "$fsdir"
    sync -f "$fsdir"
    t1=$(now)
    snap "$work/m"
    RSS=$(rss_kb)
    settle
    t2=$(now)
    umount "$fsdir"
    losetup -d "$dev"
    "${sys_pfx}_umount"
    t3=$(now)
    snap "$work/b"
    UB=$(cat "$TAR_BYTES_FILE") IOS=$NFILES P50=0 P99=0
    SECS=$(elapsed "$t0" "$t1") DURABLE=$(elapsed "$t0" "$t2") UMOUNT=$(elapsed "$t2" "$t3")
    IOPS=$(awk -v n="$NFILES" -v s="$SECS" 'BEGIN { printf "%.1f", n / s }')
    record untar
}

# --- the run ------------------------------------------------------------------
{
    echo "mode $MODE"
    echo "date $(date -u +%FT%TZ)"
    echo "commit $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$top" diff --quiet 2>/dev/null || echo -dirty)"
    echo "delay_ms $DELAY"
    echo "bw $BW"
    echo "seq_mb $SEQ_MB"
    echo "span_mb $SPAN_MB"
    echo "runtime_s $RUNTIME"
    echo "nfiles $NFILES"
    echo "reps $REPS"
    echo "vol_size $VOL_SIZE"
    echo "cpu $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    echo "cores $(nproc)"
    echo "mem $(free -g | awk '/^Mem:/ { print $2 " GiB" }')"
    echo "kernel $(uname -r)"
    echo "loadavg_start $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "fio $(fio --version)"
    echo "s3backer $(s3backer --version 2>&1 | head -n 1 | awk '{ print $3 }')"
    echo "moto $("$PYTHON" -c 'import moto; print(moto.__version__)')"
    echo "buoy $("$BUOY" version 2>/dev/null | head -n 1)"
} >"$OUT/env.txt"

log "mode $MODE: ${SEQ_MB} MiB sequential, ${SPAN_MB} MiB random span, ${RUNTIME} s random runs, $NFILES files; delay $DELAY ms"
start_servers ceiling
log "ceiling: ${CEIL_COUNT} x 8 MiB PUT then GET through the proxy"
"$CEILING" --endpoint "$EP/bench" --size 8M --count "$CEIL_COUNT" --parallel 4,8,16,32,64 \
    --creds bench:bench >"$OUT/ceiling.txt"
sed 's/^/bench:   /' "$OUT/ceiling.txt" >&2
log "ceiling: small requests, ${CEIL_SMALL} x 64 KiB PUT then GET"
"$CEILING" --endpoint "$EP/bench" --size 64K --count "$CEIL_SMALL" --parallel 20,64 \
    --creds bench:bench >"$OUT/ceiling-64k.txt"
sed 's/^/bench:   /' "$OUT/ceiling-64k.txt" >&2
stop_servers

for REP in $(seq 1 "$REPS"); do
    for sys in $SYSTEMS; do
        CRYPT=0
        case $sys in
        buoy-remote) sys_pfx=buoy DUR=remote ;;
        buoy-local) sys_pfx=buoy DUR=local ;;
        buoy-crypt) sys_pfx=buoy DUR=remote CRYPT=1 ;;
        s3b-64k) sys_pfx=s3b BS=64K ;;
        s3b-1m) sys_pfx=s3b BS=1M ;;
        s3b-64k-crypt) sys_pfx=s3b BS=64K CRYPT=1 ;;
        *) echo "run.sh: unknown system $sys" >&2; exit 2 ;;
        esac
        log "=== $sys (run $REP of $REPS)"
        start_servers "$sys"
        rm -rf "$work/cache"
        "${sys_pfx}_create"
        for w in $WORKLOADS; do
            log "$sys: $w"
            # Every workload starts on a fresh mount with a cold cache; the write
            # workloads end with an unmount, which is counted with them.
            "${sys_pfx}_cold"
            "${sys_pfx}_mount"
            "wl_$w"
            case $w in seqwrite | randwrite | untar) ;; *) "${sys_pfx}_umount" ;; esac
        done
        stop_servers
    done
done
echo "loadavg_end $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/env.txt"
log "results in $OUT/results.tsv"
if [ "${BENCH_REPORT:-1}" != 0 ]; then "$PYTHON" "$top/bench/report.py" "$OUT" "$top/bench"; fi
