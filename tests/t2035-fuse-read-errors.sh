#!/bin/bash
# t2035-fuse-read-errors.sh - a segment object altered in the store: reading
# it gives EIO, the daemon's log line names the object's key and the block
# and carries a timestamp, and the stats count the read error and the
# checksum failure (stats file, buoy stats, --json).
. tests/lib/test-lib.sh
. tests/lib/fuse-lib.sh

dir=$(mk_tmpdir)
mp=$dir/mp
store=$dir/store
mkdir "$mp" "$store"
log=$TEST_OUT/daemons/m2.log
stamp='[0-9]\{4\}-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9]\{3\}Z buoy\[[0-9]*\]: '

test_expect_success 'a volume with 1 MiB of data, all in one segment object' '
    "$BUOY" create "$store/v" --size 16M >/dev/null &&
    buoy_mount m1 "$store/v" "$mp" --cache-size 0 &&
    head -c 1048576 /dev/urandom >"$dir/data" &&
    dd if="$dir/data" of="$mp/disk" bs=64k conv=notrunc,fsync status=none &&
    "$BUOY" umount "$mp" &&
    ls "$store"/v/seg/*/* >"$dir/segs" &&
    test "$(wc -l <"$dir/segs")" -eq 1
'

seg=$(cat "$dir/segs" 2>/dev/null)
key=${seg#"$store/v/"}

test_expect_success 'reading the altered object fails with EIO' '
    size=$(stat -c %s "$seg") &&
    python3 -c "import sys
f = open(sys.argv[1], \"r+b\"); f.seek(int(sys.argv[2])); b = f.read(1)
f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0xff])); f.close()" "$seg" $((size - 1000)) &&
    buoy_mount m2 "$store/v" "$mp" --cache-size 0 &&
    test_must_fail dd if="$mp/disk" of=/dev/null bs=64k count=16 status=none 2>"$dir/dd.err" &&
    grep -q "Input/output error" "$dir/dd.err"
'

test_expect_success 'the log line names the object and the block, with a timestamp' '
    grep "checksum mismatch" "$log" >"$dir/lines" &&
    grep -q "^${stamp}error: read of dir://$store/v/$key: segment seq [0-9]*: data block [0-9]* checksum mismatch (stored [0-9a-f]*, computed [0-9a-f]*)$" "$dir/lines" &&
    grep -q "^${stamp}notice: serving $store/v at $mp/disk$" "$log"
'

test_expect_success 'the stats count the read error and the checksum failure' '
    read_errors=$(sed -n "s/^read_errors //p" "$mp/stats") &&
    checksum_errors=$(sed -n "s/^checksum_errors //p" "$mp/stats") &&
    test "$read_errors" -ge 1 && test "$checksum_errors" -ge 1 &&
    "$BUOY" stats "$mp" >"$dir/human" &&
    grep -q "^errors     $read_errors reads failed, $checksum_errors checksum failures in data from the store (the log names each object)$" "$dir/human" &&
    "$BUOY" stats --json "$mp" >"$dir/json" &&
    python3 -c "import json, sys
d = json.load(open(sys.argv[1])); assert d[\"read_errors\"] >= 1 and d[\"checksum_errors\"] >= 1, d" "$dir/json" &&
    "$BUOY" umount "$mp" &&
    log_clean m2
'

test_expect_success 'an unaltered volume reads with no errors counted' '
    "$BUOY" create "$store/w" --size 16M >/dev/null &&
    buoy_mount m3 "$store/w" "$mp" --cache-size 0 &&
    dd if="$dir/data" of="$mp/disk" bs=64k conv=notrunc,fsync status=none &&
    cmp -n 1048576 "$mp/disk" "$dir/data" &&
    grep -qx "read_errors 0" "$mp/stats" &&
    grep -qx "checksum_errors 0" "$mp/stats" &&
    "$BUOY" stats "$mp" >"$dir/human0" &&
    grep -q "^errors     0 reads failed, 0 checksum failures in data from the store$" "$dir/human0" &&
    "$BUOY" umount "$mp"
'

test_done
