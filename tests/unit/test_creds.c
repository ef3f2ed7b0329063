/* test_creds.c - unit tests for src/aws/creds.c: the environment, the shared
 * credentials file (profiles, comments, spacing, errors), the "nothing
 * configured" error, and IMDSv2 against a tiny fake metadata server on
 * 127.0.0.1 run in a thread here (token handling, refresh, failed refresh,
 * expiry).  Only loopback is ever contacted: every case either disables the
 * metadata service or points it at a loopback port. */
#include "aws/creds.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"
#include "tap.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define NO_CREDS "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
#define NO_CREDS_FULL                                                                              \
    NO_CREDS ", add a profile to ~/.aws/credentials, or run on EC2 with an instance role"

static char tmpdir[] = "/tmp/test_creds.XXXXXX";

/* ---- environment helpers -------------------------------------------------------------------- */

static void clean_env(void)
{
    static const char *const vars[] = {
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",         "AWS_SESSION_TOKEN",
        "AWS_PROFILE",       "AWS_SHARED_CREDENTIALS_FILE",   "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    setenv("HOME", tmpdir, 1); /* never the real ~/.aws */
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
}

static char *write_file(const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        bail_out("cannot create a temp file");
    fputs(text, f);
    fclose(f);
    return path;
}

static int contains(const char *s, const char *sub)
{
    return s && strstr(s, sub) != NULL;
}

/* ---- environment ---------------------------------------------------------------------------- */

static void test_env(void)
{
    const struct aws_creds *c;
    struct creds_provider *p;
    char err[512] = "";

    clean_env();
    setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "env-secret", 1);
    p = creds_open(NULL, err, sizeof err);
    ok(p != NULL, "env: keys open (%s)", p ? "ok" : err);
    if (!p)
        return;
    is_int(creds_get(p, &c, err, sizeof err), 0, "env: creds_get succeeds");
    is_str(c->source, "environment", "env: source is the environment");
    is_str(c->access_key, "AKIAENV", "env: access key");
    is_str(c->secret_key, "env-secret", "env: secret key");
    ok(c->token == NULL, "env: no token without AWS_SESSION_TOKEN");
    is_int(c->expires, 0, "env: long-term keys do not expire");
    creds_set_refresh_margin(p, 100000);
    is_int(creds_get(p, &c, err, sizeof err), 0, "env: second creds_get succeeds");
    is_int(creds_fetch_count(p), 1, "env: read once, never refetched");
    creds_close(p);

    setenv("AWS_SESSION_TOKEN", "env-token", 1);
    p = creds_open(NULL, err, sizeof err);
    ok(p && creds_get(p, &c, err, sizeof err) == 0, "env: with session token");
    if (p)
        is_str(c->token, "env-token", "env: session token is used");
    creds_close(p);

    clean_env();
    setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
    p = creds_open(NULL, err, sizeof err);
    ok(p == NULL, "env: access key without secret is an error, not a fall-through");
    ok(contains(err, "AWS_SECRET_ACCESS_KEY is not"), "env: error names the missing variable");
    diag("%s", err);
    creds_close(p);
}

/* ---- shared credentials file ---------------------------------------------------------------- */

static const char creds_file[] =
    "# a comment\n"
    "; another comment\n"
    "\n"
    "[default]\n"
    "aws_access_key_id=AKIADEFAULT\n"
    "aws_secret_access_key=default-secret\n"
    "\n"
    "  [ prod ]  \n"
    "\taws_access_key_id   =   AKIAPROD  \r\n"
    "  # comment inside a section\n"
    "AWS_SECRET_ACCESS_KEY = prod/secret+with=chars\n"
    "aws_session_token = prod-token\n"
    "region = eu-west-1\n"
    "[staging]\n"
    "aws_access_key_id = AKIASTAGING\n"
    "aws_secret_access_key = staging-secret\n"
    "aws_session_token =\n"
    "[half]\n"
    "aws_access_key_id = AKIAHALF\n"
    "[sso]\n"
    "sso_start_url = https://example.invalid/start\n";

/* Opens a provider, expects success and the given source and key. */
static void expect_profile(const char *profile, const char *source, const char *key,
                           const char *what)
{
    const struct aws_creds *c;
    char err[512] = "";
    struct creds_provider *p = creds_open(profile, err, sizeof err);

    if (!ok(p != NULL && creds_get(p, &c, err, sizeof err) == 0, "%s: opens", what)) {
        diag("%s", err);
        creds_close(p);
        return;
    }
    is_str(c->source, source, "%s: source", what);
    is_str(c->access_key, key, "%s: access key", what);
    creds_close(p);
}

/* Opens a provider, expects failure with an error containing want. */
static void expect_error(const char *profile, const char *want, const char *what)
{
    char err[512] = "";
    struct creds_provider *p = creds_open(profile, err, sizeof err);

    ok(p == NULL, "%s: fails", what);
    if (!ok(contains(err, want), "%s: error says '%s'", what, want))
        diag("got: %s", err);
    ok(!contains(err, "default-secret") && !contains(err, "prod/secret") &&
           !contains(err, "staging-secret") && !contains(err, "prod-token"),
       "%s: error carries no secret", what);
    creds_close(p);
}

static void test_profiles(void)
{
    const struct aws_creds *c;
    struct creds_provider *p;
    char err[512] = "", want[512];
    char *path;

    clean_env();
    path = write_file("credentials", creds_file);
    setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);

    expect_profile(NULL, "profile default", "AKIADEFAULT", "no profile named: [default]");
    p = creds_open("prod", err, sizeof err);
    ok(p && creds_get(p, &c, err, sizeof err) == 0, "[prod] with spacing, CRLF, comments");
    if (p) {
        is_str(c->source, "profile prod", "[prod]: source");
        is_str(c->access_key, "AKIAPROD", "[prod]: key trimmed of tabs, spaces and CR");
        is_str(c->secret_key, "prod/secret+with=chars",
               "[prod]: upper-case key name, '=' in value");
        is_str(c->token, "prod-token", "[prod]: session token");
        is_int(c->expires, 0, "[prod]: does not expire");
    }
    creds_close(p);
    p = creds_open("staging", err, sizeof err);
    ok(p && creds_get(p, &c, err, sizeof err) == 0 && c->token == NULL,
       "[staging]: empty aws_session_token means none");
    creds_close(p);

    setenv("AWS_PROFILE", "staging", 1);
    expect_profile(NULL, "profile staging", "AKIASTAGING", "AWS_PROFILE=staging");
    expect_profile("prod", "profile prod", "AKIAPROD", "explicit profile beats AWS_PROFILE");
    setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "env-secret", 1);
    expect_profile(NULL, "environment", "AKIAENV", "environment beats AWS_PROFILE");
    expect_profile("prod", "profile prod", "AKIAPROD", "explicit profile beats environment");
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");

    snprintf(want, sizeof want, "profile 'nope' not found in %s", path);
    expect_error("nope", want, "explicit missing profile");
    setenv("AWS_PROFILE", "gone", 1);
    snprintf(want, sizeof want, "profile 'gone' not found in %s", path);
    expect_error(NULL, want, "AWS_PROFILE names a missing profile");
    unsetenv("AWS_PROFILE");
    expect_error("half", "profile 'half' in", "profile with only a key id");
    expect_error("half", "has no aws_secret_access_key", "profile with only a key id");
    expect_error("sso", "has no aws_access_key_id/aws_secret_access_key", "profile without keys");
    free(path);

    path = write_file("broken",
                      "[default]\naws_access_key_id = A\naws_secret_access_key prod/secret-typo\n");
    setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
    snprintf(want, sizeof want, "%s:3: expected 'key = value'", path);
    expect_error(NULL, want, "malformed line");
    free(path);

    path = write_file("nodefault", "[other]\naws_access_key_id = A\naws_secret_access_key = B\n");
    setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
    expect_error(NULL, NO_CREDS, "file without [default] falls through");
    free(path);

    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
    expect_error("prod", "profile 'prod' not found: /nonexistent/credentials does not exist",
                 "explicit profile, no file");
    expect_error(NULL, NO_CREDS, "no file, no explicit profile");

    /* The default location: $HOME/.aws/credentials. */
    unsetenv("AWS_SHARED_CREDENTIALS_FILE");
    path = xasprintf("%s/.aws", tmpdir);
    mkdir(path, 0700);
    free(path);
    path = write_file(".aws/credentials", creds_file);
    expect_profile("prod", "profile prod", "AKIAPROD", "~/.aws/credentials via HOME");
    free(path);
}

static void test_nothing(void)
{
    char err[512] = "";
    struct creds_provider *p;

    clean_env();
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
    p = creds_open(NULL, err, sizeof err);
    ok(p == NULL, "nothing configured: creds_open fails");
    ok(strncmp(err, NO_CREDS_FULL, strlen(NO_CREDS_FULL)) == 0,
       "nothing configured: the clear error");
    ok(strchr(err, '\n') == NULL, "nothing configured: error is one line");
    diag("%s", err);
}

/* ---- a fake instance metadata service ------------------------------------------------------- */

#define FAKE_TOKEN "fake-token-123"

enum fake_mode { FAKE_OK, FAKE_NO_ROLE, FAKE_BAD_JSON, FAKE_FAIL };

struct fake_imds {
    int fd, port;
    pthread_t thread;
    pthread_mutex_t lock;
    /* under lock: */
    int stop;
    enum fake_mode mode;
    time_t expiration;
    int requests, puts_with_ttl, gets_without_token;
};

static void fake_set(struct fake_imds *f, enum fake_mode mode, time_t expiration)
{
    pthread_mutex_lock(&f->lock);
    f->mode = mode;
    f->expiration = expiration;
    pthread_mutex_unlock(&f->lock);
}

static int fake_requests(struct fake_imds *f)
{
    pthread_mutex_lock(&f->lock);
    int n = f->requests;
    pthread_mutex_unlock(&f->lock);
    return n;
}

/* Reads one request head (no body is expected); 0 or -1. */
static int fake_read(int fd, char *req, size_t cap)
{
    size_t len = 0;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};

    while (len + 1 < cap) {
        if (poll(&pfd, 1, 2000) <= 0)
            return -1;
        ssize_t n = recv(fd, req + len, cap - 1 - len, 0);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n"))
            return 0;
    }
    return -1;
}

/* Decides the reply to one request; returns the status, body in body. */
static int fake_route(struct fake_imds *f, const char *req, char *body, size_t cap)
{
    static const char list[] = "GET /latest/meta-data/iam/security-credentials/ ";
    static const char role[] = "GET /latest/meta-data/iam/security-credentials/fake-role ";
    char when[32];
    struct tm tm;

    *body = '\0';
    f->requests++;
    if (strncmp(req, "PUT /latest/api/token ", 22) == 0) {
        if (!strcasestr(req, "\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\n"))
            return 400;
        f->puts_with_ttl++;
        snprintf(body, cap, FAKE_TOKEN);
        return 200;
    }
    if (!strcasestr(req, "\r\nX-aws-ec2-metadata-token: " FAKE_TOKEN "\r\n")) {
        f->gets_without_token++;
        return 401;
    }
    if (strncmp(req, list, strlen(list)) == 0) {
        if (f->mode == FAKE_NO_ROLE)
            return 404;
        snprintf(body, cap, "fake-role\n");
        return 200;
    }
    if (strncmp(req, role, strlen(role)) != 0)
        return 404;
    if (f->mode == FAKE_FAIL)
        return 500;
    if (f->mode == FAKE_BAD_JSON) {
        snprintf(body, cap, "{\"AccessKeyId\": ");
        return 200;
    }
    gmtime_r(&f->expiration, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(body, cap,
             "{\"Code\": \"Success\", \"Type\": \"AWS-HMAC\", \"AccessKeyId\": \"FAKEKEY\", "
             "\"SecretAccessKey\": \"fake-secret\", \"Token\": \"fake-session\", "
             "\"Expiration\": \"%s\"}",
             when);
    return 200;
}

static void fake_serve(struct fake_imds *f, int fd)
{
    char req[8192], body[1024], head[256];
    int status;

    if (fake_read(fd, req, sizeof req) < 0)
        return;
    pthread_mutex_lock(&f->lock);
    status = fake_route(f, req, body, sizeof body);
    pthread_mutex_unlock(&f->lock);
    snprintf(head, sizeof head,
             "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", status,
             strlen(body));
    if (send(fd, head, strlen(head), MSG_NOSIGNAL) > 0)
        send(fd, body, strlen(body), MSG_NOSIGNAL);
}

static void *fake_main(void *arg)
{
    struct fake_imds *f = arg;
    struct pollfd pfd = {.fd = f->fd, .events = POLLIN};

    for (;;) {
        pthread_mutex_lock(&f->lock);
        int stop = f->stop;
        pthread_mutex_unlock(&f->lock);
        if (stop)
            return NULL;
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        int c = accept(f->fd, NULL, NULL);
        if (c < 0)
            continue;
        fake_serve(f, c);
        close(c);
    }
}

/* A socket bound to 127.0.0.1 on a free port; listening or not. */
static int loopback_socket(int listening, int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        (listening && listen(fd, 16) < 0) || getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        bail_out("cannot set up a loopback socket");
    *port = ntohs(sa.sin_port);
    return fd;
}

static void fake_start(struct fake_imds *f)
{
    char url[64];

    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->lock, NULL);
    f->fd = loopback_socket(1, &f->port);
    if (pthread_create(&f->thread, NULL, fake_main, f) != 0)
        bail_out("cannot start the fake metadata server");
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", f->port); /* trailing '/' on purpose */
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url, 1);
}

static void fake_stop(struct fake_imds *f)
{
    pthread_mutex_lock(&f->lock);
    f->stop = 1;
    pthread_mutex_unlock(&f->lock);
    pthread_join(f->thread, NULL);
    close(f->fd);
    pthread_mutex_destroy(&f->lock);
}

/* ---- instance role -------------------------------------------------------------------------- */

static void test_imds_basic(void)
{
    time_t exp = time(NULL) + 3600;
    const struct aws_creds *c;
    struct creds_provider *p;
    struct fake_imds f;
    char err[512] = "";
    int before;

    clean_env();
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
    fake_start(&f);
    fake_set(&f, FAKE_OK, exp);

    p = creds_open(NULL, err, sizeof err);
    ok(p == NULL && contains(err, "disabled by AWS_EC2_METADATA_DISABLED"),
       "imds: AWS_EC2_METADATA_DISABLED=true skips it");
    is_int(fake_requests(&f), 0, "imds: disabled means no request at all");
    creds_close(p);

    unsetenv("AWS_EC2_METADATA_DISABLED");
    p = creds_open(NULL, err, sizeof err);
    if (!ok(p != NULL && creds_get(p, &c, err, sizeof err) == 0, "imds: creds from the role")) {
        diag("%s", err);
        creds_close(p);
        fake_stop(&f);
        return;
    }
    is_str(c->source, "instance role fake-role", "imds: source names the role");
    is_str(c->access_key, "FAKEKEY", "imds: access key");
    is_str(c->secret_key, "fake-secret", "imds: secret key");
    is_str(c->token, "fake-session", "imds: session token");
    is_int(c->expires, exp, "imds: Expiration parsed");
    is_int(f.puts_with_ttl, 1, "imds: one token PUT with the TTL header");
    is_int(f.gets_without_token, 0, "imds: every GET carries the token");
    is_int(creds_fetch_count(p), 1, "imds: one fetch so far");

    before = fake_requests(&f);
    creds_get(p, &c, err, sizeof err);
    is_int(creds_fetch_count(p), 1, "imds: an hour left > default margin: no refetch");
    is_int(fake_requests(&f), before, "imds: ... and no request");

    creds_set_refresh_margin(p, 7200);
    is_int(creds_get(p, &c, err, sizeof err), 0, "imds: margin 2 h: creds_get succeeds");
    is_int(creds_fetch_count(p), 2, "imds: margin 2 h > an hour left: refetched");
    is_int(fake_requests(&f), before + 3, "imds: token, role list, role creds");

    /* A failed refresh of still-valid creds keeps them, and waits before retrying. */
    fake_set(&f, FAKE_FAIL, exp);
    before = fake_requests(&f);
    is_int(creds_get(p, &c, err, sizeof err), 0, "imds: failed refresh still succeeds");
    is_str(c->access_key, "FAKEKEY", "imds: ... with the old creds");
    is_int(creds_fetch_count(p), 2, "imds: ... not counted as a fetch");
    ok(fake_requests(&f) > before, "imds: the refresh was attempted");
    before = fake_requests(&f);
    creds_get(p, &c, err, sizeof err);
    is_int(fake_requests(&f), before, "imds: no retry right after a failure");
    creds_close(p);
    fake_stop(&f);
}

static void test_imds_errors(void)
{
    const struct aws_creds *c;
    struct creds_provider *p;
    struct fake_imds f;
    char err[512] = "", url[64];
    int port, fd;

    clean_env();
    unsetenv("AWS_EC2_METADATA_DISABLED");
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
    fake_start(&f);

    fake_set(&f, FAKE_NO_ROLE, 0);
    p = creds_open(NULL, err, sizeof err);
    ok(p == NULL && contains(err, NO_CREDS) && contains(err, "no IAM role attached"),
       "imds: instance without a role");
    diag("%s", err);
    creds_close(p);

    fake_set(&f, FAKE_BAD_JSON, 0);
    p = creds_open(NULL, err, sizeof err);
    ok(p == NULL && contains(err, "role fake-role: credentials are not a JSON object"),
       "imds: malformed credentials document");
    creds_close(p);

    fake_set(&f, FAKE_FAIL, 0);
    p = creds_open(NULL, err, sizeof err);
    ok(p == NULL && contains(err, "fake-role: HTTP 500"), "imds: HTTP error status");
    ok(!contains(err, FAKE_TOKEN), "imds: error does not show the session token");
    creds_close(p);

    /* Expired credentials that cannot be refreshed are an error. */
    fake_set(&f, FAKE_OK, time(NULL) + 1);
    p = creds_open(NULL, err, sizeof err);
    ok(p != NULL, "imds: short-lived creds open");
    fake_stop(&f);
    if (p) {
        creds_set_refresh_margin(p, 0);
        clock_sleep_ms(2100);
        is_int(creds_get(p, &c, err, sizeof err), -1, "imds: expired and unrefreshable fails");
        ok(contains(err, "instance role fake-role expired"), "imds: error says so");
        diag("%s", err);
    }
    creds_close(p);

    /* Nothing listening. */
    fd = loopback_socket(0, &port);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url, 1);
    p = creds_open(NULL, err, sizeof err);
    ok(p == NULL && contains(err, NO_CREDS) && contains(err, url),
       "imds: unreachable service gives the clear error naming the endpoint");
    diag("%s", err);
    creds_close(p);
    close(fd);
}

/* ---- expiry timestamps ---------------------------------------------------------------------- */

static void test_iso8601(void)
{
    is_int(clock_parse_iso8601("2026-11-22T05:01:24Z"), 1795323684, "iso8601: IMDS format");
    is_int(clock_parse_iso8601("2026-11-22T05:01:24.250Z"), 1795323684, "iso8601: fraction");
    is_int(clock_parse_iso8601("2026-11-22T07:01:24+02:00"), 1795323684, "iso8601: offset");
    is_int(clock_parse_iso8601("2026-11-22T05:01:24"), -1, "iso8601: no zone is an error");
    is_int(clock_parse_iso8601("2026-11-22T05:01:24Zjunk"), -1, "iso8601: trailing junk");
    is_int(clock_parse_iso8601("2026-13-22T05:01:24Z"), -1, "iso8601: month 13");
}

static void rm_tmpdir(void)
{
    static const char *const files[] = {"credentials", "broken", "nodefault", ".aws/credentials",
                                        ".aws"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *path = xasprintf("%s/%s", tmpdir, files[i]);
        remove(path);
        free(path);
    }
    rmdir(tmpdir);
}

int main(void)
{
    plan_no_plan();
    if (!mkdtemp(tmpdir))
        bail_out("mkdtemp failed");
    log_set_level(LOGL_ERROR); /* the failed-refresh warning is expected */
    test_iso8601();
    test_env();
    test_profiles();
    test_nothing();
    test_imds_basic();
    test_imds_errors();
    rm_tmpdir();
    return done_testing();
}
