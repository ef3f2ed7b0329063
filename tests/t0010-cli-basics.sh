#!/bin/bash
# t0010-cli-basics.sh - buoy's command line: help, version, the store
# operator tools on a local directory store, and one-line errors with the
# documented exit codes (1 error, 2 usage, 3 not found, 4 precondition).
. tests/lib/test-lib.sh

dir=$(mk_tmpdir)
st=$dir/store

test_expect_success 'buoy --help names the commands' '
    "$BUOY" --help >"$dir/help" &&
    grep -q "store ls|get|put|rm|head" "$dir/help" &&
    grep -q "version" "$dir/help"
'

test_expect_success 'buoy --help lists every ha verb' '
    "$BUOY" --help >"$dir/help" &&
    "$BUOY" ha --help >"$dir/ha.help" &&
    sed -n "s/^  \([a-z-]*\)  .*/\1/p" "$dir/ha.help" >"$dir/ha.verbs" &&
    test "$(wc -l <"$dir/ha.verbs")" -ge 10 &&
    while read -r v; do
        grep -qE "ha ([a-z-]+\|)*$v(\||$| )" "$dir/help" || { echo "buoy --help lacks ha $v"; return 1; }
    done <"$dir/ha.verbs"
'

test_expect_success 'each command help speaks of that command only; -f is --foreground only' '
    cmds="create info mount umount stats gc snapshot clone delete passphrase serve" &&
    for c in $cmds; do
        "$BUOY" $c --help >"$dir/h.$c" || return 1
        for other in $cmds ha; do
            test "$other" = "$c" && continue
            if grep "^  -" "$dir/h.$c" | grep -E "(^|[ (,])$other(, [a-z]+)*: "; then
                echo "buoy $c --help speaks of $other"; return 1
            fi
        done
    done &&
    ! grep -q "even if it overwrites" "$dir/h.delete" &&
    grep -q -- "-f, --foreground" "$dir/h.mount" &&
    grep -q -- "-f, --foreground" "$dir/h.serve" &&
    grep -q "^ *--force" "$dir/h.create" &&
    grep -q "^ *--force" "$dir/h.delete" &&
    test_expect_code 2 "$BUOY" create -f "$dir/x" --size 1M 2>"$dir/err" &&
    grep -q "unknown option .-f." "$dir/err"
'

test_expect_success 'buoy version prints the version and libraries' '
    "$BUOY" version >"$dir/ver" &&
    grep -q "^buoy [0-9]" "$dir/ver" &&
    grep -q "OpenSSL" "$dir/ver" &&
    grep -q "libcurl" "$dir/ver"
'

test_expect_success 'no command and an unknown command are usage errors' '
    test_expect_code 2 "$BUOY" &&
    test_expect_code 2 "$BUOY" frobnicate 2>"$dir/err" &&
    grep -q "^buoy: unknown command .frobnicate." "$dir/err"
'

test_expect_success 'every store verb has --help listing its options' '
    for v in ls get put rm head; do
        "$BUOY" store $v --help >"$dir/h.$v" &&
        grep -q "^usage: buoy store $v" "$dir/h.$v" &&
        grep -q -- "--endpoint" "$dir/h.$v" || return 1
    done &&
    grep -q -- "--if-none-match" "$dir/h.put" &&
    grep -q -- "--range" "$dir/h.get"
'

test_expect_success 'the man page documents every option that --help lists' '
    groff -man -Tascii -P-cbou docs/buoy.1 >"$dir/man.txt" 2>"$dir/groff.err" &&
    grep -q "^EXIT STATUS" "$dir/man.txt" &&
    for c in create info mount umount stats gc snapshot; do
        "$BUOY" $c --help >"$dir/h.$c" || return 1
    done &&
    for v in ls get put rm head create info mount umount stats gc snapshot; do
        sed -n "s/^ *\(-[a-z], \)\{0,1\}--\([a-z-]*\).*/\2/p" "$dir/h.$v" >"$dir/opts.$v" &&
        test -s "$dir/opts.$v" &&
        while read -r opt; do
            grep -q -- "--$opt" "$dir/man.txt" || {
                echo "docs/buoy.1 does not document --$opt ($v)"; return 1; }
        done <"$dir/opts.$v" || return 1
    done
'

test_expect_success 'put, ls, head, get and rm round-trip a file' '
    head -c 100000 /dev/urandom >"$dir/in" &&
    "$BUOY" store put "$st" a/b/obj "$dir/in" >"$dir/etag" &&
    test -s "$dir/etag" &&
    "$BUOY" store ls "$st" >"$dir/ls" &&
    test "$(cat "$dir/ls")" = "a/b/obj" &&
    "$BUOY" store head "$st" a/b/obj >"$dir/head" &&
    grep -qx "size 100000" "$dir/head" &&
    grep -qx "etag $(cat "$dir/etag")" "$dir/head" &&
    "$BUOY" store get "$st" a/b/obj "$dir/out" &&
    cmp "$dir/in" "$dir/out" &&
    "$BUOY" store rm "$st" a/b/obj &&
    "$BUOY" store ls "$st" >"$dir/ls" &&
    test ! -s "$dir/ls"
'

test_expect_success 'put reads stdin and get writes stdout; --range takes bytes' '
    printf "0123456789" >"$dir/digits" &&
    "$BUOY" store put "dir://$st" d <"$dir/digits" >/dev/null &&
    "$BUOY" store get "$st" d --range 3-5 >"$dir/r" &&
    test "$(cat "$dir/r")" = "345" &&
    "$BUOY" store get "$st" d --range 7- >"$dir/r" &&
    test "$(cat "$dir/r")" = "789"
'

test_expect_success 'conditional put: --if-none-match and --if-match exit 4 when unmet' '
    test_expect_code 4 "$BUOY" store put --if-none-match "$st" d "$dir/digits" 2>"$dir/err" &&
    test "$(wc -l <"$dir/err")" -eq 1 &&
    grep -q "If-None-Match" "$dir/err" &&
    etag=$("$BUOY" store head "$st" d | sed -n "s/^etag //p") &&
    "$BUOY" store put --if-match "$etag" "$st" d "$dir/digits" >/dev/null &&
    test_expect_code 4 "$BUOY" store put --if-match "$etag" "$st" d "$dir/digits"
'

test_expect_success 'a missing object exits 3 with a one-line error naming it' '
    test_expect_code 3 "$BUOY" store get "$st" no/such/key 2>"$dir/err" &&
    test "$(wc -l <"$dir/err")" -eq 1 &&
    grep -q "no/such/key: GET: no such object" "$dir/err"
'

test_expect_success 'bad input: one line on stderr and a non-zero exit' '
    test_expect_code 2 "$BUOY" store ls ftp://example/x 2>"$dir/err" &&
    grep -q "unknown store URL scheme .ftp." "$dir/err" &&
    test_expect_code 2 "$BUOY" store get --range abc "$st" d 2>"$dir/err" &&
    grep -q "bad --range" "$dir/err" &&
    test_expect_code 2 "$BUOY" store ls --retries many "$st" 2>"$dir/err" &&
    grep -q "retries takes a whole number" "$dir/err" &&
    test_expect_code 2 "$BUOY" store ls --bogus "$st" 2>"$dir/err" &&
    grep -q "unknown option" "$dir/err" &&
    test_expect_code 2 "$BUOY" store get "$st" 2>"$dir/err" &&
    grep -q "expected URL KEY" "$dir/err" &&
    test_expect_code 1 "$BUOY" store put "$st" "../up" "$dir/digits" 2>"$dir/err" &&
    grep -q "segment" "$dir/err" &&
    test_expect_code 3 "$BUOY" store put "$st" k "$dir/does-not-exist" 2>"$dir/err" &&
    grep -q "cannot read" "$dir/err" &&
    test_expect_code 1 "$BUOY" store ls "s3://b!d/x" --endpoint http://127.0.0.1:1 2>"$dir/err" &&
    grep -q "not a valid bucket name" "$dir/err" &&
    test "$(wc -l <"$dir/err")" -eq 1
'

test_expect_success 'S3 without credentials is a clear error, before any request' '
    test_expect_code 1 "$BUOY" store ls s3://bucket/x --endpoint http://127.0.0.1:1 2>"$dir/err" &&
    grep -q "no AWS credentials" "$dir/err"
'

test_done
