/* test_ha_conf.c - unit tests of buoy-ha.conf parsing (src/ha/ha_conf.c),
 * the resource and check option checks (res.c, check.c), and a fuzz loop
 * over the parser (wireguard-tools' fuzz/config.c idea): random edits of a
 * good file either load or fail with one line naming the file, never crash
 * (ASan/UBSan watch). */
#include "ha/ha_conf.h"
#include "tap.h"
#include "util/mem.h"
#include "util/rng.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/buoy-test-haconf-XXXXXX";
static char keyfile[256], err[1024];
static const uint8_t KEY[] = "0123456789abcdef";

static const char GOOD[] = "# a two-node cluster\n"
                           "node alpha\n"
                           "peer beta 10.0.0.2\n"
                           "peer gamma 10.0.0.3:7000\n"
                           "keepalive 200ms\n"
                           "deadtime 2\n"
                           "warntime 1s\n"
                           "initdead 4s\n"
                           "auto_failback on\n"
                           "preferred alpha\n"
                           "lease_store s3://bucket/ha\n"
                           "lease_time 1500ms\n"
                           "resource vip ipaddr 10.0.0.100/24 dev=eth0\n"
                           "resource eip exec /etc/init.d/elastic-ip running=\"I have\"\n"
                           "resource web service nginx\n"
                           "check http http http://10.0.0.100/ status=200 body=OK fall=2 "
                           "restarts=1 resource=web\n"
                           "check pid process pidfile=/run/nginx.pid\n";

static int load(const char *text)
{
    struct ha_conf c;
    int r = ha_conf_load_string(&c, text, "test.conf", KEY, 16, err, sizeof err);
    ha_conf_free(&c);
    return r;
}

/* Loads GOOD with the line of extra's key replaced by extra (for keys
 * that may appear once), or with extra appended. */
static int load_with(const char *extra)
{
    size_t kl = strcspn(extra, " ");
    char key[64];
    snprintf(key, sizeof key, "\n%.*s ", (int)kl, extra);
    const char *at = strstr(GOOD, key);
    char *t;
    int once = strncmp(extra, "peer ", 5) && strncmp(extra, "resource ", 9) &&
               strncmp(extra, "check ", 6) && strncmp(extra, "node ", 5);
    if (at && once) {
        const char *eol = strchr(at + 1, '\n');
        t = xasprintf("%.*s\n%s%s", (int)(at - GOOD), GOOD, extra, eol);
    } else
        t = xasprintf("%s%s\n", GOOD, extra);
    int r = load(t);
    free(t);
    return r;
}

static void test_good(void)
{
    struct ha_conf c;
    int r = ha_conf_load_string(&c, GOOD, "test.conf", KEY, 16, err, sizeof err);
    ok(r == 0, "the example loads (%s)", r ? err : "ok");
    if (r == 0) {
        ok(strcmp(c.node, "alpha") == 0 && c.npeers == 2, "node and two peers");
        ok(c.peers[0].port == 694 && c.peers[1].port == 7000, "port 694 by default, :7000 given");
        ok(c.keepalive_ms == 200 && c.deadtime_ms == 2000 && c.warntime_ms == 1000 &&
               c.initdead_ms == 4000,
           "durations: 200ms, bare seconds, 1s");
        ok(c.auto_failback && strcmp(c.preferred, "alpha") == 0, "auto_failback and preferred");
        ok(c.nres == 3 && strcmp(c.res[1].kind, "exec") == 0 &&
               strcmp(ha_item_opt(&c.res[1], "running"), "I have") == 0,
           "resources in order, quoted option value");
        ok(c.nchecks == 2 && strcmp(ha_item_opt(&c.checks[0], "resource"), "web") == 0, "checks");
        ok(c.lease_time_ms == 1500 && c.lease_margin_ms == 187 && c.lease_poll_ms == 375,
           "lease margin and poll follow lease_time (%llu, %llu)",
           (unsigned long long)c.lease_margin_ms, (unsigned long long)c.lease_poll_ms);
    }
    ha_conf_free(&c);
}

struct bad {
    const char *line, *want;
};

static void test_bad(void)
{
    static const struct bad cases[] = {
        {"deadtime 400ms", "deadtime (400ms) must be more than 2 x keepalive"},
        {"frobnicate 1", "unknown key 'frobnicate'"},
        {"keepalive fast", "is not a duration"},
        {"keepalive 5ms", "out of range"},
        {"auto_failback maybe", "takes on or off"},
        {"port 70000", "takes a whole number from 1 to 65535"},
        {"peer beta 10.0.0.9", "listed twice"},
        {"peer delta 10.0.0.300", "not an IPv4 address"},
        {"peer alpha 10.0.0.9", "this node's own name"},
        {"node beta", "set twice"},
        {"preferred", "takes one value"},
        {"resource vip ipaddr 10.0.0.1/24 dev=eth1", "defined twice"},
        {"resource x ipaddr 10.0.0.1 dev=eth0", "ADDR/PREFIX"},
        {"resource x ipaddr 10.0.0.1/24", "needs dev="},
        {"resource x ipaddr 10.0.0.1/24 dev=eth0 colour=red", "no option colour="},
        {"resource x teleport now", "unknown resource kind 'teleport'"},
        {"resource x fsmount /dev/sdb data", "absolute path"},
        {"resource x ec2-eip not-an-ip", "not an IPv4 address"},
        {"resource x exec /bin/true status=sometimes", "use exit, output or none"},
        {"resource x service /etc/init.d/x", "a name, not a path"},
        {"resource x exec /bin/true timeout=1ms", "at least 100ms"},
        {"check c tcp localhost", "HOST:PORT"},
        {"check c http ftp://x/", "http:// or https:// URL"},
        {"check c process", "pidfile=FILE or name=NAME"},
        {"check c command \"true\" fall=0", "fall=0"},
        {"check c command \"true\" resource=nope", "names no resource"},
        {"check c ping 10.0.0.1", "unknown check kind 'ping'"},
        {"lease_margin 600ms", "must be below lease_time / 3"},
        {"lease_poll 2s", "must be below lease_time"},
        {"initdead 1s", "initdead (1000ms) must be at least deadtime"},
        {"warntime 3s", "warntime (3000ms) must be at least keepalive and below deadtime"},
        {"replay_window 300ms", "at least 2 x keepalive"},
        {"resource q exec \"/bin/true", "unterminated quote"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = '\0';
        int r = load_with(cases[i].line);
        ok(r < 0 && strstr(err, cases[i].want) && !strchr(err, '\n') &&
               strncmp(err, "test.conf:", 10) == 0,
           "refused: %s", cases[i].line);
        if (r == 0 || !strstr(err, cases[i].want))
            diag("  got: %s", r ? err : "(loaded)");
    }
    ok(load("node a\npeer b 10.0.0.2\n") < 0 && strstr(err, "no lease_store"),
       "lease_store is required");
    ok(load("peer b 10.0.0.2\nlease_store /x\n") < 0 && strstr(err, "no node line"),
       "node is required");
    ok(load("node a\nlease_store /x\n") < 0 && strstr(err, "no peer line"), "a peer is required");
    ok(load("node a\npeer b 10.0.0.2\nlease_store /x\nauto_failback on\n") < 0 &&
           strstr(err, "auto_failback on needs a preferred node"),
       "auto_failback needs a preferred node");
    ok(load("node a\npeer b 10.0.0.2\nlease_store /x\npreferred zed\n") < 0 &&
           strstr(err, "preferred zed is neither"),
       "preferred must be a node");
}

static void test_keyfile(void)
{
    struct ha_conf c;
    snprintf(keyfile, sizeof keyfile, "%s/key", dir);
    int fd = open(keyfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ok(fd >= 0 && write(fd, "a-long-enough-secret\n", 21) == 21, "write a key file");
    close(fd);
    chmod(keyfile, 0644);
    char *t = xasprintf("node a\npeer b 10.0.0.2\nlease_store /x\nauthkey %s\n", keyfile);
    int r = ha_conf_load_string(&c, t, "k.conf", NULL, 0, err, sizeof err);
    ha_conf_free(&c);
    ok(r < 0 && strstr(err, "has mode 0644; run chmod 600"), "a key file of mode 0644 is refused");
    chmod(keyfile, 0600);
    r = ha_conf_load_string(&c, t, "k.conf", NULL, 0, err, sizeof err);
    ok(r == 0 && c.keylen == 20 && memcmp(c.key, "a-long-enough-secret", 20) == 0,
       "mode 0600 loads; the key is the first line");
    ha_conf_free(&c);
    fd = open(keyfile, O_WRONLY | O_TRUNC);
    ok(write(fd, "short\n", 6) == 6, "shorten the key");
    close(fd);
    r = ha_conf_load_string(&c, t, "k.conf", NULL, 0, err, sizeof err);
    ha_conf_free(&c);
    ok(r < 0 && strstr(err, "shorter than 8 bytes"), "a key under 8 bytes is refused");
    free(t);
    t = xasprintf("node a\npeer b 10.0.0.2\nlease_store /x\n");
    r = ha_conf_load_string(&c, t, "k.conf", NULL, 0, err, sizeof err);
    ha_conf_free(&c);
    ok(r < 0 && strstr(err, "no authkey"), "authkey is required");
    free(t);
}

static void test_durations(void)
{
    uint64_t ms;
    ok(ha_parse_ms("2", &ms) == 0 && ms == 2000, "2 is seconds");
    ok(ha_parse_ms("1.5s", &ms) == 0 && ms == 1500, "1.5s");
    ok(ha_parse_ms("250ms", &ms) == 0 && ms == 250, "250ms");
    ok(ha_parse_ms("2m", &ms) == 0 && ms == 120000, "2m");
    ok(ha_parse_ms("-1", &ms) < 0 && ha_parse_ms("1h", &ms) < 0 && ha_parse_ms("", &ms) < 0 &&
           ha_parse_ms("nan", &ms) < 0 && ha_parse_ms("1e300", &ms) < 0,
       "negative, unknown units, empty, nan and huge are refused");
}

static void test_fuzz(void)
{
    struct rng g;
    rng_seed(&g, 7);
    size_t n = strlen(GOOD);
    char *t = xmalloc(n + 64);
    int loaded = 0, refused = 0, bad_msg = 0;
    static const char alphabet[] = " \t\n\"#=:/.-0123456789abcdefms";
    for (int i = 0; i < 20000; i++) {
        memcpy(t, GOOD, n + 1);
        int k = 1 + (int)rng_below(&g, 3);
        for (int j = 0; j < k; j++) {
            size_t at = rng_below(&g, n);
            if (rng_below(&g, 4) == 0)
                t[at] = (char)(1 + rng_below(&g, 255));
            else
                t[at] = alphabet[rng_below(&g, sizeof alphabet - 1)];
        }
        err[0] = '\0';
        if (load(t) == 0)
            loaded++;
        else {
            refused++;
            if (strncmp(err, "test.conf", 9) != 0 || strchr(err, '\n'))
                bad_msg++;
        }
    }
    free(t);
    ok(bad_msg == 0,
       "20,000 fuzzed configurations: %d loaded, %d refused, each with one line "
       "naming the file",
       loaded, refused);
}

/* Words, quoted words with escapes, and key="a b" values. */
static void test_tokens(void)
{
    char *tok[8], e[128];
    int n = ha_conf_tokens("a \"b c\" d=\"e \\\"f\\\" g\" h", tok, 8, e, sizeof e);
    ok(n == 4 && strcmp(tok[0], "a") == 0 && strcmp(tok[1], "b c") == 0 &&
           strcmp(tok[2], "d=e \"f\" g") == 0 && strcmp(tok[3], "h") == 0,
       "tokens: plain, quoted, key=\"quoted with escapes\", plain (%d)", n);
    for (int i = 0; i < n; i++)
        free(tok[i]);
    ok(ha_conf_tokens("x key=\"open", tok, 8, e, sizeof e) < 0 && strstr(e, "unterminated"),
       "an unterminated quote inside a word is refused: %s", e);
}

int main(void)
{
    plan_no_plan();
    test_tokens();
    if (!mkdtemp(dir))
        bail_out("mkdtemp");
    test_good();
    test_bad();
    test_keyfile();
    test_durations();
    test_fuzz();
    unlink(keyfile);
    rmdir(dir);
    return done_testing();
}
