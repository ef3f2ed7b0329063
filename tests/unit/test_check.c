/* test_check.c - health check bookkeeping (src/ha/check.c): rise and fall
 * hysteresis, the grace time, local restarts then failover, and the check
 * kinds run for real against this machine (a process by pid file and by
 * name, a TCP listener on loopback, a command). */
#include "ha/check.h"
#include "ha/ha_conf.h"
#include "tap.h"
#include "util/log.h"
#include "util/mem.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char err[512];

static struct ha_conf conf;

static struct ha_item *item(const char *line)
{
    char *text = xasprintf("node a\npeer b 10.0.0.2\nlease_store /tmp/x\n%s\n", line);
    ha_conf_free(&conf);
    if (ha_conf_load_string(&conf, text, "t.conf", (const uint8_t *)"0123456789", 10, err,
                            sizeof err) < 0)
        bail_out(err);
    free(text);
    return &conf.checks[0];
}

static void test_hysteresis(void)
{
    struct check c;
    check_init(&c, item("check x command true fall=3 rise=2 restarts=2 interval=1s"));
    check_arm(&c, 1000, 0);
    uint64_t t = 1000;
    is_int(check_record(&c, 0, t += 1000), CV_NONE, "one failure: nothing");
    is_int(check_record(&c, 0, t += 1000), CV_NONE, "two failures: nothing");
    is_int(check_record(&c, 1, t += 1000), CV_NONE, "a success resets the count");
    is_int(check_record(&c, 0, t += 1000), CV_NONE, "failure 1 again");
    is_int(check_record(&c, 0, t += 1000), CV_NONE, "failure 2");
    is_int(check_record(&c, 0, t += 1000), CV_RESTART, "failure 3 (fall): restart 1");
    ok(!c.up && c.restarts == 1, "down, one restart used");
    check_arm(&c, t, 1);
    ok(c.up && c.restarts == 1, "re-armed after the restart, the count kept");
    for (int i = 0; i < 2; i++)
        check_record(&c, 0, t += 1000);
    is_int(check_record(&c, 0, t += 1000), CV_RESTART, "down again: restart 2");
    check_arm(&c, t, 1);
    for (int i = 0; i < 2; i++)
        check_record(&c, 0, t += 1000);
    is_int(check_record(&c, 0, t += 1000), CV_FAILOVER, "down a third time: fail over");
    check_arm(&c, t, 0);
    is_int(c.restarts, 0, "activation resets the restarts");
    /* rise */
    check_init(&c, item("check x command true fall=1 rise=2 restarts=5"));
    check_arm(&c, 0, 0);
    is_int(check_record(&c, 0, 1), CV_RESTART, "fall=1: the first failure counts");
    check_record(&c, 1, 2);
    ok(!c.up, "rise=2: one success is not enough");
    check_record(&c, 1, 3);
    ok(c.up, "two are");
}

static void test_grace(void)
{
    struct check c;
    check_init(&c, item("check x command true fall=1 grace=5s"));
    check_arm(&c, 1000, 0);
    is_int(check_record(&c, 0, 2000), CV_NONE, "failures within the grace time do not count");
    is_int(check_record(&c, 0, 5999), CV_NONE, "still in grace");
    is_int(check_record(&c, 0, 6000), CV_RESTART, "after it they do");
}

static void test_kinds(void)
{
    struct check c;
    char why[256], *line;
    check_init(&c, item("check x command \"exit 0\""));
    ok(check_run(&c, why, sizeof why) == 0, "command exit 0 passes");
    check_init(&c, item("check x command \"echo broken; exit 3\""));
    ok(check_run(&c, why, sizeof why) < 0 && strstr(why, "exited 3: broken"),
       "command exit 3 fails, saying so (%s)", why);
    check_init(&c, item("check x command \"sleep 5\" timeout=200ms"));
    ok(check_run(&c, why, sizeof why) < 0 && strstr(why, "timed out"), "a slow command times out");

    char pf[] = "/tmp/buoy-test-check-XXXXXX";
    int fd = mkstemp(pf);
    dprintf(fd, "%d\n", (int)getpid());
    close(fd);
    line = xasprintf("check x process pidfile=%s", pf);
    check_init(&c, item(line));
    free(line);
    ok(check_run(&c, why, sizeof why) == 0, "process by pid file: ourselves");
    fd = open(pf, O_WRONLY | O_TRUNC);
    dprintf(fd, "999999999\n");
    close(fd);
    ok(check_run(&c, why, sizeof why) < 0 && strstr(why, "is not running"), "a dead pid fails");
    unlink(pf);
    ok(check_run(&c, why, sizeof why) < 0 && strstr(why, "pid file"), "no pid file fails");
    check_init(&c, item("check x process name=test_check"));
    ok(check_run(&c, why, sizeof why) == 0, "process by name: ourselves");
    check_init(&c, item("check x process name=no-such-process-here"));
    ok(check_run(&c, why, sizeof why) < 0, "an absent name fails");

    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    ok(bind(s, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(s, 4) == 0 &&
           getsockname(s, (struct sockaddr *)&sa, &sl) == 0,
       "a listener on loopback");
    line = xasprintf("check x tcp 127.0.0.1:%d", ntohs(sa.sin_port));
    check_init(&c, item(line));
    free(line);
    ok(check_run(&c, why, sizeof why) == 0, "tcp connect to it passes");
    close(s);
    ok(check_run(&c, why, sizeof why) < 0 && strstr(why, "connect"), "closed: it fails (%s)", why);
}

int main(void)
{
    plan_no_plan();
    log_set_level(LOGL_ERROR);
    test_hysteresis();
    test_grace();
    test_kinds();
    ha_conf_free(&conf);
    return done_testing();
}
