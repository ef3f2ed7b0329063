#!/bin/bash
# demo.sh - the main job: a buoy volume in a local directory store, mounted,
# ext4 made on it, a few hundred files written, unmounted (everything
# uploaded), mounted again with a cold cache, every checksum verified, and
# what it cost in requests.
#
#   scripts/demo.sh [WORKDIR]     (make demo runs it; needs root for the loop
#                                  device and mount; default: a temp dir)
#
# Environment: DEMO_FILES (default 400), DEMO_SIZE (volume size, default 2G).
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUOY=${BUOY:-$top/build/buoy}
N=${DEMO_FILES:-400}
SIZE=${DEMO_SIZE:-2G}

[ -x "$BUOY" ] || { echo "demo: $BUOY is not built; run make" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "demo: needs root (loop device, mount); run: sudo make demo" >&2; exit 1; }
[ -c /dev/fuse ] || { echo "demo: /dev/fuse is missing (modprobe fuse)" >&2; exit 1; }

work=${1:-$(mktemp -d /tmp/buoy-demo.XXXXXX)}
mkdir -p "$work"
store=$work/store mnt=$work/mnt data=$work/data cache=$work/cache
mkdir -p "$mnt" "$data"
cleanup() {
    if findmnt -n "$mnt" >/dev/null 2>&1; then "$BUOY" umount "$mnt" || true; fi
}
trap cleanup EXIT

step_t0=0
step() { step_t0=$(date +%s.%N); printf '\n== %s\n' "$*"; }
took() { awk -v a="$step_t0" -v b="$(date +%s.%N)" 'BEGIN { printf "   (%.1f s)\n", b - a }'; }

echo "buoy demo in $work"
"$BUOY" version | head -1

step "create a $SIZE volume in the directory store $store"
"$BUOY" create "$store" --size "$SIZE" --force
took

step "mount it with an ext4 filesystem (made on first use) at $data"
"$BUOY" mount "$store" "$mnt" --cache-dir "$cache" --fs ext4 --fs-dir "$data" \
    --log-file "$work/buoy.log"
findmnt -n -o TARGET,SOURCE,FSTYPE "$mnt" "$data" || true
took

step "write $N files (1 byte to 512 KiB) in 10 directories"
for ((i = 0; i < N; i++)); do
    d=$data/dir$((i % 10))
    mkdir -p "$d"
    head -c $((1 + (RANDOM * 32768 + RANDOM) % (512 << 10))) /dev/urandom >"$d/file$i"
done
(cd "$data" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$work/sums"
sync -f "$data"
du -sh "$data" | sed 's/^/   /'
took

step "statistics while mounted"
"$BUOY" stats "$mnt" | sed 's/^/   /'

step "unmount: the filesystem, the loop device, then upload everything"
"$BUOY" umount "$mnt"
"$BUOY" info "$store" | sed 's/^/   /'
took

step "mount again with an empty cache: everything comes from the store"
rm -rf "$cache"
"$BUOY" mount "$store" "$mnt" --cache-dir "$cache" --fs ext4 --fs-dir "$data" \
    --log-file "$work/buoy.log"
took

step "verify every file's SHA-256"
if (cd "$data" && sha256sum --quiet -c "$work/sums"); then
    echo "   all $N files are intact"
else
    echo "demo: checksums differ" >&2
    exit 1
fi
took

step "what the reads cost"
"$BUOY" stats "$mnt" | sed 's/^/   /'
"$BUOY" stats --json "$mnt" >"$work/stats.json"
"$BUOY" umount "$mnt"
echo
echo "demo: OK.  Store, log and stats are in $work (remove it with rm -rf $work)."
