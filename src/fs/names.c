/* names.c - a directory's entries from one delimited LIST (see names.h for
 * the naming scheme).
 *
 * Steps: every object and prefix becomes a candidate (raw name, directory or
 * not); candidates are sorted by raw name, directories first, and those of
 * one raw name merged (all directory candidates into one entry, the object
 * after it); each entry then keeps its raw name or is marked for a derived
 * one; the plain names go into a set, and the derived names are made in the
 * byte order of their keys, each taking a counter until it is not in the set.
 * Last, the entries are sorted by name and checked for duplicates. */
#include "names.h"

#include "util/hash.h"
#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FOLDER_SUFFIX "_$folder$"
#define FOLDER_LEN    9

struct cand {
    const char *raw; /* the name's bytes, inside a key or prefix (no NUL) */
    size_t rawlen;
    int is_dir;
    unsigned from;               /* FS_DIR_* */
    const struct store_obj *obj; /* the object, or the marker */
    size_t order;                /* input order, for a stable sort */
};

static int rawcmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

static int cand_cmp(const void *x, const void *y)
{
    const struct cand *a = x, *b = y;
    int c = rawcmp(a->raw, a->rawlen, b->raw, b->rawlen);
    if (c) return c;
    if (a->is_dir != b->is_dir) return b->is_dir - a->is_dir; /* directories first */
    return (a->order > b->order) - (a->order < b->order);
}

/* A set of strings, open addressing; cap a power of two over twice the count. */
struct set {
    const char **slot;
    size_t cap;
};

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Adds s (kept by pointer); 0, or -1 when it is there already. */
static int set_add(struct set *st, const char *s)
{
    size_t i = (size_t)fnv(s) & (st->cap - 1);
    for (; st->slot[i]; i = (i + 1) & (st->cap - 1))
        if (strcmp(st->slot[i], s) == 0) return -1;
    st->slot[i] = s;
    return 0;
}

/* s with its non-printable bytes and quotes as \xHH, for messages. */
static void put_shown(struct buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '\'' || c == '\\')
            buf_printf(b, "\\x%02x", c);
        else
            buf_putc(b, (char)c);
    }
}

/* The derived name STEM~TAG~HEX[~COUNTER], the stem cut (never inside a UTF-8
 * sequence) so that it is at most FS_NAME_MAX bytes. */
static char *derive(const char *stem, size_t stemlen, const char *tag, const char *hex,
                    unsigned counter)
{
    char suffix[64];
    int sl = counter ? snprintf(suffix, sizeof suffix, "~%s~%s~%u", tag, hex, counter)
                     : snprintf(suffix, sizeof suffix, "~%s~%s", tag, hex);
    size_t keep = stemlen;
    if (keep + (size_t)sl > FS_NAME_MAX) {
        keep = FS_NAME_MAX - (size_t)sl;
        while (keep > 0 && ((unsigned char)stem[keep] & 0xc0) == 0x80)
            keep--;
    }
    char *out = xmalloc(keep + (size_t)sl + 1);
    memcpy(out, stem, keep);
    memcpy(out + keep, suffix, (size_t)sl + 1);
    return out;
}

struct pending {
    size_t entry;    /* index into the entries */
    const char *key; /* what is hashed and ordered: the key, or "P name/" */
    const char *tag;
    const char *reason;
    const char *stem;
    size_t stemlen;
};

static int pending_cmp(const void *x, const void *y)
{
    return strcmp(((const struct pending *)x)->key, ((const struct pending *)y)->key);
}

static int entry_cmp(const void *x, const void *y)
{
    return strcmp(((const struct fs_name *)x)->name, ((const struct fs_name *)y)->name);
}

static void set_obj(struct fs_name *e, const struct store_obj *o)
{
    e->key = xstrdup(o->key);
    e->size = o->size;
    e->mtime = o->mtime;
    snprintf(e->etag, sizeof e->etag, "%s", o->etag);
}

void fs_names_free(struct fs_names *d)
{
    for (size_t i = 0; d->v && i < d->n; i++) {
        free(d->v[i].name);
        free(d->v[i].key);
        free(d->v[i].dir);
        free(d->v[i].why);
    }
    free(d->v);
    d->v = NULL;
    d->n = 0;
}

int fs_names_build(const char *prefix, const struct store_obj *objs, size_t nobjs,
                   char *const *prefixes, size_t nprefixes, struct fs_names *out, char *err,
                   size_t errlen)
{
    size_t plen = strlen(prefix), nc = 0, ne = 0, np = 0;
    struct cand *c = xcalloc(nobjs + nprefixes + 1, sizeof *c);
    struct fs_name *e = NULL;
    struct pending *pend = NULL;
    struct set st = {NULL, 0};
    out->v = NULL;
    out->n = 0;
    if (plen && prefix[plen - 1] != '/') {
        snprintf(err, errlen, "directory prefix '%s' does not end in '/'", prefix);
        goto fail;
    }
    for (size_t i = 0; i < nobjs; i++) {
        const char *k = objs[i].key;
        if (!k || strncmp(k, prefix, plen) != 0) {
            snprintf(err, errlen, "key '%s' is not under '%s'", k ? k : "(null)", prefix);
            goto fail;
        }
        const char *r = k + plen, *slash = strchr(r, '/');
        size_t rl = strlen(r);
        if (rl == 0) continue; /* the directory's own marker */
        struct cand *x = &c[nc];
        *x = (struct cand){.raw = r, .rawlen = rl, .obj = &objs[i], .order = nc};
        if (slash && slash != r + rl - 1) {
            snprintf(err, errlen, "key '%s' is not directly under '%s' (listed without '/')", k,
                     prefix);
            goto fail;
        } else if (slash) {
            x->rawlen = rl - 1;
            x->is_dir = 1;
            x->from = FS_DIR_MARKER;
        } else if (objs[i].size == 0 && rl >= FOLDER_LEN &&
                   memcmp(r + rl - FOLDER_LEN, FOLDER_SUFFIX, FOLDER_LEN) == 0) {
            x->rawlen = rl - FOLDER_LEN;
            x->is_dir = 1;
            x->from = FS_DIR_FOLDER;
        }
        nc++;
    }
    for (size_t i = 0; i < nprefixes; i++) {
        const char *p = prefixes[i];
        size_t l = p ? strlen(p) : 0;
        if (!p || l <= plen || strncmp(p, prefix, plen) != 0 || p[l - 1] != '/' ||
            memchr(p + plen, '/', l - plen - 1)) {
            snprintf(err, errlen, "common prefix '%s' is not '%sNAME/'", p ? p : "(null)", prefix);
            goto fail;
        }
        c[nc] = (struct cand){.raw = p + plen,
                              .rawlen = l - plen - 1,
                              .is_dir = 1,
                              .from = FS_DIR_PREFIX,
                              .order = nc};
        nc++;
    }
    qsort(c, nc, sizeof *c, cand_cmp);

    /* merge: one directory and at most one object per raw name */
    e = xcalloc(nc + 1, sizeof *e);
    pend = xcalloc(nc + 1, sizeof *pend);
    for (size_t i = 0; i < nc;) {
        size_t j = i, first = ne;
        int has_dir = 0;
        while (j < nc && rawcmp(c[j].raw, c[j].rawlen, c[i].raw, c[i].rawlen) == 0)
            j++;
        for (size_t k = i; k < j; k++) {
            struct fs_name *x = &e[ne];
            if (c[k].is_dir) {
                if (!has_dir) {
                    has_dir = 1;
                    x->kind = FS_NAME_DIR;
                    x->mtime = -1;
                    x->dir = xmalloc(plen + c[k].rawlen + 2);
                    memcpy(x->dir, prefix, plen);
                    memcpy(x->dir + plen, c[k].raw, c[k].rawlen);
                    memcpy(x->dir + plen + c[k].rawlen, "/", 2);
                    ne++;
                }
                x = &e[ne - 1];
                x->dir_from |= c[k].from;
                /* the marker "P name/" gives the attributes, else the folder */
                if (c[k].obj && (c[k].from == FS_DIR_MARKER || !x->key)) {
                    free(x->key);
                    set_obj(x, c[k].obj);
                }
                continue;
            }
            if (k > i && !c[k - 1].is_dir) {
                snprintf(err, errlen, "key '%s' is listed twice", c[k].obj->key);
                goto fail;
            }
            x->kind = FS_NAME_OBJECT;
            set_obj(x, c[k].obj);
            ne++;
        }
        /* names */
        for (size_t k = first; k < ne; k++) {
            struct fs_name *x = &e[k];
            const char *raw = c[i].raw, *tag = NULL, *reason = NULL;
            size_t rl = c[i].rawlen, stemlen = 0;
            if (rl == 0) {
                tag = "empty", reason = "empty path component";
            } else if (rl == 1 && raw[0] == '.') {
                tag = "dot", reason = "'.' is not a file name";
            } else if (rl == 2 && raw[0] == '.' && raw[1] == '.') {
                tag = "dotdot", reason = "'..' is not a file name";
            } else if (rl > FS_NAME_MAX) {
                tag = "long", reason = "name over 255 bytes", stemlen = rl;
            } else if (x->kind == FS_NAME_OBJECT && has_dir) {
                tag = "file", reason = "a directory has the same name", stemlen = rl;
            }
            if (!tag) {
                x->name = xstrndup(raw, rl);
                continue;
            }
            pend[np++] = (struct pending){.entry = k,
                                          .key = x->kind == FS_NAME_DIR ? x->dir : x->key,
                                          .tag = tag,
                                          .reason = reason,
                                          .stem = raw,
                                          .stemlen = stemlen};
        }
        i = j;
    }

    /* plain names first, then the derived ones in key order */
    for (st.cap = 16; st.cap < 2 * (ne + 1); st.cap *= 2)
        ;
    st.slot = xcalloc(st.cap, sizeof *st.slot);
    for (size_t i = 0; i < ne; i++)
        if (e[i].name && set_add(&st, e[i].name) < 0) {
            snprintf(err, errlen, "two entries named '%s' (a bug)", e[i].name);
            goto fail;
        }
    qsort(pend, np, sizeof *pend, pending_cmp);
    for (size_t i = 0; i < np; i++) {
        struct pending *p = &pend[i];
        struct fs_name *x = &e[p->entry];
        uint8_t h[SHA256_LEN];
        char hex[2 * SHA256_LEN + 1];
        unsigned counter = 0;
        sha256(p->key, strlen(p->key), h);
        hex_encode(h, 4, hex);
        for (;;) {
            x->name = derive(p->stem, p->stemlen, p->tag, hex, counter);
            if (set_add(&st, x->name) == 0) break;
            free(x->name);
            x->name = NULL;
            counter = counter ? counter + 1 : 2;
        }
        struct buf b = {0};
        buf_printf(&b, "key '");
        put_shown(&b, p->key, strlen(p->key));
        buf_printf(&b, "' is shown as '");
        put_shown(&b, prefix, plen);
        put_shown(&b, x->name, strlen(x->name));
        buf_printf(&b, "': %s", p->reason);
        if (counter) buf_printf(&b, " (the name without ~%u is taken)", counter);
        x->why = buf_steal(&b, NULL);
    }
    free(st.slot);
    st.slot = NULL;

    qsort(e, ne, sizeof *e, entry_cmp);
    for (size_t i = 1; i < ne; i++)
        if (strcmp(e[i - 1].name, e[i].name) == 0) {
            snprintf(err, errlen, "two entries named '%s' (a bug)", e[i].name);
            goto fail;
        }
    free(c);
    free(pend);
    out->v = e;
    out->n = ne;
    return 0;
fail:
    free(st.slot);
    free(c);
    free(pend);
    out->v = e;
    out->n = ne;
    fs_names_free(out);
    return -1;
}

const struct fs_name *fs_names_find(const struct fs_names *d, const char *name)
{
    size_t lo = 0, hi = d->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, d->v[mid].name);
        if (c == 0) return &d->v[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}
