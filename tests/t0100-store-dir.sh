#!/bin/bash
# t0100-store-dir.sh - the local directory store passes the conformance
# checks every backend must pass (tests/tools/storetest.c), also with 5%
# injected transient errors and latency underneath the retry layer:
# metadata, LIST with a delimiter, If-Match on reads, COPY, and the keys
# of an any_keys store it can keep (the others refused with the reason).
. tests/lib/test-lib.sh

dir=$(mk_tmpdir)
st=$dir/store
ST=$TOOLS/storetest

for check in basic ranges cond meta delim ifmatch copy anykeys; do
    test_expect_success "dir store: $check" '"$ST" $check "$st"'
done

test_expect_success 'dir store: 1500 keys list exactly and in order' '"$ST" list "$st" 1500'

test_expect_success 'dir store: 100 parallel puts and gets keep their checksums' '
    "$ST" parallel "$st" 100
'

test_expect_success 'dir store with 5% transient errors and latency: nothing surfaces' '
    "$ST" --fault "err=0.05,latency=2,jitter=5,seed=9" parallel "$st" 100 &&
    "$ST" --fault "err=0.03,conflict=0.02,throttle=0.02,seed=10" list "$st" 300
'

test_expect_success 'dir store with faults: COPY and metadata retried, nothing surfaces' '
    "$ST" --fault "err=0.1,ackloss=0.1,seed=7,ops=copy+put+head+get" copy "$st" &&
    "$ST" --fault "err=0.1,seed=4" meta "$st"
'

test_expect_success 'nothing is left in the store or its temp directory' '
    "$BUOY" store ls "$st" >"$dir/ls" &&
    test ! -s "$dir/ls" &&
    test -z "$(ls -A "$st/.buoy-tmp")"
'

test_done
