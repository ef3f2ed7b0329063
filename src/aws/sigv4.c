/* sigv4.c - AWS Signature Version 4 for request headers (API in sigv4.h).
 *
 * Signing runs in four steps, one public function each, so a test can
 * compare every intermediate text with AWS's published test suite:
 *
 *   request --sigv4_canonical_request--> canonical request
 *           --sigv4_string_to_sign-----> string to sign
 *           --sigv4_signature----------> 64 hex digits
 *   sigv4_authorization runs all three and formats the header value.
 *
 * Rules this file keeps (each one is a way real signers have gone wrong):
 *   1. Output buffers are appended to, never reset, like sigv4_uri_encode.
 *   2. The path arrives raw and is encoded exactly once; with normalize_path
 *      "." and ".." are resolved and empty segments dropped before encoding.
 *   3. Query components are percent-decoded first, so "%2F", "%2f" and a raw
 *      "/" all sign as "%2F"; '+' is a literal plus and signs as "%2B".
 *      A '%' not followed by two hex digits is a literal '%' ("%25").
 *   4. Query parameters sort by encoded name, then encoded value (byte order).
 *   5. Headers sort by lower-case name with a stable sort, so repeated names
 *      join their values with ',' in the order the caller gave them.
 *   6. Key material derived from the secret is wiped before it goes out of
 *      scope.
 */
#include "aws/sigv4.h"
#include "util/hash.h"
#include "util/mem.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- percent-encoding ---- */

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static void encode_byte(struct buf *out, unsigned char c, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";

    if (is_unreserved(c) || (keep_slash && c == '/')) {
        buf_putc(out, (char)c);
    } else {
        char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
        buf_append(out, esc, sizeof(esc));
    }
}

void sigv4_uri_encode(struct buf *out, const char *s, size_t n, int keep_slash)
{
    buf_reserve(out, n);
    for (size_t i = 0; i < n; i++)
        encode_byte(out, (unsigned char)s[i], keep_slash);
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes the query component s[0..n) and appends its canonical encoding. */
static void reencode_component(struct buf *out, const char *s, size_t n)
{
    buf_reserve(out, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%' && i + 2 < n) {
            int hi = hex_digit(s[i + 1]), lo = hex_digit(s[i + 2]);
            if (hi >= 0 && lo >= 0) {
                c = (unsigned char)(hi << 4 | lo);
                i += 2;
            }
        }
        encode_byte(out, c, 0);
    }
}

/* ---- canonical URI ---- */

struct segment {
    const char *p;
    size_t n;
};

/* RFC 3986 dot-segment removal plus collapsing of empty segments.  A path
 * whose last segment is empty, "." or ".." names a directory and keeps its
 * trailing slash ("/a/b/.." -> "/a/"); ".." above the root stays at the root. */
static void normalized_path(struct buf *out, const char *path)
{
    size_t max = 1, nseg = 0;
    int dir = 0;

    for (const char *c = path; *c; c++)
        max += *c == '/';
    struct segment *seg = xmalloc(max * sizeof(*seg));

    for (const char *p = path;;) {
        const char *end = strchrnul(p, '/');
        size_t n = (size_t)(end - p);
        int dot = n == 1 && p[0] == '.';
        int dotdot = n == 2 && p[0] == '.' && p[1] == '.';

        if (dotdot && nseg > 0)
            nseg--;
        else if (n > 0 && !dot && !dotdot)
            seg[nseg++] = (struct segment){p, n};
        dir = n == 0 || dot || dotdot;
        if (!*end) break;
        p = end + 1;
    }

    for (size_t i = 0; i < nseg; i++) {
        buf_putc(out, '/');
        sigv4_uri_encode(out, seg[i].p, seg[i].n, 0);
    }
    if (nseg == 0 || dir) buf_putc(out, '/');
    free(seg);
}

static void canonical_uri(struct buf *out, const char *path, int normalize)
{
    if (!path || !*path)
        buf_putc(out, '/');
    else if (normalize)
        normalized_path(out, path);
    else
        sigv4_uri_encode(out, path, strlen(path), 1);
}

/* ---- canonical query string ---- */

struct param {
    char *name; /* canonically encoded */
    char *value;
};

static int param_cmp(const void *a, const void *b)
{
    const struct param *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

/* Splits "n=v&n2&..." into encoded parameters; empty pieces are dropped.
 * Returns the count; *out receives the array (caller frees). */
static size_t parse_query(const char *q, struct param **out)
{
    size_t max = 1, n = 0;

    for (const char *c = q; *c; c++)
        max += *c == '&';
    struct param *par = xmalloc(max * sizeof(*par));

    for (const char *p = q;;) {
        const char *end = strchrnul(p, '&');
        if (end > p) {
            const char *eq = memchr(p, '=', (size_t)(end - p));
            const char *vstart = eq ? eq + 1 : end;
            struct buf name = {0}, value = {0};

            reencode_component(&name, p, (size_t)((eq ? eq : end) - p));
            reencode_component(&value, vstart, (size_t)(end - vstart));
            par[n].name = buf_steal(&name, NULL);
            par[n].value = buf_steal(&value, NULL);
            n++;
        }
        if (!*end) break;
        p = end + 1;
    }
    *out = par;
    return n;
}

static void canonical_query(struct buf *out, const char *query)
{
    struct param *par;
    size_t n;

    if (!query || !*query) return;
    n = parse_query(query, &par);
    qsort(par, n, sizeof(*par), param_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i > 0) buf_putc(out, '&');
        buf_puts(out, par[i].name);
        buf_putc(out, '=');
        buf_puts(out, par[i].value);
        free(par[i].name);
        free(par[i].value);
    }
    free(par);
}

/* ---- canonical headers ---- */

struct header {
    char *name;   /* lower case */
    char *value;  /* trimmed, whitespace runs collapsed */
    size_t order; /* position in the request: makes qsort stable */
};

static int header_cmp(const void *a, const void *b)
{
    const struct header *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int is_lws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Trims v and turns each run of spaces, tabs and line folds into one space. */
static char *canonical_value(const char *v)
{
    struct buf out = {0};
    int gap = 0;

    buf_reserve(&out, strlen(v));
    for (; *v; v++) {
        if (is_lws(*v)) {
            gap = 1;
            continue;
        }
        if (gap && out.len > 0) buf_putc(&out, ' ');
        gap = 0;
        buf_putc(&out, *v);
    }
    return buf_steal(&out, NULL);
}

static char *lower_name(const char *name)
{
    char *s = xstrdup(name);
    for (char *c = s; *c; c++)
        if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
    return s;
}

/* Appends "name:v1,v2\n" per distinct name to out and "a;b" to names. */
static void canonical_headers(struct buf *out, struct buf *names, const struct sigv4_header *h,
                              size_t n)
{
    struct header *hdr = xmalloc((n ? n : 1) * sizeof(*hdr));

    for (size_t i = 0; i < n; i++) {
        assert(h[i].name && *h[i].name && h[i].value);
        hdr[i].name = lower_name(h[i].name);
        hdr[i].value = canonical_value(h[i].value);
        hdr[i].order = i;
    }
    qsort(hdr, n, sizeof(*hdr), header_cmp);

    buf_reserve(names, 0); /* "" rather than NULL when there are no headers */
    for (size_t i = 0; i < n; i++) {
        int same = i > 0 && strcmp(hdr[i - 1].name, hdr[i].name) == 0;
        if (same) {
            buf_putc(out, ',');
        } else {
            if (i > 0) {
                buf_putc(out, '\n');
                buf_putc(names, ';');
            }
            buf_puts(out, hdr[i].name);
            buf_putc(out, ':');
            buf_puts(names, hdr[i].name);
        }
        buf_puts(out, hdr[i].value);
    }
    if (n > 0) buf_putc(out, '\n');

    for (size_t i = 0; i < n; i++) {
        free(hdr[i].name);
        free(hdr[i].value);
    }
    free(hdr);
}

/* ---- the four public steps ---- */

void sigv4_canonical_request(const struct sigv4_request *req, struct buf *out,
                             struct buf *signed_headers)
{
    struct buf names = {0};

    assert(req->method && req->payload_hash);
    buf_puts(out, req->method);
    buf_putc(out, '\n');
    canonical_uri(out, req->path, req->normalize_path);
    buf_putc(out, '\n');
    canonical_query(out, req->query);
    buf_putc(out, '\n');
    canonical_headers(out, &names, req->headers, req->nheaders);
    buf_putc(out, '\n');
    buf_append(out, names.p, names.len);
    buf_putc(out, '\n');
    buf_puts(out, req->payload_hash);
    if (signed_headers) buf_append(signed_headers, names.p, names.len);
    buf_free(&names);
}

/* "20150830/us-east-1/service/aws4_request" */
static void credential_scope(struct buf *out, const struct sigv4_key *key)
{
    buf_printf(out, "%.8s/%s/%s/aws4_request", key->amz_date, key->region, key->service);
}

void sigv4_string_to_sign(const struct sigv4_key *key, const char *canonical_request,
                          struct buf *out)
{
    char digest[2 * SHA256_LEN + 1];

    assert(strlen(key->amz_date) == 16 && key->amz_date[8] == 'T' && key->amz_date[15] == 'Z');
    sha256_hex(canonical_request, strlen(canonical_request), digest);
    buf_printf(out, "AWS4-HMAC-SHA256\n%s\n", key->amz_date);
    credential_scope(out, key);
    buf_putc(out, '\n');
    buf_puts(out, digest);
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date8), region), service),
 *                 "aws4_request") */
static void signing_key(const struct sigv4_key *key, uint8_t out[SHA256_LEN])
{
    size_t slen = strlen(key->secret_key);
    char *k0 = xmalloc(4 + slen);
    uint8_t kdate[SHA256_LEN], kregion[SHA256_LEN], kservice[SHA256_LEN];

    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, key->secret_key, slen);
    hmac_sha256(k0, 4 + slen, key->amz_date, strnlen(key->amz_date, 8), kdate);
    hmac_sha256(kdate, SHA256_LEN, key->region, strlen(key->region), kregion);
    hmac_sha256(kregion, SHA256_LEN, key->service, strlen(key->service), kservice);
    hmac_sha256(kservice, SHA256_LEN, "aws4_request", strlen("aws4_request"), out);

    explicit_bzero(k0, 4 + slen);
    free(k0);
    explicit_bzero(kdate, sizeof(kdate));
    explicit_bzero(kregion, sizeof(kregion));
    explicit_bzero(kservice, sizeof(kservice));
}

void sigv4_signature(const struct sigv4_key *key, const char *string_to_sign, char out[65])
{
    uint8_t k[SHA256_LEN], sig[SHA256_LEN];

    signing_key(key, k);
    hmac_sha256(k, sizeof(k), string_to_sign, strlen(string_to_sign), sig);
    explicit_bzero(k, sizeof(k));
    hex_encode(sig, sizeof(sig), out);
}

void sigv4_authorization(const struct sigv4_request *req, const struct sigv4_key *key,
                         struct buf *out)
{
    struct buf creq = {0}, names = {0}, sts = {0};
    char sig[2 * SHA256_LEN + 1];

    sigv4_canonical_request(req, &creq, &names);
    sigv4_string_to_sign(key, creq.p, &sts);
    sigv4_signature(key, sts.p, sig);

    buf_printf(out, "AWS4-HMAC-SHA256 Credential=%s/", key->access_key);
    credential_scope(out, key);
    buf_puts(out, ", SignedHeaders=");
    buf_append(out, names.p, names.len);
    buf_printf(out, ", Signature=%s", sig);

    buf_free(&creq);
    buf_free(&names);
    buf_free(&sts);
}
