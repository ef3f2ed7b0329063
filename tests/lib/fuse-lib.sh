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

requires_root
requires fusermount3 losetup
[ -c /dev/fuse ] || skip_all "requires /dev/fuse"

cache_root=$(mk_tmpdir cache)

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
