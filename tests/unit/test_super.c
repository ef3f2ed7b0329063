/* test_super.c - the superblock's text form and the size parser. */
#include "tap.h"
#include "util/mem.h"
#include "util/size.h"
#include "vol/super.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static void test_sizes(void)
{
    static const struct {
        const char *in;
        int ok;
        uint64_t want;
    } cases[] = {
        {"4096", 1, 4096},         {"16G", 1, 16ull << 30},   {"16GiB", 1, 16ull << 30},
        {"512m", 1, 512ull << 20}, {"1.5T", 1, 3ull << 39},   {"8M", 1, 8 << 20},
        {"1K", 1, 1024},           {"0", 1, 0},               {"abc", 0, 0},
        {"", 0, 0},                {"-1G", 0, 0},             {"1.5", 0, 0},
        {"12Q", 0, 0},             {"1GB", 1, 1ull << 30},    {"1Gx", 0, 0},
        {"1.0000001K", 0, 0},      {"99999999999999999999", 0, 0}, {"1e3", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t v = 0;
        int rc = size_parse(cases[i].in, &v);
        if (cases[i].ok)
            ok(rc == 0 && v == cases[i].want, "size '%s' is %llu (got %llu)", cases[i].in,
               (unsigned long long)cases[i].want, (unsigned long long)v);
        else
            ok(rc < 0, "size '%s' is refused", cases[i].in);
    }
    char out[32];
    size_format(16ull << 30, out, sizeof out);
    is_str(out, "16 GiB", "16 GiB prints as such");
    size_format(4096, out, sizeof out);
    is_str(out, "4 KiB", "4096 prints as 4 KiB");
    size_format(1000, out, sizeof out);
    is_str(out, "1000 B", "1000 prints in bytes");
}

static struct vol_super sample(void)
{
    struct vol_super sb = {.version = 1, .size = 16ull << 30, .block_size = 4096,
                           .segment_size = 8 << 20, .compression = "none", .created = 1795237200};
    super_new_uuid(sb.uuid);
    return sb;
}

static void test_roundtrip(void)
{
    struct vol_super sb = sample(), back;
    struct buf b = {0};
    char err[256];
    super_encode(&sb, &b);
    ok(strncmp(b.p, "buoy-volume 1\nuuid ", 19) == 0, "the text starts with the version line");
    is_int(super_parse(b.p, b.len, &back, err, sizeof err), 0, "it parses back: %s", err);
    ok(memcmp(back.uuid, sb.uuid, 16) == 0 && back.size == sb.size &&
           back.block_size == sb.block_size && back.segment_size == sb.segment_size &&
           back.created == sb.created && strcmp(back.compression, "none") == 0,
       "every field survives");
    ok((sb.uuid[6] >> 4) == 4 && (sb.uuid[8] >> 6) == 2, "the uuid is a version 4 uuid");

    /* any changed byte before the check line is caught */
    int caught = 0, tried = 0;
    size_t check_at = (size_t)(strstr(b.p, "check ") - b.p);
    for (size_t i = 0; i < check_at; i++) {
        struct buf c = {0};
        buf_append(&c, b.p, b.len);
        c.p[i] ^= 0x01;
        tried++;
        caught += super_parse(c.p, c.len, &back, err, sizeof err) < 0;
        buf_free(&c);
    }
    is_int(caught, tried, "every one-bit change of the superblock is refused");
    for (size_t n = 0; n < b.len; n++)
        if (super_parse(b.p, n, &back, err, sizeof err) == 0) {
            ok(0, "a superblock cut to %zu bytes was accepted", n);
            break;
        }
    ok(1, "no truncation of the superblock is accepted");
    buf_free(&b);
}

static void test_limits(void)
{
    char err[256];
    struct vol_super sb = sample();
    sb.block_size = 3000;
    ok(super_validate(&sb, err, sizeof err) < 0 && strstr(err, "power of two"),
       "block size 3000 is refused: %s", err);
    sb = sample();
    sb.size = 4097;
    ok(super_validate(&sb, err, sizeof err) < 0 && strstr(err, "multiple"),
       "a size that is not whole blocks is refused: %s", err);
    sb = sample();
    sb.segment_size = 512u << 20;
    ok(super_validate(&sb, err, sizeof err) < 0, "a 512 MiB segment is refused: %s", err);
    sb = sample();
    sb.version = 2;
    ok(super_validate(&sb, err, sizeof err) < 0 && strstr(err, "version 2"),
       "an unknown version is refused: %s", err);
    struct vol_super back;
    const char *junk = "hello world\n";
    ok(super_parse(junk, strlen(junk), &back, err, sizeof err) < 0 &&
           strstr(err, "not a buoy superblock"),
       "junk is not a superblock: %s", err);
}

/* A clone's three base lines: kept, and all or none. */
static void test_clone_lines(void)
{
    struct vol_super sb = sample(), back;
    struct buf b = {0};
    char err[256];
    snprintf(sb.base, sizeof sb.base, "s3://bucket/vols/a@monday");
    super_new_uuid(sb.base_uuid);
    sb.base_seq = 1234;
    super_encode(&sb, &b);
    is_int(super_parse(b.p, b.len, &back, err, sizeof err), 0, "a clone's superblock parses");
    ok(strcmp(back.base, sb.base) == 0 && memcmp(back.base_uuid, sb.base_uuid, 16) == 0 &&
           back.base_seq == 1234,
       "base, base-uuid and base-seq survive");
    /* drop the base-seq line and fix the check: refused */
    char *text = xstrndup(b.p, b.len);
    char *line = strstr(text, "base-seq ");
    char *check = strstr(text, "check ");
    memmove(line, check, strlen(check) + 1);
    struct buf c = {0};
    buf_append(&c, text, (size_t)(line - text));
    buf_printf(&c, "check %016llx\n", (unsigned long long)XXH3_64bits(c.p, c.len));
    ok(super_parse(c.p, c.len, &back, err, sizeof err) < 0 && strstr(err, "only some of base"),
       "a superblock with only some of the base lines is refused: %s", err);
    struct vol_super plain = sample();
    buf_free(&b);
    super_encode(&plain, &b);
    ok(super_parse(b.p, b.len, &back, err, sizeof err) == 0 && back.base[0] == '\0' &&
           back.base_seq == 0,
       "a volume of its own has no base");
    free(text);
    buf_free(&b);
    buf_free(&c);
}

int main(void)
{
    plan_no_plan();
    test_sizes();
    test_roundtrip();
    test_limits();
    test_clone_lines();
    return done_testing();
}
