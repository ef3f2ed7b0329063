#!/bin/bash
# t0200-store-moto.sh - the S3 backend against moto's S3 server: conformance
# checks (byte ranges, listing past 1,000 keys, conditional writes, 100
# parallel transfers, metadata, COPY, If-Match on reads, LIST with a
# delimiter, any keys), path and virtual-hosted addressing, odd keys, wrong
# credentials, and the server killed in the middle of a run.
#
# Two moto servers: "motoauth" has IAM authentication on, so it checks the
# SigV4 signature of every request we send; "moto" does not.  moto's checker
# rebuilds the URL from an already-decoded path, so it rejects correct
# signatures of keys or query values with characters such as + = & % / or
# non-ASCII (boto3, AWS's own SDK, is refused the same way).  Listing under a
# prefix and odd keys therefore run against the plain server.
. tests/lib/test-lib.sh

dir=$(mk_tmpdir)
ST=$TOOLS/storetest

start_moto moto
PLAIN_URL=$MOTO_URL PLAIN_PORT=$MOTO_PORT

# moto lets the first 5 requests through unauthenticated: the readiness probe,
# then enough to create an
# IAM user with an access key and an allow-all policy, and the bucket.  Everything after that,
# our S3 requests included, must carry a valid signature of that key.
INITIAL_NO_AUTH_ACTION_COUNT=5 start_moto motoauth

test_expect_success 'set up an IAM user, its key and a bucket' '
    moto_iam_user "$dir" &&
    make_bucket "$MOTO_URL" bkt &&
    test_must_fail make_bucket "$MOTO_URL" unsigned-now-refused &&
    make_bucket "$PLAIN_URL" bkt
'

EP=(--endpoint "$MOTO_URL")
PLAIN=(--endpoint "$PLAIN_URL")
for check in basic ranges cond; do
    test_expect_success "moto (signatures checked): $check" '"$ST" "${EP[@]}" $check s3://bkt/vol1'
done

test_expect_success 'moto (signatures checked): metadata and Content-Type, COPY' '
    "$ST" "${EP[@]}" meta s3://bkt/vol1 &&
    "$ST" "${EP[@]}" copy s3://bkt/vol1
'

# moto ignores x-amz-copy-source-if-match (boto3 sees the same); GET and
# HEAD must honour If-Match.
test_expect_success 'moto (signatures checked): If-Match on GET and HEAD' '
    rc=0 &&
    "$ST" "${EP[@]}" ifmatch s3://bkt/vol1 >"$dir/im" || rc=$?
    cat "$dir/im" &&
    { test "$rc" -eq 0 ||
      { test "$rc" -eq 77 && grep -qx "the server ignores If-Match on: COPY source" "$dir/im"; }; }
'

test_expect_success 'moto: LIST with a delimiter: markers, three levels, 1100 keys in one' '
    "$ST" "${PLAIN[@]}" delim s3://bkt/vol1
'

test_expect_success 'moto (signatures checked): keys "x//y", "./z", "d/", "..", "q/../r" as they are' '
    "$ST" "${EP[@]}" anykeys s3://bkt/vol1 1
'

test_expect_success 'moto: those keys list back exactly, in byte order' '
    "$ST" "${PLAIN[@]}" anykeys s3://bkt/vol1
'

test_expect_success 'moto: 1500 keys list exactly, in order, across pages' '
    "$ST" "${PLAIN[@]}" list s3://bkt/vol1 1500
'

test_expect_success 'moto (signatures checked): 100 parallel puts and gets keep their checksums' '
    "$ST" "${EP[@]}" parallel s3://bkt/vol1 100 >"$dir/par" &&
    cat "$dir/par" &&
    peak=$(sed -n "s/.*peak \([0-9]*\) requests.*/\1/p" "$dir/par") &&
    test "$peak" -ge 32
'

test_expect_success 'moto: virtual-hosted addressing (bucket.localhost)' '
    "$ST" --endpoint "http://localhost:$MOTO_PORT" --addressing virtual basic s3://bkt/vh &&
    "$ST" --endpoint "http://localhost:$PLAIN_PORT" --addressing virtual list s3://bkt/vh 50
'

test_expect_success 'moto: keys with spaces, unicode and reserved characters' '
    printf "x" >"$dir/x" &&
    "$BUOY" store put "${PLAIN[@]}" s3://bkt/odd "a b/ሴ+=&%?#~" "$dir/x" >/dev/null &&
    "$BUOY" store ls "${PLAIN[@]}" s3://bkt/odd >"$dir/ls" &&
    test "$(cat "$dir/ls")" = "a b/ሴ+=&%?#~" &&
    "$BUOY" store get "${PLAIN[@]}" s3://bkt/odd "a b/ሴ+=&%?#~" "$dir/y" &&
    cmp "$dir/x" "$dir/y"
'

test_expect_success 'moto: a wrong secret is an auth error, not retried' '
    AWS_SECRET_ACCESS_KEY=wrong "$ST" "${EP[@]}" auth s3://bkt/vol1 2>"$dir/err" &&
    grep -q "SignatureDoesNotMatch" "$dir/err" &&
    AWS_ACCESS_KEY_ID=AKIANOSUCHKEY "$ST" "${EP[@]}" auth s3://bkt/vol1 2>"$dir/err" &&
    grep -q "InvalidAccessKeyId" "$dir/err"
'

test_expect_success 'moto: the CLI reports a wrong secret in one line' '
    test_expect_code 1 env AWS_SECRET_ACCESS_KEY=wrong "$BUOY" store ls "${EP[@]}" s3://bkt \
        2>"$dir/err" &&
    test "$(wc -l <"$dir/err")" -eq 1 &&
    grep -q "HTTP 403 SignatureDoesNotMatch.*check the secret key" "$dir/err"
'

test_expect_success 'moto: a missing bucket is named in the error' '
    test_expect_code 3 "$BUOY" store get "${EP[@]}" s3://nosuchbucket/v k 2>"$dir/err" &&
    grep -q "bucket .nosuchbucket. does not exist" "$dir/err"
'

test_expect_success 'moto killed mid-run: requests retry, then fail with a clear error' '
    "$ST" "${EP[@]}" --retries 4 parallel s3://bkt/killed 400 >"$dir/kout" 2>"$dir/kerr" &
    pid=$! &&
    sleep 1 &&
    kill_moto motoauth &&
    { wait $pid; rc=$?; } &&
    test "$rc" -eq 1 &&
    grep -q "gave up after 5 attempts" "$dir/kerr" &&
    "$ST" "${EP[@]}" --retries 2 down s3://bkt/vol1
'

test_done
