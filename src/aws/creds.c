/* creds.c - find AWS credentials and keep temporary ones fresh (see creds.h).
 *
 * A provider is bound to one source when it is opened:
 *   environment  AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY [+ AWS_SESSION_TOKEN]
 *   profile      one section of the shared credentials file (INI)
 *   instance     the EC2 instance role, over IMDSv2
 * Only the instance source expires, so only it is ever fetched again.
 *
 * Rules:
 *   1. An explicit profile (the creds_open argument, like `aws --profile`)
 *      skips the environment, as the AWS CLI does; $AWS_PROFILE does not.
 *   2. A named profile (argument or $AWS_PROFILE) that is missing, or any
 *      profile holding half a key pair, is an error; only the implicit
 *      "default" profile may be absent and fall through to the instance role.
 *   3. Secrets never reach a log line or an error message, and are wiped
 *      before their memory is freed.
 *   4. A failed refresh of credentials that have not yet expired keeps the old
 *      ones (with a warning) and is not retried for REFRESH_BACKOFF_MS, so a
 *      dead metadata service cannot add its timeout to every request.
 *
 * Not thread-safe: callers that share a provider hold their own lock across
 * creds_get and their use of the result. */
#include "aws/creds.h"

#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define DEFAULT_MARGIN_S   300
#define REFRESH_BACKOFF_MS 10000
#define IMDS_DEFAULT       "http://169.254.169.254"
#define IMDS_TOKEN_TTL     "21600"
#define IMDS_MAX_BODY      (64 * 1024)

#define NO_CREDS_MSG                                                                               \
    "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, add a profile to "           \
    "~/.aws/credentials, or run on EC2 with an instance role"

enum creds_kind { CREDS_ENV, CREDS_PROFILE, CREDS_INSTANCE };

struct creds_provider {
    enum creds_kind kind;
    struct aws_creds cur;
    char *source;         /* owns the string cur.source points at */
    char *endpoint;       /* instance: IMDS base URL, no trailing slash */
    int margin;           /* seconds */
    unsigned fetches;     /* successful fetches */
    uint64_t retry_after; /* clock_mono_ms before which a refresh is not retried */
    int curl_inited;
};


static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static void wipe_free(char *s)
{
    if (!s)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}

static void creds_clear(struct aws_creds *c)
{
    free(c->access_key);
    wipe_free(c->secret_key);
    wipe_free(c->token);
    memset(c, 0, sizeof *c);
}

/* ---- environment ---------------------------------------------------------------------------- */

/* 1: found, 0: not configured, -1: error. */
static int load_env(struct aws_creds *c, char *err, size_t errlen)
{
    const char *id = env_nonempty("AWS_ACCESS_KEY_ID");
    const char *secret = env_nonempty("AWS_SECRET_ACCESS_KEY");
    const char *token = env_nonempty("AWS_SESSION_TOKEN");

    if (!id && !secret)
        return 0;
    if (!id || !secret) {
        set_err(err, errlen,
                "%s is set but %s is not: set both in the environment or unset both",
                id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
        return -1;
    }
    c->access_key = xstrdup(id);
    c->secret_key = xstrdup(secret);
    c->token = token ? xstrdup(token) : NULL;
    c->expires = 0;
    return 1;
}

/* ---- shared credentials file ---------------------------------------------------------------- */

static char *home_dir(void)
{
    const char *home = env_nonempty("HOME");
    struct passwd *pw;

    if (home)
        return xstrdup(home);
    pw = getpwuid(getuid());
    return xstrdup(pw && pw->pw_dir ? pw->pw_dir : "/");
}

/* $AWS_SHARED_CREDENTIALS_FILE (with a leading ~/ expanded) or ~/.aws/credentials. */
static char *credentials_path(void)
{
    const char *env = env_nonempty("AWS_SHARED_CREDENTIALS_FILE");
    char *home, *path;

    if (env && strncmp(env, "~/", 2) != 0)
        return xstrdup(env);
    home = home_dir();
    path = env ? xasprintf("%s/%s", home, env + 2) : xasprintf("%s/.aws/credentials", home);
    free(home);
    return path;
}

/* Parser state for one pass over the file, looking for one section. */
struct ini_state {
    const char *path;
    const char *want;   /* section name */
    unsigned lineno;
    int in_want;        /* inside [want] */
    int found;          /* saw [want] */
    char *id, *secret, *token;
};

static char *trim(char *s)
{
    char *end;

    while (isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

static void ini_set(char **slot, const char *value)
{
    wipe_free(*slot);
    *slot = *value ? xstrdup(value) : NULL;
}

static int ini_line(struct ini_state *st, char *line, char *err, size_t errlen)
{
    char *s = trim(line), *eq, *key;

    st->lineno++;
    if (*s == '\0' || *s == '#' || *s == ';')
        return 0;
    if (*s == '[') {
        size_t n = strlen(s);
        if (s[n - 1] != ']') {
            set_err(err, errlen, "%s:%u: section header lacks its closing ']'; fix the line",
                    st->path, st->lineno);
            return -1;
        }
        s[n - 1] = '\0';
        st->in_want = strcmp(trim(s + 1), st->want) == 0;
        st->found |= st->in_want;
        return 0;
    }
    eq = strchr(s, '=');
    if (!eq) {
        set_err(err, errlen, "%s:%u: expected 'key = value' or '[profile]'; fix the line",
                st->path, st->lineno);
        return -1;
    }
    if (!st->in_want)
        return 0;
    *eq = '\0';
    key = trim(s);
    s = trim(eq + 1);
    if (strcasecmp(key, "aws_access_key_id") == 0)
        ini_set(&st->id, s);
    else if (strcasecmp(key, "aws_secret_access_key") == 0)
        ini_set(&st->secret, s);
    else if (strcasecmp(key, "aws_session_token") == 0)
        ini_set(&st->token, s);
    return 0;
}

static void ini_free(struct ini_state *st)
{
    free(st->id);
    wipe_free(st->secret);
    wipe_free(st->token);
}

/* Cross-field checks once the whole file is read; 1: found, 0: absent, -1: error. */
static int ini_finish(struct ini_state *st, int named, struct aws_creds *c, char *err,
                      size_t errlen)
{
    if (!st->found || (!st->id && !st->secret)) {
        if (!named)
            return 0;
        if (!st->found)
            set_err(err, errlen,
                    "profile '%s' not found in %s; add a [%s] section or use another profile",
                    st->want, st->path, st->want);
        else
            set_err(err, errlen,
                    "profile '%s' in %s has no aws_access_key_id/aws_secret_access_key "
                    "(only static keys are supported); add them",
                    st->want, st->path);
        return -1;
    }
    if (!st->id || !st->secret) {
        set_err(err, errlen, "profile '%s' in %s has no %s; add it", st->want, st->path,
                st->id ? "aws_secret_access_key" : "aws_access_key_id");
        return -1;
    }
    c->access_key = st->id;
    c->secret_key = st->secret;
    c->token = st->token;
    c->expires = 0;
    st->id = st->secret = st->token = NULL;
    return 1;
}

/* named: the profile was asked for by name, so its absence is an error. */
static int load_profile(const char *profile, int named, struct aws_creds *c, char *err,
                        size_t errlen)
{
    char *path = credentials_path();
    struct ini_state st = {.path = path, .want = profile};
    char *line = NULL;
    size_t cap = 0;
    int ret = -1;
    FILE *f;

    f = fopen(path, "r");
    if (!f) {
        if (errno != ENOENT)
            set_err(err, errlen, "cannot read %s: %s; fix its permissions or set "
                    "AWS_SHARED_CREDENTIALS_FILE", path, strerror(errno));
        else if (named)
            set_err(err, errlen, "profile '%s' not found: %s does not exist; create it or set "
                    "AWS_SHARED_CREDENTIALS_FILE", profile, path);
        else
            ret = 0;
        goto out;
    }
    while (getline(&line, &cap, f) >= 0)
        if (ini_line(&st, line, err, errlen) < 0)
            goto out_close;
    if (ferror(f)) {
        set_err(err, errlen, "cannot read %s: %s", path, strerror(errno));
        goto out_close;
    }
    ret = ini_finish(&st, named, c, err, errlen);
out_close:
    fclose(f);
out:
    if (line)
        explicit_bzero(line, cap);
    free(line);
    ini_free(&st);
    free(path);
    return ret;
}

/* ---- EC2 instance metadata (IMDSv2) --------------------------------------------------------- */

static int imds_disabled(void)
{
    const char *v = getenv("AWS_EC2_METADATA_DISABLED");
    return v && strcasecmp(v, "true") == 0;
}

static char *imds_endpoint(void)
{
    const char *env = env_nonempty("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    char *ep = xstrdup(env ? env : IMDS_DEFAULT);
    size_t n = strlen(ep);

    while (n > 0 && ep[n - 1] == '/')
        ep[--n] = '\0';
    return ep;
}

static size_t imds_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct buf *b = arg;
    size_t n = size * nmemb;

    if (b->len + n > IMDS_MAX_BODY)
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
    buf_append(b, data, n);
    return n;
}

/* One request to endpoint+path.  token NULL: the PUT for a session token;
 * else a GET carrying it.  On 200, fills body and returns 0; else -1 and a
 * reason without the endpoint in why.  *status gets the HTTP status (0 when
 * there was no response). */
static int imds_request(const char *endpoint, const char *path, const char *token,
                        struct buf *body, long *status, char *why, size_t whylen)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = NULL;
    char *url = xasprintf("%s%s", endpoint, path);
    char *hdr;
    CURLcode rc;
    CURL *h;

    *status = 0;
    h = curl_easy_init();
    if (!h) {
        set_err(why, whylen, "curl_easy_init failed");
        free(url);
        return -1;
    }
    if (token)
        hdr = xasprintf("X-aws-ec2-metadata-token: %s", token);
    else
        hdr = xstrdup("X-aws-ec2-metadata-token-ttl-seconds: " IMDS_TOKEN_TTL);
    hdrs = curl_slist_append(hdrs, hdr);
    wipe_free(hdr);

    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    if (!token)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*"); /* link-local: never via a proxy */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 3000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, imds_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);

    buf_reset(body);
    buf_reserve(body, 4096); /* non-NULL even when empty; rarely regrown (no wipe then) */
    rc = curl_easy_perform(h);
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    free(url);

    if (rc != CURLE_OK) {
        set_err(why, whylen, "%s %s: %s", token ? "GET" : "PUT", path,
                *errbuf ? errbuf : curl_easy_strerror(rc));
        return -1;
    }
    if (*status != 200) {
        set_err(why, whylen, "%s %s: HTTP %ld", token ? "GET" : "PUT", path, *status);
        return -1;
    }
    return 0;
}

/* IAM role names: letters, digits and +=,.@_- (so safe in a URL path). */
static int role_name_ok(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("+=,.@_-", *s))
            return 0;
    return 1;
}

static const char *json_str(struct json_object *o, const char *key)
{
    struct json_object *v;

    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* Parses the role's credential document into c. */
static int imds_parse(const char *role, const char *doc, struct aws_creds *c, char *why,
                      size_t whylen)
{
    struct json_object *o = json_tokener_parse(doc);
    const char *code, *id, *secret, *token, *exp;
    time_t expires;
    int ret = -1;

    if (!o || !json_object_is_type(o, json_type_object)) {
        set_err(why, whylen, "role %s: credentials are not a JSON object", role);
        goto out;
    }
    code = json_str(o, "Code");
    if (code && strcmp(code, "Success") != 0) {
        set_err(why, whylen, "role %s: metadata service says Code %s", role, code);
        goto out;
    }
    id = json_str(o, "AccessKeyId");
    secret = json_str(o, "SecretAccessKey");
    token = json_str(o, "Token");
    exp = json_str(o, "Expiration");
    if (!id || !*id || !secret || !*secret || !token || !*token || !exp) {
        set_err(why, whylen, "role %s: credentials lack %s", role,
                !id || !*id           ? "AccessKeyId"
                : !secret || !*secret ? "SecretAccessKey"
                : !token || !*token   ? "Token"
                                      : "Expiration");
        goto out;
    }
    expires = clock_parse_iso8601(exp);
    if (expires <= 0) {
        set_err(why, whylen, "role %s: cannot parse Expiration '%s'", role, exp);
        goto out;
    }
    c->access_key = xstrdup(id);
    c->secret_key = xstrdup(secret);
    c->token = xstrdup(token);
    c->expires = expires;
    ret = 0;
out:
    json_object_put(o);
    return ret;
}

/* Token, role name, then the role's credentials.  On success fills c and
 * *role (caller frees). */
static int imds_fetch(const char *endpoint, struct aws_creds *c, char **role, char *why,
                      size_t whylen)
{
    static const char creds_path[] = "/latest/meta-data/iam/security-credentials/";
    struct buf body = {0};
    char *token = NULL, *name = NULL, *path = NULL;
    long status;
    int ret = -1;

    if (imds_request(endpoint, "/latest/api/token", NULL, &body, &status, why, whylen) < 0)
        goto out;
    token = xstrdup(trim(body.p));
    if (!*token) {
        set_err(why, whylen, "PUT /latest/api/token: empty token");
        goto out;
    }
    if (imds_request(endpoint, creds_path, token, &body, &status, why, whylen) < 0) {
        if (status == 404)
            set_err(why, whylen, "no IAM role attached to this instance (GET %s: HTTP 404)",
                    creds_path);
        goto out;
    }
    /* One role per instance profile; the first line names it. */
    body.p[strcspn(body.p, "\r\n")] = '\0';
    name = xstrdup(trim(body.p));
    if (!role_name_ok(name)) {
        set_err(why, whylen, "GET %s: %s", creds_path,
                *name ? "unexpected role name" : "no IAM role attached to this instance");
        goto out;
    }
    path = xasprintf("%s%s", creds_path, name);
    if (imds_request(endpoint, path, token, &body, &status, why, whylen) < 0)
        goto out;
    if (imds_parse(name, body.p, c, why, whylen) < 0)
        goto out;
    *role = name;
    name = NULL;
    ret = 0;
out:
    if (body.p)
        explicit_bzero(body.p, body.len);
    buf_free(&body);
    wipe_free(token);
    free(name);
    free(path);
    return ret;
}

/* Fetches into p->cur, replacing what was there only on success. */
static int instance_refresh(struct creds_provider *p, char *why, size_t whylen)
{
    struct aws_creds fresh = {0};
    char *role = NULL;

    if (imds_fetch(p->endpoint, &fresh, &role, why, whylen) < 0)
        return -1;
    creds_clear(&p->cur);
    free(p->source);
    p->cur = fresh;
    p->source = xasprintf("instance role %s", role);
    p->cur.source = p->source;
    p->fetches++;
    log_debug("credentials from instance role %s, expire in %lld s", role,
              (long long)(p->cur.expires - time(NULL)));
    free(role);
    return 0;
}

/* ---- the provider --------------------------------------------------------------------------- */

static struct creds_provider *provider_new(enum creds_kind kind)
{
    struct creds_provider *p = xcalloc(1, sizeof *p);
    p->kind = kind;
    p->margin = DEFAULT_MARGIN_S;
    return p;
}

/* The static sources: 1 with *pp set, 0 when none applies, -1 on error. */
static int open_static(const char *profile, struct creds_provider **pp, char *err, size_t errlen)
{
    const char *env_profile = env_nonempty("AWS_PROFILE");
    const char *name = profile ? profile : env_profile ? env_profile : "default";
    struct aws_creds c = {0};
    int r;

    if (!profile) {
        r = load_env(&c, err, errlen);
        if (r < 0)
            return -1;
        if (r > 0) {
            *pp = provider_new(CREDS_ENV);
            (*pp)->source = xstrdup("environment");
            goto found;
        }
    }
    r = load_profile(name, profile || env_profile, &c, err, errlen);
    if (r <= 0)
        return r;
    *pp = provider_new(CREDS_PROFILE);
    (*pp)->source = xasprintf("profile %s", name);
found:
    (*pp)->cur = c;
    (*pp)->cur.source = (*pp)->source;
    (*pp)->fetches = 1;
    return 1;
}

struct creds_provider *creds_open(const char *profile, char *err, size_t errlen)
{
    struct creds_provider *p = NULL;
    char why[256];
    int r;

    r = open_static(profile, &p, err, errlen);
    if (r < 0)
        return NULL;
    if (r > 0) {
        log_debug("credentials from %s", p->source);
        return p;
    }
    if (imds_disabled()) {
        set_err(err, errlen, "%s (instance metadata disabled by AWS_EC2_METADATA_DISABLED)",
                NO_CREDS_MSG);
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        set_err(err, errlen, "%s (curl_global_init failed)", NO_CREDS_MSG);
        return NULL;
    }
    p = provider_new(CREDS_INSTANCE);
    p->curl_inited = 1;
    p->endpoint = imds_endpoint();
    if (instance_refresh(p, why, sizeof why) < 0) {
        set_err(err, errlen, "%s (instance metadata at %s: %s)", NO_CREDS_MSG, p->endpoint, why);
        creds_close(p);
        return NULL;
    }
    return p;
}

int creds_get(struct creds_provider *p, const struct aws_creds **out, char *err, size_t errlen)
{
    time_t now = time(NULL);
    char why[256];

    if (p->kind != CREDS_INSTANCE || p->cur.expires - now > p->margin)
        goto done;
    if (p->cur.expires > now && clock_mono_ms() < p->retry_after)
        goto done;
    if (instance_refresh(p, why, sizeof why) == 0) {
        p->retry_after = 0;
        goto done;
    }
    if (p->cur.expires <= now) {
        set_err(err, errlen,
                "%s expired %lld s ago and cannot be refreshed from %s: %s; check the "
                "instance's IAM role and metadata options",
                p->source, (long long)(now - p->cur.expires), p->endpoint, why);
        return -1;
    }
    log_warn("cannot refresh credentials of %s from %s: %s; using the current ones, which "
             "expire in %lld s",
             p->source, p->endpoint, why, (long long)(p->cur.expires - now));
    p->retry_after = clock_mono_ms() + REFRESH_BACKOFF_MS;
done:
    *out = &p->cur;
    return 0;
}

void creds_set_refresh_margin(struct creds_provider *p, int seconds)
{
    p->margin = seconds < 0 ? 0 : seconds;
}

unsigned creds_fetch_count(const struct creds_provider *p)
{
    return p->fetches;
}

void creds_close(struct creds_provider *p)
{
    if (!p)
        return;
    creds_clear(&p->cur);
    free(p->source);
    free(p->endpoint);
    if (p->curl_inited)
        curl_global_cleanup();
    free(p);
}

int creds_imds_get(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
    struct buf body = {0};
    char why[256];
    long status;
    int ret = -1;

    if (imds_disabled()) {
        set_err(err, errlen, "EC2 metadata service disabled (AWS_EC2_METADATA_DISABLED=true)");
        return -1;
    }
    char *ep = imds_endpoint();
    if (imds_request(ep, "/latest/api/token", NULL, &body, &status, why, sizeof why) < 0) {
        set_err(err, errlen, "EC2 metadata service %s: %s", ep, why);
        goto out;
    }
    char *token = xstrdup(trim(body.p));
    if (imds_request(ep, path, token, &body, &status, why, sizeof why) < 0)
        set_err(err, errlen, "EC2 metadata service %s: %s", ep, why);
    else if (snprintf(out, outlen, "%s", trim(body.p)) >= (int)outlen)
        set_err(err, errlen, "EC2 metadata service %s: GET %s: answer too long", ep, path);
    else
        ret = 0;
    wipe_free(token);
out:
    buf_free(&body);
    free(ep);
    return ret;
}
