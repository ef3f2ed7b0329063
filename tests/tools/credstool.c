/* credstool.c - resolve AWS credentials the way buoy does and describe them,
 * for tests/t0300-aws-creds.sh and for people debugging "which creds am I using".
 *
 *   credstool [--profile NAME] [--margin SECONDS] [--twice [--between CMD]] [--debug]
 *
 * Prints "key: value" lines: source, access_key, token (yes/no), expires
 * (ISO-8601 UTC or "never") and fetches (how often the source was read).
 * --twice calls creds_get a second time, after running CMD with sh -c when
 * --between is given, and describes the second result.  --margin applies to
 * the last creds_get only, so "--twice --margin 172800" shows whether a margin
 * longer than the creds' lifetime makes that second call refetch.  The secret
 * key and token are never printed.  Exit 0 on success, 1 with the error on
 * stderr, 2 on misuse. */
#include "aws/creds.h"
#include "util/log.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct opts {
    const char *profile;
    const char *between;
    int margin; /* -1: the provider's default */
    int twice;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: credstool [--profile NAME] [--margin SECONDS] [--twice [--between CMD]] "
               "[--debug]\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"profile", required_argument, NULL, 'p'}, {"margin", required_argument, NULL, 'm'},
        {"twice", no_argument, NULL, 't'},         {"between", required_argument, NULL, 'b'},
        {"debug", no_argument, NULL, 'd'},         {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    char *end;
    int c;

    while ((c = getopt_long(argc, argv, "p:m:tb:dh", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
            o->profile = optarg;
            break;
        case 'm':
            o->margin = (int)strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || o->margin < 0) {
                fprintf(stderr, "credstool: --margin wants seconds >= 0, not '%s'\n", optarg);
                return -1;
            }
            break;
        case 't':
            o->twice = 1;
            break;
        case 'b':
            o->between = optarg;
            break;
        case 'd':
            log_set_level(LOGL_DEBUG);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind != argc || (o->between && !o->twice)) {
        usage(stderr);
        return -1;
    }
    return 0;
}

static void describe(const struct aws_creds *c, unsigned fetches)
{
    char when[32] = "never";
    struct tm tm;

    if (c->expires) {
        gmtime_r(&c->expires, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    printf("source: %s\n", c->source);
    printf("access_key: %s\n", c->access_key);
    printf("token: %s\n", c->token ? "yes" : "no");
    printf("expires: %s\n", when);
    printf("fetches: %u\n", fetches);
}

int main(int argc, char **argv)
{
    struct opts o = {.margin = -1};
    const struct aws_creds *c;
    struct creds_provider *p;
    char err[512];
    int ret = 1;

    if (parse_opts(argc, argv, &o) < 0)
        return 2;
    p = creds_open(o.profile, err, sizeof err);
    if (!p) {
        fprintf(stderr, "credstool: %s\n", err);
        return 1;
    }
    if (o.twice) {
        if (creds_get(p, &c, err, sizeof err) < 0)
            goto fail;
        if (o.between && system(o.between) != 0) {
            fprintf(stderr, "credstool: --between command failed: %s\n", o.between);
            goto out;
        }
    }
    if (o.margin >= 0)
        creds_set_refresh_margin(p, o.margin);
    if (creds_get(p, &c, err, sizeof err) < 0)
        goto fail;
    describe(c, creds_fetch_count(p));
    ret = 0;
    goto out;
fail:
    fprintf(stderr, "credstool: %s\n", err);
out:
    creds_close(p);
    return ret;
}
