/* store_s3.c - the S3 backend: libcurl multi, SigV4, ListObjectsV2.
 *
 * One CURLM drives every transfer from the store's thread; libcurl keeps a
 * connection cache in it, so requests reuse keep-alive connections.  At most
 * max_inflight transfers run at once; more wait in a FIFO.  Easy handles are
 * recycled through a free list.
 *
 * Addressing: path style  http(s)://endpoint/BUCKET/PREFIX/KEY
 *             virtual     http(s)://BUCKET.endpoint/PREFIX/KEY
 * AUTO means path style for a custom endpoint, virtual for AWS (path style
 * when the bucket name has dots, which break TLS wildcard certificates).
 * The endpoint is --endpoint, else $AWS_ENDPOINT_URL_S3, else
 * $AWS_ENDPOINT_URL (as the AWS tools read them, and not at all when
 * $AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is true), else AWS.
 *
 * A connection that cannot be made (refused, host name unknown) fails the
 * request "transient" with unreachable set, so that the retry layer can
 * fail a person's command at once (store_retry.c).
 *
 * Every request is signed when it starts (so a retry is re-signed with a
 * fresh date and fresh credentials).  The body is hashed for the signature
 * unless unsigned_payload is set.
 *
 * HTTP answers map to store errors in classify(); retrying is the retry
 * layer's job, this file only says what kind of failure it saw. */
#include "aws/creds.h"
#include "aws/sigv4.h"
#include "s3_xml.h"
#include "store.h"
#include "util/clock.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/mem.h"

#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct s3_xfer {
    CURL *easy;
    struct curl_slist *hdrs;
    struct store_req *req;
    struct s3_store *s3;
    size_t up_off;
    struct buf resp;
    struct s3_list_page page; /* LIST: accumulated across pages */
    char curl_err[CURL_ERROR_SIZE];
    uint64_t range_first; /* from Content-Range, when has_range */
    uint64_t range_total; /* the object's size from Content-Range, 0 if unknown */
    int has_range;
    size_t meta_cap; /* of req->rmeta, filled from x-amz-meta-* headers */
    struct s3_xfer *next_free;
};

struct s3_store {
    struct store base;
    struct store_stats stats_storage;
    char *bucket, *prefix; /* prefix without trailing '/', "" for none */
    char *scheme, *host;   /* host includes ":port" when the endpoint has one */
    const char *ep_source; /* for messages: " (--endpoint)", " ($AWS_ENDPOINT_URL)" or "" */
    const char *ep_hint;   /* what to check when nothing answers there */
    int virtual_host;
    char *region;
    int unsigned_payload;
    long connect_timeout_ms, request_timeout_ms;
    int max_inflight;
    struct creds_provider *creds;
    CURLM *multi;
    int active;
    struct store_req *qhead, *qtail; /* waiting for a transfer slot */
    struct s3_xfer *free_xfers;
};

#define S3_OF(s) ((struct s3_store *)(s))

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* The comment on s3_classify in s3_xml.h is the mapping's contract. */

/* --- building a request --- */

static void full_key(struct s3_store *s3, const char *key, struct buf *out)
{
    if (*s3->prefix) {
        buf_puts(out, s3->prefix);
        buf_putc(out, '/');
    }
    buf_puts(out, key);
}

static void query_param(struct buf *q, const char *name, const char *value)
{
    if (q->len)
        buf_putc(q, '&');
    buf_puts(q, name);
    buf_putc(q, '=');
    sigv4_uri_encode(q, value, strlen(value), 0);
}

static void list_query(struct s3_xfer *x, struct buf *q)
{
    struct buf pfx = {0};
    full_key(x->s3, x->req->key, &pfx);
    query_param(q, "list-type", "2");
    if (x->req->delim)
        query_param(q, "delimiter", x->req->delim);
    if (x->page.next_token)
        query_param(q, "continuation-token", x->page.next_token);
    else if (x->page.last_key)
        query_param(q, "start-after", x->page.last_key);
    query_param(q, "prefix", pfx.p ? pfx.p : "");
    buf_free(&pfx);
}

static const char *method_of(enum store_op op)
{
    static const char *const m[STORE_NOPS] = {"GET", "PUT", "HEAD", "DELETE", "GET", "PUT"};
    return m[op];
}

static size_t on_read(char *dst, size_t size, size_t nmemb, void *ud)
{
    struct s3_xfer *x = ud;
    size_t left = x->req->size - x->up_off, n = size * nmemb;
    if (n > left)
        n = left;
    if (n == 0)
        return 0; /* an empty PUT, or a COPY: no body */
    memcpy(dst, (const char *)x->req->data + x->up_off, n);
    x->up_off += n;
    return n;
}

static int on_seek(void *ud, curl_off_t off, int origin)
{
    struct s3_xfer *x = ud;
    if (origin != SEEK_SET || off < 0 || (size_t)off > x->req->size)
        return CURL_SEEKFUNC_FAIL;
    x->up_off = (size_t)off;
    return CURL_SEEKFUNC_OK;
}

static size_t on_write(char *src, size_t size, size_t nmemb, void *ud)
{
    struct s3_xfer *x = ud;
    buf_append(&x->resp, src, size * nmemb);
    return size * nmemb;
}

static time_t parse_http_date(const char *v)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!strptime(v, "%a, %d %b %Y %H:%M:%S", &tm))
        return 0;
    return timegm(&tm);
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *ud)
{
    struct s3_xfer *x = ud;
    size_t n = size * nmemb;
    char h[4096]; /* a metadata value may be up to 2 KiB */
    if (n >= sizeof h)
        return n;
    memcpy(h, line, n);
    h[n] = '\0';
    while (n && (h[n - 1] == '\r' || h[n - 1] == '\n' || h[n - 1] == ' '))
        h[--n] = '\0';
    char *colon = strchr(h, ':');
    if (!colon)
        return size * nmemb;
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    struct store_obj *o = &x->req->obj;
    if (strcasecmp(h, "ETag") == 0) {
        size_t len = strlen(v);
        if (len >= 2 && v[0] == '"' && v[len - 1] == '"')
            snprintf(o->etag, sizeof o->etag, "%.*s", (int)(len - 2), v + 1);
        else
            snprintf(o->etag, sizeof o->etag, "%s", v);
    } else if (strcasecmp(h, "Content-Length") == 0 &&
               (x->req->op == STORE_GET || x->req->op == STORE_HEAD))
        o->size = strtoull(v, NULL, 10);
    else if (strcasecmp(h, "Content-Type") == 0 &&
             (x->req->op == STORE_GET || x->req->op == STORE_HEAD))
        snprintf(x->req->rtype, sizeof x->req->rtype, "%s", v);
    else if (strncasecmp(h, "x-amz-meta-", 11) == 0 && h[11] &&
             (x->req->op == STORE_GET || x->req->op == STORE_HEAD)) {
        struct store_req *r = x->req;
        if (r->nrmeta == x->meta_cap) {
            x->meta_cap = x->meta_cap ? 2 * x->meta_cap : 8;
            r->rmeta = xrealloc(r->rmeta, x->meta_cap * sizeof *r->rmeta);
        }
        char *name = xstrdup(h + 11);
        for (char *c = name; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        r->rmeta[r->nrmeta].name = name;
        r->rmeta[r->nrmeta++].value = xstrdup(v);
    } else if (strcasecmp(h, "Content-Range") == 0) {
        const char *slash = strrchr(v, '/');
        if (slash && slash[1] != '*')
            x->range_total = strtoull(slash + 1, NULL, 10);
        if (strncmp(v, "bytes ", 6) == 0 && v[6] >= '0' && v[6] <= '9') {
            x->range_first = strtoull(v + 6, NULL, 10);
            x->has_range = 1;
        }
    } else if (strcasecmp(h, "Last-Modified") == 0)
        o->mtime = parse_http_date(v);
    return size * nmemb;
}

static struct curl_slist *add_hdr(struct curl_slist *l, const char *name, const char *value)
{
    char *line = xasprintf("%s: %s", name, value);
    struct curl_slist *n = curl_slist_append(l, line);
    free(line);
    if (!n) {
        fprintf(stderr, "buoy: out of memory building HTTP headers\n");
        abort();
    }
    return n;
}

/* The headers a request carries beyond the ones every request does. */
struct extra_hdrs {
    char *name[8 + 2 * 64];
    char *value[8 + 2 * 64];
    size_t n;
};

static void extra_add(struct extra_hdrs *xh, char *name, char *value)
{
    if (xh->n == sizeof xh->name / sizeof xh->name[0]) {
        fprintf(stderr, "buoy: too many headers for one request (bug)\n");
        abort();
    }
    xh->name[xh->n] = name;
    xh->value[xh->n++] = value;
}

static void extra_headers_free(struct extra_hdrs *xh)
{
    for (size_t i = 0; i < xh->n; i++) {
        free(xh->name[i]);
        free(xh->value[i]);
    }
    xh->n = 0;
}

/* Content-Type and x-amz-meta-* for a PUT or a replacing COPY; the copy
 * source, its directive and its condition for a COPY.  store_submit has
 * checked the names and values (printable ASCII, no surrounding space), so
 * they need no quoting; at most 2 KiB of metadata means few entries. */
static void extra_headers(struct s3_store *s3, const struct store_req *r, struct extra_hdrs *xh)
{
    if (r->op == STORE_COPY) {
        struct buf src = {0}, enc = {0};
        buf_printf(&src, "%s/", s3->bucket);
        full_key(s3, r->src_key, &src);
        sigv4_uri_encode(&enc, src.p, src.len, 1);
        extra_add(xh, xstrdup("x-amz-copy-source"), buf_steal(&enc, NULL));
        buf_free(&src);
        extra_add(xh, xstrdup("x-amz-metadata-directive"),
                  xstrdup(r->meta_replace ? "REPLACE" : "COPY"));
        if (r->cond == STORE_IF_MATCH)
            extra_add(xh, xstrdup("x-amz-copy-source-if-match"), xasprintf("\"%s\"", r->if_etag));
    }
    if (r->op == STORE_PUT || (r->op == STORE_COPY && r->meta_replace)) {
        extra_add(xh, xstrdup("content-type"),
                  xstrdup(r->content_type ? r->content_type : "binary/octet-stream"));
        for (size_t i = 0; i < r->nmeta && i < 64; i++) {
            char *name = xasprintf("x-amz-meta-%s", r->meta[i].name);
            for (char *c = name; *c; c++)
                *c = (char)tolower((unsigned char)*c);
            extra_add(xh, name, xstrdup(r->meta[i].value));
        }
    }
}

/* Signs and configures x->easy for x->req.  -1 with the request failed. */
static int prepare(struct s3_xfer *x)
{
    struct s3_store *s3 = x->s3;
    struct store_req *r = x->req;
    const struct aws_creds *cr;
    char err[256], amz_date[17], payload_hash[65], range[64];
    struct buf path = {0}, url = {0}, query = {0}, auth = {0}, host = {0};
    int rc = -1;

    if (creds_get(s3->creds, &cr, err, sizeof err) < 0) {
        /* Credentials worked at open; failing to refresh them now (the
         * metadata service being slow, say) is worth retrying. */
        store_fail(&s3->base, r, STORE_ETRANSIENT, "%s", err);
        return -1;
    }
    if (s3->virtual_host)
        buf_printf(&host, "%s.%s", s3->bucket, s3->host);
    else
        buf_puts(&host, s3->host);

    /* path: unencoded for the signer; encoded for the URL */
    if (!s3->virtual_host) {
        buf_putc(&path, '/');
        buf_puts(&path, s3->bucket);
    }
    if (r->op == STORE_LIST) {
        if (s3->virtual_host)
            buf_putc(&path, '/');
        list_query(x, &query);
    } else {
        buf_putc(&path, '/');
        full_key(s3, r->key, &path);
    }
    buf_printf(&url, "%s://%s", s3->scheme, host.p);
    sigv4_uri_encode(&url, path.p, path.len, 1);
    if (query.len)
        buf_printf(&url, "?%s", query.p);

    clock_amz_date(time(NULL), amz_date);
    if (r->op != STORE_PUT || r->size == 0)
        snprintf(payload_hash, sizeof payload_hash, "%s", SIGV4_EMPTY_SHA256);
    else if (s3->unsigned_payload)
        snprintf(payload_hash, sizeof payload_hash, "%s", SIGV4_UNSIGNED_PAYLOAD);
    else
        sha256_hex(r->data, r->size, payload_hash);

    /* Every header we send but Authorization, Range, the conditions and
     * Expect is signed: S3 requires the x-amz-* ones to be. */
    struct extra_hdrs xh = {0};
    extra_headers(s3, r, &xh);
    size_t nsh = 0;
    struct sigv4_header *sh = xcalloc(4 + xh.n, sizeof *sh);
    sh[nsh++] = (struct sigv4_header){"host", host.p};
    sh[nsh++] = (struct sigv4_header){"x-amz-content-sha256", payload_hash};
    sh[nsh++] = (struct sigv4_header){"x-amz-date", amz_date};
    if (cr->token)
        sh[nsh++] = (struct sigv4_header){"x-amz-security-token", cr->token};
    for (size_t i = 0; i < xh.n; i++)
        sh[nsh++] = (struct sigv4_header){xh.name[i], xh.value[i]};
    struct sigv4_request sreq = {
        .method = method_of(r->op),
        .path = path.p,
        .query = query.p,
        .headers = sh,
        .nheaders = nsh,
        .payload_hash = payload_hash,
        .normalize_path = 0,
    };
    struct sigv4_key key = {
        .access_key = cr->access_key,
        .secret_key = cr->secret_key,
        .region = s3->region,
        .service = "s3",
        .amz_date = amz_date,
    };
    sigv4_authorization(&sreq, &key, &auth);

    struct curl_slist *h = NULL;
    h = add_hdr(h, "Host", host.p);
    h = add_hdr(h, "x-amz-content-sha256", payload_hash);
    h = add_hdr(h, "x-amz-date", amz_date);
    if (cr->token)
        h = add_hdr(h, "x-amz-security-token", cr->token);
    h = add_hdr(h, "Authorization", auth.p);
    h = curl_slist_append(h, "Expect:");
    for (size_t i = 0; i < xh.n; i++)
        h = add_hdr(h, xh.name[i], xh.value[i]);
    free(sh);
    extra_headers_free(&xh);
    if (r->cond == STORE_IF_NONE_MATCH)
        h = add_hdr(h, "If-None-Match", "*");
    else if (r->cond == STORE_IF_MATCH && r->op != STORE_COPY) {
        char q[STORE_ETAG_MAX + 2];
        snprintf(q, sizeof q, "\"%s\"", r->if_etag);
        h = add_hdr(h, "If-Match", q);
    }
    if (r->op == STORE_GET && (r->off || r->len)) {
        if (r->len)
            snprintf(range, sizeof range, "bytes=%llu-%llu", (unsigned long long)r->off,
                     (unsigned long long)(r->off + r->len - 1));
        else
            snprintf(range, sizeof range, "bytes=%llu-", (unsigned long long)r->off);
        h = add_hdr(h, "Range", range);
    }
    x->hdrs = h;

    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, url.p);
    /* S3 keys are not paths: "./z" and "x/../y" go to the server as they are */
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->curl_err);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, s3->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, s3->request_timeout_ms);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 30L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    switch (r->op) {
    case STORE_PUT:
    case STORE_COPY: /* a PUT without a body */
        x->up_off = 0;
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(e, CURLOPT_READDATA, x);
        curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(e, CURLOPT_SEEKDATA, x);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->size);
        break;
    case STORE_HEAD:
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
        break;
    case STORE_DELETE:
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE");
        break;
    default:
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        break;
    }
    rc = 0;
    buf_free(&path);
    buf_free(&url);
    buf_free(&query);
    buf_free(&auth);
    buf_free(&host);
    return rc;
}

/* --- transfers --- */

static struct s3_xfer *xfer_get(struct s3_store *s3)
{
    struct s3_xfer *x = s3->free_xfers;
    if (x) {
        s3->free_xfers = x->next_free;
        curl_easy_reset(x->easy);
    } else {
        x = xcalloc(1, sizeof *x);
        x->easy = curl_easy_init();
        if (!x->easy) {
            fprintf(stderr, "buoy: curl_easy_init failed\n");
            abort();
        }
        x->s3 = s3;
    }
    return x;
}

static void xfer_put(struct s3_store *s3, struct s3_xfer *x)
{
    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;
    buf_free(&x->resp);
    s3_list_page_clear(&x->page);
    store_list_free(x->page.v, x->page.n);
    store_prefixes_free(x->page.pfx, x->page.npfx);
    x->meta_cap = 0;
    memset(&x->page, 0, sizeof x->page);
    x->req = NULL;
    x->curl_err[0] = '\0';
    x->has_range = 0;
    x->range_first = x->range_total = 0;
    x->next_free = s3->free_xfers;
    s3->free_xfers = x;
}

static void start(struct s3_store *s3, struct store_req *r, struct s3_xfer *x)
{
    if (!x) {
        x = xfer_get(s3);
        x->req = r;
        r->attempts++;
    }
    if (prepare(x) < 0) {
        xfer_put(s3, x);
        store_complete(&s3->base, r);
        return;
    }
    CURLMcode mc = curl_multi_add_handle(s3->multi, x->easy);
    if (mc != CURLM_OK) {
        store_fail(&s3->base, r, STORE_EFATAL, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
        xfer_put(s3, x);
        store_complete(&s3->base, r);
        return;
    }
    s3->base.stats->requests[r->op]++;
    s3->active++;
}

enum store_err s3_classify(long status, const char *code)
{
    if (status == 404)
        return strcmp(code, "NoSuchBucket") == 0 ? STORE_EFATAL : STORE_ENOTFOUND;
    if (status == 412)
        return STORE_EPRECOND;
    if (status == 409)
        return strcmp(code, "BucketAlreadyExists") == 0 ? STORE_EFATAL : STORE_ECONFLICT;
    if (status == 401 || status == 403)
        return STORE_EAUTH;
    if (status == 429 || (status == 503 && strcmp(code, "SlowDown") == 0))
        return STORE_ETHROTTLED;
    if (status == 400 && (strcmp(code, "RequestTimeout") == 0 ||
                          strcmp(code, "ExpiredToken") == 0 ||
                          strcmp(code, "TokenRefreshRequired") == 0))
        return strcmp(code, "RequestTimeout") == 0 ? STORE_ETRANSIENT : STORE_EAUTH;
    if ((status >= 500 && status != 501 && status != 505) || status == 408)
        return STORE_ETRANSIENT;
    return STORE_EFATAL;
}

static const char *hint(enum store_err e, const char *code)
{
    if (strcmp(code, "NoSuchBucket") == 0)
        return " (create the bucket or fix the URL)";
    if (strcmp(code, "SignatureDoesNotMatch") == 0)
        return " (check the secret key)";
    if (strcmp(code, "InvalidAccessKeyId") == 0)
        return " (check the access key)";
    if (strcmp(code, "RequestTimeTooSkewed") == 0)
        return " (fix this machine's clock)";
    if (e == STORE_EAUTH)
        return " (check the credentials and the bucket policy)";
    return "";
}

static enum store_err curl_class(CURLcode c)
{
    switch (c) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
        return STORE_ETRANSIENT;
    default:
        return STORE_EFATAL;
    }
}

/* A LIST page came back: keep its entries and ask for the next, or finish. */
static int list_page_done(struct s3_store *s3, struct s3_xfer *x)
{
    struct store_req *r = x->req;
    size_t skip = *s3->prefix ? strlen(s3->prefix) + 1 : 0;
    if (s3_parse_list(x->resp.p, x->resp.len, skip, &x->page) < 0) {
        store_fail(&s3->base, r, STORE_ETRANSIENT, "malformed ListObjectsV2 answer");
        return 0;
    }
    if (x->page.truncated && !x->page.next_token && !x->page.last_key) {
        store_fail(&s3->base, r, STORE_ETRANSIENT,
                   "truncated listing without a continuation token or keys");
        return 0;
    }
    if (x->page.truncated) {
        buf_reset(&x->resp);
        curl_slist_free_all(x->hdrs);
        x->hdrs = NULL;
        curl_easy_reset(x->easy);
        start(s3, r, x);
        return 1;
    }
    r->list = x->page.v;
    r->nlist = x->page.n;
    x->page.v = NULL;
    x->page.n = x->page.cap = 0;
    /* sorted already by S3; a start-after restart may repeat one */
    r->nprefixes = store_prefixes_sort(x->page.pfx, x->page.npfx);
    r->prefixes = x->page.pfx;
    if (!r->nprefixes) {
        free(r->prefixes);
        r->prefixes = NULL;
    }
    x->page.pfx = NULL;
    x->page.npfx = x->page.pfxcap = 0;
    return 0;
}

/* CopyObject answered 2xx: its body is a CopyObjectResult, or an <Error>
 * that S3 sends with 200 when a copy fails after it began (which AWS says to
 * treat as a 5xx: retry). */
static void copy_done(struct s3_store *s3, struct store_req *r, const struct buf *body)
{
    char code[128], msg[256];
    int rc = s3_parse_copy(body->p, body->len, r->obj.etag, sizeof r->obj.etag, code, sizeof code,
                           msg, sizeof msg);
    if (rc == 1)
        store_fail(&s3->base, r, STORE_ETRANSIENT, "HTTP 200 with an error: %s%s%s", code,
                   msg[0] ? ": " : "", msg);
    else if (rc < 0)
        store_fail(&s3->base, r, STORE_ETRANSIENT, "malformed CopyObject answer (no ETag)");
}

/* A server may send more than the range asked for: the whole object with
 * 200 (Range ignored), or a wider 206 (s3rver answers "bytes=0-0" with all
 * of it).  got holds the bytes from offset first on: cut out what r asked. */
static int trim_range(struct s3_store *s3, struct store_req *r, struct buf *got, uint64_t first)
{
    if (r->off < first || r->off - first > got->len ||
        (r->off - first == got->len && got->len)) {
        store_fail(&s3->base, r, STORE_EFATAL,
                   "asked for bytes from %llu, the server sent %zu bytes from %llu",
                   (unsigned long long)r->off, got->len, (unsigned long long)first);
        return -1;
    }
    if (first == 0 && !r->obj.size)
        r->obj.size = got->len; /* a 200 answer: the whole object */
    size_t skip = (size_t)(r->off - first), n = got->len - skip;
    if (r->len && r->len < n)
        n = r->len;
    memmove(got->p, got->p + skip, n);
    got->len = n;
    got->p[n] = '\0';
    return 0;
}

static void finish(struct s3_store *s3, CURL *e, CURLcode cc)
{
    struct s3_xfer *x;
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(s3->multi, e);
    s3->active--;
    struct store_req *r = x->req;

    if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
        cc == CURLE_COULDNT_RESOLVE_PROXY) {
        long os_errno = 0;
        curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os_errno);
        store_fail(&s3->base, r, STORE_ETRANSIENT, "cannot %s %s://%s%s%s%s: %s; check %s",
                   cc == CURLE_COULDNT_CONNECT ? "connect to" : "resolve the host name of", s3->scheme,
                   s3->virtual_host ? s3->bucket : "", s3->virtual_host ? "." : "", s3->host,
                   s3->ep_source, cc == CURLE_COULDNT_CONNECT && os_errno
                                      ? strerror((int)os_errno)
                                      : (x->curl_err[0] ? x->curl_err : curl_easy_strerror(cc)),
                   s3->ep_hint);
        r->unreachable = 1;
    } else if (cc != CURLE_OK) {
        store_fail(&s3->base, r, curl_class(cc), "%s",
                   x->curl_err[0] ? x->curl_err : curl_easy_strerror(cc));
    } else if (status >= 200 && status < 300) {
        s3->base.stats->bytes_down += x->resp.len;
        if (r->op == STORE_PUT)
            s3->base.stats->bytes_up += r->size;
        if (r->op == STORE_GET) {
            uint64_t first = status == 206 && x->has_range ? x->range_first : 0;
            if ((r->off || r->len) && (status == 200 || status == 206) &&
                trim_range(s3, r, &x->resp, first) < 0) {
                xfer_put(s3, x);
                store_complete(&s3->base, r);
                return;
            }
            /* Content-Range knows the whole object's size; Content-Length
             * only this answer's (the headers may come in either order). */
            if (status == 206 && x->range_total)
                r->obj.size = x->range_total;
            else if (!r->obj.size)
                r->obj.size = x->resp.len;
            r->body = x->resp;
            memset(&x->resp, 0, sizeof x->resp);
        } else if (r->op == STORE_LIST && list_page_done(s3, x))
            return; /* the next page is on its way */
        else if (r->op == STORE_COPY)
            copy_done(s3, r, &x->resp);
        if (r->op == STORE_GET || r->op == STORE_HEAD)
            store_meta_sort(r->rmeta, r->nrmeta);
    } else {
        char code[128], msg[256];
        s3_parse_error(x->resp.p, x->resp.len, code, sizeof code, msg, sizeof msg);
        if (!code[0] && status == 404)
            snprintf(code, sizeof code, "NoSuchKey");
        enum store_err se = s3_classify(status, code);
        if (status == 404 && se == STORE_ENOTFOUND && r->op == STORE_COPY)
            store_fail(&s3->base, r, se, "no such source object (%s)", code);
        else if (status == 404 && se == STORE_ENOTFOUND)
            store_fail(&s3->base, r, se, "no such object");
        else if (status == 412 && r->op == STORE_COPY)
            store_fail(&s3->base, r, se, "the source's ETag is not %s (x-amz-copy-source-if-match)",
                       r->if_etag);
        else if (status == 412 && r->cond == STORE_IF_MATCH)
            store_fail(&s3->base, r, se, "If-Match %s: the object's ETag differs", r->if_etag);
        else if (status == 412 && r->cond == STORE_IF_NONE_MATCH)
            store_fail(&s3->base, r, se, "If-None-Match: the object exists");
        else if (strcmp(code, "NoSuchBucket") == 0)
            store_fail(&s3->base, r, se, "bucket '%s' does not exist%s", s3->bucket, hint(se, code));
        else
            store_fail(&s3->base, r, se, "HTTP %ld %s%s%s%s", status, code[0] ? code : "",
                       msg[0] ? ": " : "", msg, hint(se, code));
    }
    if (r->err) { /* an error answer's headers are not the object's */
        store_meta_free(r->rmeta, r->nrmeta);
        r->rmeta = NULL;
        r->nrmeta = 0;
        r->rtype[0] = '\0';
    }
    xfer_put(s3, x);
    store_complete(&s3->base, r);
}

static void pump(struct s3_store *s3)
{
    while (s3->qhead && s3->active < s3->max_inflight) {
        struct store_req *r = s3->qhead;
        s3->qhead = r->qnext;
        if (!s3->qhead)
            s3->qtail = NULL;
        start(s3, r, NULL);
    }
}

static void s3_submit(struct store *s, struct store_req *r)
{
    struct s3_store *s3 = S3_OF(s);
    r->qnext = NULL;
    if (s3->qtail)
        s3->qtail->qnext = r;
    else
        s3->qhead = r;
    s3->qtail = r;
}

static int queued(const struct s3_store *s3)
{
    int n = 0;
    for (const struct store_req *r = s3->qhead; r; r = r->qnext)
        n++;
    return n;
}

static int s3_run(struct store *s, int timeout_ms)
{
    struct s3_store *s3 = S3_OF(s);
    uint64_t end = clock_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    int running, msgs;
    int did = 0;

    for (;;) {
        pump(s3);
        if (s3->active == 0)
            break;
        curl_multi_perform(s3->multi, &running);
        CURLMsg *m;
        while ((m = curl_multi_info_read(s3->multi, &msgs)))
            if (m->msg == CURLMSG_DONE) {
                finish(s3, m->easy_handle, m->data.result);
                did = 1;
            }
        /* Return as soon as something completed, so callers can react. */
        uint64_t now = clock_mono_ms();
        if (did || now >= end || (s3->active == 0 && !s3->qhead) ||
            __atomic_exchange_n(&s->woken, 0, __ATOMIC_ACQ_REL))
            break;
        curl_multi_poll(s3->multi, NULL, 0, (int)(end - now), NULL);
    }
    pump(s3);
    return s3->active + queued(s3);
}

static void s3_close(struct store *s)
{
    struct s3_store *s3 = S3_OF(s);
    while (s3->active || s3->qhead)
        s3_run(s, 1000);
    while (s3->free_xfers) {
        struct s3_xfer *x = s3->free_xfers;
        s3->free_xfers = x->next_free;
        curl_easy_cleanup(x->easy);
        free(x);
    }
    curl_multi_cleanup(s3->multi);
    creds_close(s3->creds);
    free(s3->bucket);
    free(s3->prefix);
    free(s3->scheme);
    free(s3->host);
    free(s3->region);
    free(s->url);
    free(s3);
}

static void s3_wakeup(struct store *s)
{
    __atomic_store_n(&s->woken, 1, __ATOMIC_RELEASE);
    curl_multi_wakeup(S3_OF(s)->multi);
}

static const struct store_ops s3_ops = {
    .name = "s3", .submit = s3_submit, .run = s3_run, .close = s3_close, .wakeup = s3_wakeup,
};

/* "http://host:port[/]" -> scheme and host[:port].  -1 if malformed. */
static int parse_endpoint(const char *ep, char **scheme, char **host)
{
    const char *sep = strstr(ep, "://");
    if (!sep || (strncmp(ep, "http", 4) != 0))
        return -1;
    *scheme = xstrndup(ep, (size_t)(sep - ep));
    if (strcmp(*scheme, "http") != 0 && strcmp(*scheme, "https") != 0) {
        free(*scheme);
        return -1;
    }
    const char *h = sep + 3;
    size_t n = strcspn(h, "/?#");
    if (n == 0 || h[n] == '?' || h[n] == '#' || (h[n] == '/' && h[n + 1])) {
        free(*scheme);
        return -1;
    }
    *host = xstrndup(h, n);
    return 0;
}

static int bucket_ok(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63)
        return 0;
    for (const char *p = b; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-' || *p == '.' ||
              *p == '_'))
            return 0;
    return 1;
}

struct store *store_s3_open(const char *bucket, const char *prefix, const char *url,
                            const struct store_opts *o, char *err, size_t errlen)
{
    struct s3_store *s3;
    char cerr[256];

    if (!bucket_ok(bucket)) {
        snprintf(err, errlen, "%s: '%s' is not a valid bucket name (3-63 of a-z 0-9 . - _)", url,
                 bucket);
        return NULL;
    }
    pthread_once(&curl_once, curl_init_once);
    s3 = xcalloc(1, sizeof *s3);
    s3->base.ops = &s3_ops;
    s3->base.stats = &s3->stats_storage;
    s3->base.url = xstrdup(url);
    s3->bucket = xstrdup(bucket);
    s3->prefix = xstrdup(prefix);

    const char *region = o->region;
    if (!region || !*region)
        region = getenv("AWS_REGION");
    if (!region || !*region)
        region = getenv("AWS_DEFAULT_REGION");
    if (!region || !*region)
        region = "us-east-1";
    s3->region = xstrdup(region);

    /* The flag wins, then the AWS tools' variables, the S3 one first. */
    const char *endpoint = o->endpoint;
    s3->ep_source = " (--endpoint)";
    const char *ignore = getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
    int env_ok = !ignore || !(strcasecmp(ignore, "true") == 0 || strcmp(ignore, "1") == 0);
    if ((!endpoint || !*endpoint) && env_ok) {
        endpoint = getenv("AWS_ENDPOINT_URL_S3");
        s3->ep_source = " ($AWS_ENDPOINT_URL_S3)";
        if (!endpoint || !*endpoint) {
            endpoint = getenv("AWS_ENDPOINT_URL");
            s3->ep_source = " ($AWS_ENDPOINT_URL)";
        }
    }
    if (endpoint && *endpoint) {
        s3->ep_hint = "the endpoint and that its server is running";
        if (parse_endpoint(endpoint, &s3->scheme, &s3->host) < 0) {
            snprintf(err, errlen, "bad endpoint '%s'%s: use http(s)://host[:port]", endpoint,
                     s3->ep_source);
            goto fail;
        }
        s3->virtual_host = o->addressing == STORE_ADDR_VIRTUAL;
        if (s3->virtual_host && (isdigit((unsigned char)s3->host[strlen(s3->host) - 1]) ||
                                 s3->host[0] == '[') &&
            strspn(s3->host, "0123456789.:[]") == strlen(s3->host)) {
            snprintf(err, errlen,
                     "%s: virtual-hosted addressing needs a host name in the endpoint, not the "
                     "address %s; use --addressing path or a name such as localhost",
                     url, s3->host);
            goto fail;
        }
    } else {
        s3->ep_source = "";
        s3->ep_hint = "the network, the region, or give --endpoint for another S3 server";
        s3->scheme = xstrdup("https");
        s3->host = xasprintf("s3.%s.amazonaws.com", s3->region);
        s3->virtual_host = o->addressing == STORE_ADDR_VIRTUAL ||
                           (o->addressing == STORE_ADDR_AUTO && !strchr(bucket, '.'));
    }
    s3->unsigned_payload = o->unsigned_payload;
    s3->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 5000;
    s3->request_timeout_ms = o->request_timeout_ms > 0 ? o->request_timeout_ms : 120000;
    s3->max_inflight = o->max_inflight > 0 ? o->max_inflight : 64;

    s3->creds = creds_open(o->profile, cerr, sizeof cerr);
    if (!s3->creds) {
        snprintf(err, errlen, "%s: %s", url, cerr);
        goto fail;
    }
    s3->multi = curl_multi_init();
    if (!s3->multi) {
        snprintf(err, errlen, "%s: curl_multi_init failed", url);
        goto fail;
    }
    curl_multi_setopt(s3->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)s3->max_inflight);
    curl_multi_setopt(s3->multi, CURLMOPT_MAXCONNECTS, (long)s3->max_inflight);
    log_debug("%s: %s://%s%s region %s, %s addressing", url, s3->scheme,
              s3->virtual_host ? "<bucket>." : "", s3->host, s3->region,
              s3->virtual_host ? "virtual-hosted" : "path-style");
    return &s3->base;
fail:
    creds_close(s3->creds);
    free(s3->bucket);
    free(s3->prefix);
    free(s3->scheme);
    free(s3->host);
    free(s3->region);
    free(s3->base.url);
    free(s3);
    return NULL;
}
