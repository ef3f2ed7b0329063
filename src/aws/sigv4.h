/* sigv4.h - AWS Signature Version 4 for request headers.
 *
 * The caller builds the request, including every header it wants signed
 * (host, x-amz-date, and for S3 x-amz-content-sha256 and, with temporary
 * credentials, x-amz-security-token), then asks for the Authorization value.
 *
 * Canonical form (AWS "Create a canonical request"):
 *   METHOD \n CANONICAL_URI \n CANONICAL_QUERY \n CANONICAL_HEADERS \n
 *   SIGNED_HEADERS \n PAYLOAD_HASH
 * String to sign:
 *   "AWS4-HMAC-SHA256" \n AMZ_DATE \n DATE8/REGION/SERVICE/aws4_request \n
 *   hex(sha256(canonical request))
 * Signing key: HMAC chain "AWS4"+secret -> date8 -> region -> service -> "aws4_request".
 */
#ifndef BUOY_SIGV4_H
#define BUOY_SIGV4_H

#include "util/buf.h"

#include <stddef.h>

#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct sigv4_header {
    const char *name;  /* any case; folded to lower case when signing */
    const char *value; /* raw; trimmed, sequential spaces and line folds collapsed */
};

struct sigv4_request {
    const char *method; /* "GET", "PUT", ... */
    /* The path NOT percent-encoded (an S3 key as it is, "/ሴ", "/a b/").  The
     * signer encodes each byte outside A-Za-z0-9-._~ except '/'. */
    const char *path;
    /* Query string without '?', as on the wire (may be percent-encoded or
     * raw); NULL or "" for none.  Names and values are decoded, re-encoded
     * canonically and sorted by name, then value.  '+' is kept literal. */
    const char *query;
    const struct sigv4_header *headers;
    size_t nheaders;
    /* hex SHA-256 of the body, or SIGV4_UNSIGNED_PAYLOAD. */
    const char *payload_hash;
    /* 1: remove "." and ".." segments and collapse "//" (most services).
     * 0: sign the path as given (S3). */
    int normalize_path;
};

struct sigv4_key {
    const char *access_key;
    const char *secret_key;
    const char *region;
    const char *service;  /* "s3", "ec2", ... */
    const char *amz_date; /* "20150830T123600Z"; must equal the x-amz-date header */
};

/* Appends the percent-encoding of s[0..n) to out: unreserved bytes
 * (A-Za-z0-9-._~) stay, others become %XX (upper-case hex); '/' stays when
 * keep_slash.  Used for canonical paths, query components and URLs. */
void sigv4_uri_encode(struct buf *out, const char *s, size_t n, int keep_slash);

/* The canonical request; signed_headers (optional) receives "host;x-amz-date". */
void sigv4_canonical_request(const struct sigv4_request *req, struct buf *out,
                             struct buf *signed_headers);
/* The string to sign for a canonical request. */
void sigv4_string_to_sign(const struct sigv4_key *key, const char *canonical_request,
                          struct buf *out);
/* The lower-case hex signature (64 chars + NUL) of a string to sign. */
void sigv4_signature(const struct sigv4_key *key, const char *string_to_sign, char out[65]);
/* The complete Authorization header value:
 * "AWS4-HMAC-SHA256 Credential=AK/DATE8/REGION/SERVICE/aws4_request,
 *  SignedHeaders=..., Signature=..." */
void sigv4_authorization(const struct sigv4_request *req, const struct sigv4_key *key,
                         struct buf *out);

#endif
