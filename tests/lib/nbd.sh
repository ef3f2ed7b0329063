# shellcheck shell=bash
# nbd.sh - helpers for the NBD tests (tests/t2*-nbd-*.sh), sourced after
# test-lib.sh.  A server is "buoy serve -f" under start_daemon, so the
# harness stops it (SIGTERM, which must close the volume cleanly) or kills
# it, and nothing outlives the script.
#
#   serve_start NAME URL SOCKET [buoy serve options...]
#       start buoy serve on a unix socket and wait until it answers NBD
#   serve_start_tcp NAME URL PORT [options...]   the same on 127.0.0.1:PORT
#   nbd_uri SOCKET        nbd+unix:///?socket=SOCKET
#   no_server_for TEXT    no process has TEXT in its command line
#
# Clients (nbdinfo, nbdcopy, qemu-img, qemu-io) run in the test's shell, so
# the ASan runtime that buoy serve preloads into nbdkit never reaches them.

requires nbdkit nbdinfo nbdcopy qemu-img qemu-io stdbuf
[ -f "$BUOY_OUT/nbdkit-buoy-plugin.so" ] ||
    skip_all "no $BUOY_OUT/nbdkit-buoy-plugin.so (run make MODE=asan all)"

nbd_uri() {
    echo "nbd+unix:///?socket=$1"
}

# _serve_wait NAME URI: until the server answers a handshake (the volume is
# open: nbdkit accepts connections only after the plugin's .after_fork), or
# fail when it exits or 60 s pass.
_serve_wait() {
    local name=$1 uri=$2 end=$((SECONDS + 60)) pid
    pid=$(daemon_pid "$name") || return 1
    until nbdinfo --size "$uri" >/dev/null 2>&1; do
        if ! _tl_alive "$pid"; then
            _tl_reap "$pid"
            _tl_unregister "$name"
            echo "serve_start: buoy serve $name exited (status $_tl_status); see $TEST_OUT/daemons/$name.log" >&2
            tail -n 5 "$TEST_OUT/daemons/$name.log" >&2
            return 1
        fi
        if [ "$SECONDS" -ge "$end" ]; then
            echo "serve_start: $uri did not answer within 60 s" >&2
            return 1
        fi
        sleep 0.1
    done
}

serve_start() {
    local name=$1 url=$2 sock=$3
    shift 3
    start_daemon "$name" "$BUOY" serve "$url" --socket "$sock" -f "$@" &&
        _serve_wait "$name" "$(nbd_uri "$sock")"
}

serve_start_tcp() {
    local name=$1 url=$2 port=$3
    shift 3
    start_daemon "$name" "$BUOY" serve "$url" --port "$port" -f "$@" &&
        _serve_wait "$name" "nbd://127.0.0.1:$port"
}

# no_server_for TEXT: fails, showing it, if a live process mentions TEXT.
no_server_for() {
    local f=$TEST_OUT/ps.out
    ps -eo pid=,stat=,args= >"$f" || return 1
    awk -v t="$1" -v me=$$ '$2 !~ /^Z/ && $1 != me && index($0, t) {
        print "no_server_for: still running: " $0 > "/dev/stderr"; found = 1 }
        END { exit found }' "$f"
}
