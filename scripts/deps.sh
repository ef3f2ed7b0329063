#!/bin/bash
# deps.sh - install what buoy needs to build and test, and nothing when it is
# already there.
#
#   scripts/deps.sh          from any directory; safe to run again (a no-op
#                            run takes about a second)
#   scripts/deps.sh --bench  also what only the benchmarks need (make bench):
#                            gnuplot for the chart
#
# Three steps, one line of output each:
#   1. Debian packages: checked with dpkg-query; apt-get runs only when some
#      are missing, and installs only those.  Node.js and npm count as present
#      when the node and npm commands exist, because NodeSource's nodejs
#      package ships npm and conflicts with Debian's npm package.
#   2. s3rver (a fake S3 server for the tests) from the npm registry, into
#      .deps/s3rver at the repo top, at a pinned version.
#   3. moto's server mode (the other fake S3) for the python3 on PATH.
# On failure the last line printed is "deps.sh: what failed; what to do".
set -euo pipefail

S3RVER_VERSION=3.7.1

DEBIAN_PKGS=(
    build-essential pkg-config libcurl4-openssl-dev libssl-dev libexpat1-dev
    libjson-c-dev libxxhash-dev libfuse3-dev fuse3 libzstd-dev libsodium-dev nbdkit nbdkit-plugin-dev
    libnbd-bin qemu-utils fio s3backer e2fsprogs iproute2 nftables curl
    ca-certificates nodejs npm python3 perl valgrind
    keepalived groff-base man-db s3fs rclone attr
)

# Only for make bench (bench/run.sh, bench/report.py); make check does not need them.
BENCH_PKGS=(gnuplot-nox)
for arg in "$@"; do
    case $arg in
    --bench) DEBIAN_PKGS+=("${BENCH_PKGS[@]}") ;;
    *)
        echo "usage: scripts/deps.sh [--bench]" >&2
        exit 2
        ;;
    esac
done

die() {
    echo "deps.sh: $*" >&2
    exit 1
}

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd) || die "cannot find the repo top"
cd "$top"

sudo=
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "not root and no sudo; run as root or install sudo"
    sudo=sudo
fi

# --- 1. Debian packages --------------------------------------------------
declare -A state=()
while read -r pkg st; do
    state[$pkg]=$st
done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${DEBIAN_PKGS[@]}" 2>/dev/null || true)
missing=()
for pkg in "${DEBIAN_PKGS[@]}"; do
    case $pkg in
    nodejs) command -v node >/dev/null && continue ;;
    npm) command -v npm >/dev/null && continue ;;
    esac
    [ "${state[$pkg]:-}" = ii ] || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: debian packages: all ${#DEBIAN_PKGS[@]} present"
else
    echo "deps: debian packages: installing ${missing[*]}"
    aptlog=$(mktemp)
    trap 'rm -f "$aptlog"' EXIT
    if ! { $sudo apt-get update &&
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y \
            "${missing[@]}"; } >"$aptlog" 2>&1; then
        tail -n 25 "$aptlog" | sed 's/^/    /' >&2
        die "apt-get install ${missing[*]} failed (output above)"
    fi
    rm -f "$aptlog"
fi
# The packages above must have brought these; check so a later step does not
# fail in a confusing way.
for cmd in cc pkg-config curl node npm python3 prove; do
    command -v "$cmd" >/dev/null || die "$cmd is not on PATH after installing the Debian packages"
done

# --- 2. s3rver ------------------------------------------------------------
s3dir=.deps/s3rver
s3bin=$s3dir/node_modules/.bin/s3rver
s3pkg=$s3dir/node_modules/s3rver/package.json
have=
if [ -x "$s3bin" ] && [ -f "$s3pkg" ]; then
    have=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$s3pkg" | head -n 1)
fi
if [ "$have" = "$S3RVER_VERSION" ]; then
    echo "deps: s3rver $S3RVER_VERSION: present in $s3dir"
else
    echo "deps: s3rver $S3RVER_VERSION: installing into $s3dir with npm"
    # Install beside the target and move it in place only once it runs, so a
    # broken install never looks like a finished one.
    tmp=$s3dir.tmp
    rm -rf "$tmp"
    mkdir -p "$tmp"
    if ! npm install --prefix "$tmp" --no-audit --no-fund --no-update-notifier \
        --loglevel=error "s3rver@$S3RVER_VERSION" >"$tmp/npm.log" 2>&1; then
        tail -n 25 "$tmp/npm.log" | sed 's/^/    /' >&2
        die "npm install s3rver@$S3RVER_VERSION failed (output above); is the npm registry reachable?"
    fi
    "$tmp/node_modules/.bin/s3rver" --version >/dev/null 2>&1 ||
        die "s3rver $S3RVER_VERSION does not run with node $(node --version)"
    rm -rf "$s3dir"
    mv "$tmp" "$s3dir"
fi

# --- 3. moto ----------------------------------------------------------------
py=$(command -v python3)
if python3 -c 'import moto.server' 2>/dev/null; then
    echo "deps: moto server: present for $py"
else
    echo "deps: moto server: installing moto[server] with pip for $py"
    piplog=$(mktemp)
    if ! python3 -m pip install --timeout 20 --retries 1 'moto[server]' >"$piplog" 2>&1 ||
        ! python3 -c 'import moto.server' 2>/dev/null; then
        tail -n 10 "$piplog" | sed 's/^/    /' >&2
        rm -f "$piplog"
        die "python3 ($py) cannot import moto.server and pip could not install 'moto[server]'; install it for that python3 by hand"
    fi
    rm -f "$piplog"
fi
echo "deps: done"
