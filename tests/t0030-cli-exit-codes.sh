#!/bin/bash
# t0030-cli-exit-codes.sh - one exit status rule for every command (buoy(1),
# EXIT STATUS; README): 2 for a URL buoy does not take, 3 for something that
# is not there (no volume at the URL, no bucket, no such passphrase file),
# 1 for other errors.  Every command that takes a volume URL is walked
# through each case, on the dir store and on moto.
. tests/lib/test-lib.sh
. tests/lib/fuse-lib.sh
requires python3

dir=$(mk_tmpdir)
mkdir -p "$dir/mnt"
(umask 077 && echo secret >"$dir/pass" && echo wrong >"$dir/wrong")
"$BUOY" create "$dir/enc" --size 16M --passphrase-file "$dir/pass" --kdf-memory 8K \
    --kdf-passes 1 >/dev/null 2>&1 || echo "# could not make the encrypted volume"

# run_all CODE URL [EXTRA...]: every volume command on URL exits CODE.
run_all() {
    local code=$1 url=$2
    shift 2
    local -a cmds=(
        "info $url"
        "mount $url $dir/mnt --cache-dir $dir/c1"
        "serve $url --socket $dir/sock --cache-dir $dir/c2"
        "gc $url --cache-dir $dir/c3"
        "snapshot list $url"
        "snapshot create $url snap --cache-dir $dir/c4"
        "snapshot delete $url snap --cache-dir $dir/c4"
        "clone $url@snap $dir/clone"
        "delete $url"
    )
    local c rc
    for c in "${cmds[@]}"; do
        # shellcheck disable=SC2086
        "$BUOY" $c "$@" >/dev/null 2>"$dir/err"
        rc=$?
        if [ "$rc" != "$code" ]; then
            echo "buoy $c $*: exit $rc, expected $code: $(cat "$dir/err")"
            return 1
        fi
        test "$(wc -l <"$dir/err")" = 1 || { echo "buoy $c: not one line:"; cat "$dir/err"; return 1; }
    done
}

test_expect_success 'an unknown URL scheme is exit 2 (usage) for every command' '
    run_all 2 ftp://host/vol &&
    test_expect_code 2 "$BUOY" create ftp://host/vol --size 1M 2>/dev/null &&
    test_expect_code 2 "$BUOY" store ls ftp://host/vol 2>/dev/null &&
    test_expect_code 2 "$BUOY" passphrase ftp://host/vol --passphrase-file /dev/null \
        --new-passphrase-file /dev/null 2>/dev/null
'

test_expect_success 'no volume at the URL is exit 3 for every command' '
    run_all 3 "$dir/none" &&
    test_expect_code 3 "$BUOY" passphrase "$dir/none" --passphrase-file /dev/null \
        --new-passphrase-file /dev/null 2>/dev/null &&
    ! test -e "$dir/none"
'

test_expect_success 'a passphrase file that does not exist is exit 3 for every command' '
    test -e "$dir/enc/super" &&
    run_all 3 "$dir/enc" --passphrase-file "$dir/no-such-file" &&
    test_expect_code 3 "$BUOY" passphrase "$dir/enc" --passphrase-file "$dir/no-such-file" \
        --new-passphrase-file /dev/null 2>/dev/null
'

start_moto
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
test_expect_success 'a missing bucket is exit 3 for every command' '
    run_all 3 s3://no-such-bucket/v --endpoint "$MOTO_URL" &&
    test_expect_code 3 "$BUOY" create s3://no-such-bucket/v --size 1M --endpoint "$MOTO_URL" \
        2>/dev/null &&
    test_expect_code 3 "$BUOY" store ls s3://no-such-bucket --endpoint "$MOTO_URL" 2>/dev/null
'

test_expect_success 'other errors stay exit 1: a volume that exists, a wrong passphrase' '
    "$BUOY" create "$dir/v" --size 16M >/dev/null &&
    test_expect_code 1 "$BUOY" create "$dir/v" --size 16M 2>/dev/null &&
    test_expect_code 1 "$BUOY" info "$dir/enc" --passphrase-file "$dir/wrong" \
        >/dev/null 2>&1
'

test_done
