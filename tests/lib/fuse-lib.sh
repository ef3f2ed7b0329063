# shellcheck shell=bash
# fuse-lib.sh - helpers for the tests of buoy mount (source after test-lib.sh).
#
#   buoy_mount NAME URL MP [OPTS...]   buoy mount as a daemon, log in
#                                      $TEST_OUT/daemons/NAME.log, cache in
#                                      $cache_root/NAME unless --cache-dir given
#   buoy_pid MP                        the pid serving MP (from MP/stats)
#   log_clean NAME                     no sanitizer report in NAME's log
#   not_mounted PATH                   nothing is mounted at PATH
#   no_loop_on FILE                    no loop device is backed by FILE
#   gone PID                           the process has exited (a zombie counts)
#   overwrite FILE SEED N              N random 16 KiB writes in its first 8 MiB, fsync'd
#   stored URL                         bytes of the volume's segment objects

requires_root
requires fusermount3 losetup
[ -c /dev/fuse ] || skip_all "requires /dev/fuse"

cache_root=$(mk_tmpdir cache)

# The temp root becomes a shared mount, so the FUSE and filesystem mounts a
# test makes under it have a shared parent: a mount namespace made meanwhile
# as a slave (ip netns exec, in an HA test running beside this one) then
# loses its copies of them when they are unmounted here, instead of keeping
# ext4, its loop device and the FUSE disk file busy until it ends.
# _tl_remove_tmp unmounts it.
if ! { mount --bind "$_tl_tmproot" "$_tl_tmproot" && mount --make-shared "$_tl_tmproot"; }; then
    echo "Bail out! cannot make $_tl_tmproot a shared mount"
    exit 1
fi

buoy_mount() {
    local name=$1 url=$2 mp=$3
    shift 3
    local cd=(--cache-dir "$cache_root/$name")
    case " $* " in *" --cache-dir "*) cd=() ;; esac
    "$BUOY" mount "$url" "$mp" "${cd[@]}" --log-file "$TEST_OUT/daemons/$name.log" "$@"
}

buoy_pid() {
    sed -n 's/^pid //p' "$1/stats"
}

log_clean() {
    local log=$TEST_OUT/daemons/$1.log
    if grep -E "ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: " "$log" >&2; then
        echo "log_clean: sanitizer report in $log" >&2
        return 1
    fi
}

not_mounted() {
    if awk -v p="$1" '$5 == p { found = 1 } END { exit !found }' /proc/self/mountinfo; then
        echo "not_mounted: $1 is still mounted" >&2
        return 1
    fi
}

no_loop_on() {
    if [ -n "$(losetup -j "$1" -n -O NAME)" ]; then
        echo "no_loop_on: $(losetup -j "$1") still attached" >&2
        return 1
    fi
}

overwrite() {
    python3 - "$1" "$2" "$3" <<'PY'
import os, random, sys
path, seed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(seed)
fd = os.open(path, os.O_RDWR)
for _ in range(n):
    os.pwrite(fd, r.randbytes(16384), r.randrange(0, (8 << 20) - 16384, 4096))
os.fsync(fd)
os.close(fd)
PY
}

stored() {
    "$BUOY" store ls -l "$1" seg/ | awk '$1 ~ /^[0-9]+$/ { s += $1 } END { print s + 0 }'
}

gone() {
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) || return 0
    case $st in Z*) return 0 ;; esac
    echo "gone: process $1 is still running ($st)" >&2
    return 1
}
