/* cmd_stats.c - "buoy stats MOUNTPOINT": a mounted volume's statistics.
 * MOUNTPOINT may also be the --fs-dir of buoy mount --fs, or any path in it.
 *
 * Reads MOUNTPOINT/stats (statsfile.h) and prints it for people, grouped,
 * with sizes in units and the hit ratio and cost spelled out; --json prints
 * every pair as a JSON object, numbers as numbers. */
#include "commands.h"
#include "fe/sys.h"
#include "util/size.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int is_number(const char *s)
{
    char *end;
    if (!*s)
        return 0;
    strtod(s, &end);
    return *end == '\0';
}

static void json(const char *text)
{
    printf("{");
    int first = 1;
    for (const char *p = text; *p;) {
        size_t l = strcspn(p, "\n");
        const char *sp = memchr(p, ' ', l);
        if (sp) {
            printf("%s\n  \"%.*s\": ", first ? "" : ",", (int)(sp - p), p);
            char val[1024];
            snprintf(val, sizeof val, "%.*s", (int)(l - (size_t)(sp + 1 - p)), sp + 1);
            if (is_number(val))
                printf("%s", val);
            else {
                putchar('"');
                for (const char *c = val; *c; c++)
                    if (*c == '"' || *c == '\\')
                        printf("\\%c", *c);
                    else if ((unsigned char)*c < 0x20)
                        printf("\\u%04x", *c);
                    else
                        putchar(*c);
                putchar('"');
            }
            first = 0;
        }
        p += l;
        if (*p)
            p++;
    }
    printf("\n}\n");
}

static const char *get(const char *text, const char *name)
{
    static char v[8][256];
    static int k;
    char *out = v[k++ % 8];
    return sys_stat_value(text, name, out, 256) == 0 ? out : "0";
}

static const char *sz(const char *text, const char *name)
{
    static char v[8][32];
    static int k;
    char *out = v[k++ % 8];
    size_format(strtoull(get(text, name), NULL, 10), out, 32);
    return out;
}

static void human(const char *t)
{
    printf("volume     %s (pid %s)%s%s\n", get(t, "url"), get(t, "pid"),
           strcmp(get(t, "error"), "1") == 0 ? "  ** IN ERROR STATE: see the log **" : "",
           strcmp(get(t, "stale"), "1") == 0 ? "  (busy: numbers of its last progress)" : "");
    if (strcmp(get(t, "error"), "1") == 0) {
        char why[600], note[1200];
        if (sys_stat_value(t, "error_reason", why, sizeof why) == 0)
            printf("error      %s\n", why);
        if (sys_stat_value(t, "unsaved_note", note, sizeof note) == 0)
            printf("unsaved    %s\n", note);
    }
    printf("size       %s, block size %s\n", sz(t, "size_bytes"), get(t, "block_size_bytes"));
    printf("written    %s by you; %s uploaded in %s segments (write amplification %s, "
           "compression %s)\n",
           sz(t, "bytes_written"), sz(t, "uploaded_bytes"), get(t, "segments_uploaded"),
           get(t, "write_amplification_ratio"), get(t, "compression_ratio"));
    printf("pending    %s not yet in the store; journal %s\n", sz(t, "pending_bytes"),
           sz(t, "journal_bytes"));
    printf("gc         garbage ratio %s; %s segments cleaned, %s copied, %s deleted\n",
           get(t, "garbage_ratio"), get(t, "gc_segments_cleaned"), sz(t, "gc_copied_bytes"),
           get(t, "segments_deleted"));
    printf("read       %s by you; %s fetched from the store (%s read ahead)\n",
           sz(t, "bytes_read"), sz(t, "fetched_bytes"), sz(t, "readahead_bytes"));
    printf("cache      %s of %s used, hit ratio %s\n", sz(t, "cache_used_bytes"),
           sz(t, "cache_capacity_bytes"), get(t, "cache_hit_ratio"));
    printf("errors     %s reads failed, %s checksum failures in data from the store%s\n",
           get(t, "read_errors"), get(t, "checksum_errors"),
           strcmp(get(t, "read_errors"), "0") || strcmp(get(t, "checksum_errors"), "0")
               ? " (the log names each object)"
               : "");
    printf("requests   GET %s, PUT %s, LIST %s, HEAD %s, DELETE %s, COPY %s; %s retries\n",
           get(t, "requests_get"), get(t, "requests_put"), get(t, "requests_list"),
           get(t, "requests_head"), get(t, "requests_delete"), get(t, "requests_copy"),
           get(t, "retries"));
    printf("transfer   %s up, %s down\n", sz(t, "store_up_bytes"), sz(t, "store_down_bytes"));
    printf("cost       $%s in requests (S3 standard: $0.005 per 1,000 PUT/COPY/LIST, $0.0004 per "
           "1,000 GET)\n",
           get(t, "request_cost_usd"));
    printf("memory     map %s (%s extents), cache index %s\n", sz(t, "map_memory_bytes"),
           get(t, "extents"), sz(t, "cache_index_memory_bytes"));
}

int cmd_stats(struct cli_opts *o, int argc, char **argv)
{
    char path[PATH_MAX + 8], real[PATH_MAX], mp[PATH_MAX];
    struct stat st;
    if (stat(argv[0], &st) == 0 && S_ISREG(st.st_mode)) /* buoy serve --stats-file */
        snprintf(path, sizeof path, "%s", argv[0]);
    else if (realpath(argv[0], real) && sys_buoy_mount_of(real, mp, sizeof mp, NULL, 0))
        snprintf(path, sizeof path, "%s/stats", mp); /* in the filesystem of buoy mount --fs */
    else
        snprintf(path, sizeof path, "%s/stats", argv[0]);
    char *t = sys_read_file(path);
    if (!t)
        return cli_error("%s: %s; is a buoy volume mounted at %s (or served with --stats-file)?",
                         path, strerror(errno), argv[0]);
    if (strncmp(t, "buoy_stats ", 11) != 0) {
        free(t);
        return cli_error("%s is not a buoy stats file", path);
    }
    if (o->json)
        json(t);
    else
        human(t);
    free(t);
    return EXIT_OK;
}
