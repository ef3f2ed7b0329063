/* test_size.c - the size parser (what --size, --cache-size, --kdf-memory
 * take) and the size printer. */
#include "tap.h"
#include "util/size.h"

#include <string.h>

static void test_parse(void)
{
    static const struct {
        const char *in;
        int rc;
        uint64_t want;
    } cases[] = {
        {"4096", SIZE_OK, 4096},
        {"0", SIZE_OK, 0},
        {"16G", SIZE_OK, 16ull << 30},
        {"16GiB", SIZE_OK, 16ull << 30},
        {"1GB", SIZE_OK, 1ull << 30},
        {"512m", SIZE_OK, 512ull << 20},
        {"8M", SIZE_OK, 8 << 20},
        {"1K", SIZE_OK, 1024},
        {"1.5G", SIZE_OK, 3ull << 29},
        {"1.5T", SIZE_OK, 3ull << 39},
        {"1P", SIZE_OK, 1ull << 50},
        {"8E", SIZE_OK, 8ull << 60},
        {"15.5e", SIZE_OK, 31ull << 59},
        {"0.5K", SIZE_OK, 512},
        {"2.50000K", SIZE_OK, 2560},
        {"0.0009765625K", SIZE_OK, 1},
        {"0.0000019073486328125M", SIZE_OK, 2},
        {"18446744073709551615", SIZE_OK, UINT64_MAX},
        {"9007199254740993", SIZE_OK, 9007199254740993ull}, /* 2^53 + 1: no rounding */
        {"abc", SIZE_ESYNTAX, 0},
        {"", SIZE_ESYNTAX, 0},
        {"-1G", SIZE_ESYNTAX, 0},
        {" 1G", SIZE_ESYNTAX, 0},
        {"1.5", SIZE_ESYNTAX, 0},
        {"1.", SIZE_ESYNTAX, 0},
        {"1.G", SIZE_ESYNTAX, 0},
        {"12Q", SIZE_ESYNTAX, 0},
        {"1Gx", SIZE_ESYNTAX, 0},
        {"1e3", SIZE_ESYNTAX, 0},
        {"0x10", SIZE_ESYNTAX, 0},
        {"1B", SIZE_ESYNTAX, 0},
        {"1.0000001K", SIZE_EWHOLE, 0},
        {"0.1K", SIZE_EWHOLE, 0},
        {"16E", SIZE_ERANGE, 0},
        {"16384P", SIZE_ERANGE, 0},
        {"18446744073709551616", SIZE_ERANGE, 0},
        {"99999999999999999999", SIZE_ERANGE, 0},
        {"99999999999999999999999999999999999999999K", SIZE_ERANGE, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t v = 12345;
        int rc = size_parse(cases[i].in, &v);
        if (cases[i].rc == SIZE_OK)
            ok(rc == SIZE_OK && v == cases[i].want, "size '%s' is %llu (got %d, %llu)", cases[i].in,
               (unsigned long long)cases[i].want, rc, (unsigned long long)v);
        else
            ok(rc == cases[i].rc && v == 12345, "size '%s' is refused with %d (got %d)",
               cases[i].in, cases[i].rc, rc);
    }
    /* 2^-61 of an E is half a byte; 61 digits after the point */
    ok(size_parse("0.0000000000000000004336808689942017736029811203479766845703125E",
                  &(uint64_t){0}) == SIZE_EWHOLE,
       "half a byte written as a fraction of an E is not whole");
    ok(size_parse(NULL, &(uint64_t){0}) == SIZE_ESYNTAX, "NULL is not a size");
}

static void test_strerror(void)
{
    ok(strstr(size_strerror(SIZE_ERANGE), "too large") &&
           strstr(size_strerror(SIZE_ERANGE), "16 EiB"),
       "a size past the limit is too large, and the limit is named: %s",
       size_strerror(SIZE_ERANGE));
    ok(strstr(size_strerror(SIZE_EWHOLE), "whole number of bytes") != NULL,
       "a fraction of a byte says so: %s", size_strerror(SIZE_EWHOLE));
    ok(strstr(size_strerror(SIZE_ESYNTAX), "not a size") &&
           strstr(size_strerror(SIZE_ESYNTAX), "P or E"),
       "a non-size names every suffix: %s", size_strerror(SIZE_ESYNTAX));
}

static void test_format(void)
{
    char out[32];
    size_format(16ull << 30, out, sizeof out);
    is_str(out, "16 GiB", "16 GiB prints as such");
    size_format(4096, out, sizeof out);
    is_str(out, "4 KiB", "4096 prints as 4 KiB");
    size_format(1000, out, sizeof out);
    is_str(out, "1000 B", "1000 prints in bytes");
    size_format(8ull << 60, out, sizeof out);
    is_str(out, "8 EiB", "8 EiB prints as such");
    size_format(UINT64_MAX, out, sizeof out);
    is_str(out, "16.00 EiB", "the largest size prints in EiB");
}

int main(void)
{
    plan_no_plan();
    test_parse();
    test_strerror();
    test_format();
    return done_testing();
}
