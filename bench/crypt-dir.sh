#!/bin/bash
# crypt-dir.sh - what encryption costs on a fast store: the directory store.
#
#   bench/crypt-dir.sh              256 MiB, three runs of each, medians
#   BENCH_MB=1024 BENCH_RUNS=5 bench/crypt-dir.sh
#   BUOY=/other/build/buoy bench/crypt-dir.sh   another build (before and after a change)
#   BENCH_PERF=1 bench/crypt-dir.sh also perf record -g of the encrypted
#                                   daemon during each, reports in
#                                   $BENCH_OUT/perf-{write,read,readahead}.txt
#
# For plain and encrypted volumes on a dir store under $BENCH_DIR (default
# a temporary directory on /tmp's disk, so the page cache serves the store):
# mount (release build, durability remote), dd 256 MiB of random data at
# 1 MiB, O_DIRECT, conv=fsync (that includes every upload); unmount; mount
# again with a fresh cache dir and --cache-size 0; dd it back, O_DIRECT, to
# /dev/null (read: a cold read, every block fetched from the store and, when
# encrypted, opened, one GET of 1 MiB at a time, as no block cache means no
# read-ahead); the same with the default block cache, empty (readahead:
# windows of up to 4 MiB fetched ahead, several GETs in flight).  Prints
# one line per workload: MB/s of each run and
# the median, plain and encrypted, and their ratio.  The daemon's CPU
# seconds (all threads) are shown beside each.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${BENCH_IN_NS:-}" ] && command -v unshare >/dev/null; then
    export BENCH_IN_NS=1
    exec unshare --mount --propagation private "$0" "$@"
fi
BUOY=${BUOY:-$top/build/buoy}
MB=${BENCH_MB:-256}
RUNS=${BENCH_RUNS:-3}
out=${BENCH_OUT:-$top/bench/out/crypt-dir}
mkdir -p "$out"
work=$(mktemp -d "${BENCH_DIR:-/tmp}/buoy-crypt-dir.XXXXXX")
mp=$work/mnt
mkdir -p "$mp"
DPID=
cleanup() {
    set +e
    mountpoint -q "$mp" && fusermount3 -u -z "$mp"
    [ -n "$DPID" ] && kill -TERM "$DPID" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

printf 'bench passphrase\n' >"$work/pass"
chmod 600 "$work/pass"
head -c "$((MB << 20))" /dev/urandom >"$work/data"

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
mount_vol() { # URL CACHEDIR [options]
    local url=$1 cache=$2
    shift 2
    "$BUOY" mount "$url" "$mp" --cache-dir "$cache" --log-file "$out/daemon.log" "$@"
    DPID=$(sed -n 's/^pid //p' "$mp/stats")
}
umount_vol() {
    "$BUOY" umount "$mp"
    while [ -e "/proc/$DPID" ] && ! grep -q ') Z ' "/proc/$DPID/stat"; do sleep 0.05; done
    DPID=
}
perf_on() { # NAME: perf record the daemon until perf_off
    [ -n "${BENCH_PERF:-}" ] || return 0
    perf record -e cpu-clock -F 999 -g -p "$DPID" -o "$out/perf-$1.data" \
        >"$out/perf-$1.log" 2>&1 &
    PERFP=$!
    sleep 0.2
}
perf_off() { # NAME
    [ -n "${BENCH_PERF:-}" ] || return 0
    kill -INT "$PERFP"
    wait "$PERFP" || true
    perf report -i "$out/perf-$1.data" --no-children --stdio --percent-limit 1 \
        --sort comm,symbol 2>/dev/null | grep -v '^$' | grep '%' | head -n 60 >"$out/perf-$1.txt"
    perf report -i "$out/perf-$1.data" --no-children --stdio --sort comm 2>/dev/null |
        grep '%' >"$out/perf-$1-threads.txt" || true
}
rate() { # SECONDS -> MB/s
    awk -v s="$1" -v mb="$MB" 'BEGIN { printf "%.0f", mb * 1.048576 / s }'
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

declare -A res cpu
for run in $(seq "$RUNS"); do
    for kind in plain crypt; do
        store=$work/store-$kind-$run
        c=()
        if [ "$kind" = crypt ]; then c=(--passphrase-file "$work/pass"); fi
        "$BUOY" create "$store" --size "$((MB * 2))M" "${c[@]}" >/dev/null
        mount_vol "$store" "$work/cache-$kind-$run" "${c[@]}"
        [ "$kind" = crypt ] && [ "$run" = 1 ] && perf_on write
        t0=$(ticks "$DPID")
        a=$(now)
        dd if="$work/data" of="$mp/disk" bs=1M oflag=direct conv=fsync,notrunc status=none
        b=$(now)
        t1=$(ticks "$DPID")
        [ "$kind" = crypt ] && [ "$run" = 1 ] && perf_off write
        res[write-$kind]+=" $(rate "$(elapsed "$a" "$b")")"
        cpu[write-$kind]+=" $(awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }')"
        umount_vol
        for wl in read readahead; do
            o=(--cache-size 0) # no block cache: no read-ahead, one GET per read
            [ "$wl" = readahead ] && o=() # the default cache, empty: read-ahead
            mount_vol "$store" "$work/cold-$kind-$run-$wl" "${o[@]}" "${c[@]}"
            [ "$kind" = crypt ] && [ "$run" = 1 ] && perf_on "$wl"
            t0=$(ticks "$DPID")
            a=$(now)
            dd if="$mp/disk" of=/dev/null bs=1M count="$MB" iflag=direct status=none
            b=$(now)
            t1=$(ticks "$DPID")
            [ "$kind" = crypt ] && [ "$run" = 1 ] && perf_off "$wl"
            res[$wl-$kind]+=" $(rate "$(elapsed "$a" "$b")")"
            cpu[$wl-$kind]+=" $(awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }')"
            umount_vol
            rm -rf "$work/cold-$kind-$run-$wl"
        done
        rm -rf "$store" "$work/cache-$kind-$run"
    done
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
{
    echo "commit $(git -C "$top" describe --always --dirty) $(date -u +%FT%TZ) cores $(nproc) ${MB} MiB runs $RUNS"
    for wl in write read readahead; do
        p=$(echo "${res[$wl-plain]}" | median)
        e=$(echo "${res[$wl-crypt]}" | median)
        printf '%-9s plain %5s MB/s (runs%s; daemon CPU s%s)  crypt %5s MB/s (runs%s; daemon CPU s%s)  crypt/plain %s\n' \
            "$wl" "$p" "${res[$wl-plain]}" "${cpu[$wl-plain]}" "$e" "${res[$wl-crypt]}" \
            "${cpu[$wl-crypt]}" "$(awk -v a="$e" -v b="$p" 'BEGIN { printf "%.2f", a / b }')"
    done
} | tee "$out/result.txt"
