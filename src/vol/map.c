/* map.c - the extent map as a B+tree of packed extent arrays (see map.h).
 *
 * Layout.  A leaf is one 4096-byte allocation holding up to 204 extents as
 * four parallel arrays (structure of arrays, 20 bytes an extent, no padding):
 *
 *     n (4) | pad (4) | next (8) | lba[204] (8 each) | len[204] | seg[204] | blk[204] (4 each)
 *
 * An inner node is also 4096 bytes: n children, n - 1 keys between them.
 *
 *     n (4) | pad (4) | key[255] (8 each) | child[256] (8 each)
 *
 * The tree has `height` levels; level height - 1 holds the leaves, so a node's
 * kind follows from its depth and needs no tag.  An empty map is one empty
 * leaf.  Leaves are chained left to right for lookups and iteration that run
 * past the end of a leaf.
 *
 * Rules (map_check() verifies every one):
 *
 *  1. Order.  Read along the leaf chain, extents are sorted by lba and do not
 *     overlap: each ends (lba + len) at or before the next one's lba.
 *  2. Extents are valid: len >= 1, lba + len <= UINT64_MAX,
 *     blk + len <= 2^32.
 *  3. Merged.  No extent continues its left neighbour (same seg, lba and blk
 *     both following on) unless their joint length would not fit in 32 bits:
 *     map_set() merges, and map_unset() only ever opens gaps.
 *  4. Keys.  In an inner node, key i lies between child i and child i + 1:
 *     every extent under children 0..i ends at or before it, every extent
 *     under children i+1.. starts at or after it.  So the extent holding
 *     block x, if any, is under the child whose index is the number of keys
 *     <= x, and every descent goes straight to it (descend()).  Keys are
 *     loose - they need not equal an lba - so trimming an extent (its lba only
 *     rises, its end only falls) never breaks the rule; growing one moves the
 *     keys on its path that bound it (raise_path(), lower_path()), which is
 *     safe because the range it grows into was just unmapped.
 *  5. Fill.  All leaves are at depth height - 1.  A leaf holds at most
 *     leaf_max extents and, unless it is the root, at least leaf_min =
 *     leaf_max / 2.  An inner node has at most node_max children and at least
 *     node_min = node_max / 2; the root, when inner, at least 2.  Inserting
 *     into a full leaf first moves extents to a neighbour with room (so random
 *     writes leave leaves about 86% full, not 69%), then splits; a leaf or
 *     node that falls under its minimum borrows from or merges with a
 *     neighbour (rebalance()), and a root with one child is dropped.
 *  6. Chain.  Each leaf's next is the leaf to its right; the last one's is
 *     NULL.
 *  7. Counts.  count is the number of extents, mapped the sum of their
 *     lengths, bytes the sum of alloc_bytes() over the map and every node.
 *
 * Every update descends into a struct path (the node and child index at each
 * level), changes the leaf, then walks back up the path for splits, merges
 * and key moves.  A path is stale after any structural change, so callers
 * descend again rather than reuse one.
 *
 * map_set() first tries set_fast(): one descent, when nothing overlaps the
 * new extent and its left neighbour is in the same leaf (nearly every random
 * or sequential write).  Otherwise it unmaps the range, looks for the
 * neighbours it may merge with, and inserts - a few descents, all O(log n).
 *
 * Unmapping a range handles one leaf per descent: it trims the extent
 * straddling the start, removes the run of extents inside, trims the one
 * straddling the end, and rebalances once; so it costs O(log n) per leaf
 * touched, plus one insert when the range splits an extent in two.
 *
 * map_load() builds bottom-up in one pass: leaves 7/8 full (room for the
 * next writes before anything splits), then each inner level over them.
 */
#include "map.h"
#include "util/mem.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEAF_CAP    204 /* 16 + 204 * 20 = 4096 bytes */
#define NODE_CAP    256 /* 8 + 255 * 8 + 256 * 8 = 4096 bytes */
#define MAX_HEIGHT  48  /* even with 2-child nodes, 2^47 leaves */
#define BLOCK_LIMIT ((uint64_t)UINT32_MAX + 1)

struct map_leaf {
    uint32_t n;
    struct map_leaf *next;
    uint64_t lba[LEAF_CAP];
    uint32_t len[LEAF_CAP];
    uint32_t seg[LEAF_CAP];
    uint32_t blk[LEAF_CAP];
};

struct map_node {
    uint32_t n; /* children */
    uint64_t key[NODE_CAP - 1];
    void *child[NODE_CAP];
};

_Static_assert(sizeof(struct map_leaf) == 4096, "a leaf is one 4 KiB allocation");
_Static_assert(sizeof(struct map_node) == 4096, "an inner node is one 4 KiB allocation");

struct map {
    void *root; /* a leaf when height == 1 */
    int height;
    uint32_t leaf_max, leaf_min, node_max, node_min;
    uint64_t count, mapped;
    size_t bytes;
    map_drop_fn on_drop;
    void *arg;
};

/* The nodes from the root (depth 0) to a leaf (depth h - 1), and the child
 * taken at each inner node. */
struct path {
    int h;
    void *node[MAX_HEIGHT];
    uint32_t idx[MAX_HEIGHT];
};

/* ---- allocation ---- */

/* What glibc's malloc takes for an n-byte request: an 8-byte header, the
 * whole rounded up to 16, at least 32. */
static size_t alloc_bytes(size_t n)
{
    size_t c = (n + 8 + 15) & ~(size_t)15;
    return c < 32 ? 32 : c;
}

static struct map_leaf *leaf_new(struct map *m)
{
    struct map_leaf *l = xmalloc(sizeof *l);
    l->n = 0;
    l->next = NULL;
    m->bytes += alloc_bytes(sizeof *l);
    return l;
}

static void leaf_free(struct map *m, struct map_leaf *l)
{
    m->bytes -= alloc_bytes(sizeof *l);
    free(l);
}

static struct map_node *node_new(struct map *m)
{
    struct map_node *nd = xmalloc(sizeof *nd);
    nd->n = 0;
    m->bytes += alloc_bytes(sizeof *nd);
    return nd;
}

static void node_free(struct map *m, struct map_node *nd)
{
    m->bytes -= alloc_bytes(sizeof *nd);
    free(nd);
}

/* ---- leaves ---- */

static uint64_t leaf_end(const struct map_leaf *l, uint32_t i)
{
    return l->lba[i] + l->len[i];
}

static void leaf_get(const struct map_leaf *l, uint32_t i, struct map_extent *e)
{
    e->lba = l->lba[i];
    e->nblocks = l->len[i];
    e->seg = l->seg[i];
    e->block = l->blk[i];
}

/* Whether b can be appended to a (rule 3). */
static int continues(const struct map_extent *a, const struct map_extent *b)
{
    return a->lba + a->nblocks == b->lba && a->seg == b->seg &&
           (uint64_t)a->block + a->nblocks == b->block &&
           (uint64_t)a->nblocks + b->nblocks <= UINT32_MAX;
}

/* Copies cnt extents from src[si..] to dst[di..]; the ranges may overlap. */
static void leaf_copy(struct map_leaf *dst, uint32_t di, const struct map_leaf *src, uint32_t si,
                      uint32_t cnt)
{
    if (!cnt)
        return;
    memmove(&dst->lba[di], &src->lba[si], cnt * sizeof dst->lba[0]);
    memmove(&dst->len[di], &src->len[si], cnt * sizeof dst->len[0]);
    memmove(&dst->seg[di], &src->seg[si], cnt * sizeof dst->seg[0]);
    memmove(&dst->blk[di], &src->blk[si], cnt * sizeof dst->blk[0]);
}

/* Number of extents in l that start at or before x. */
static uint32_t leaf_upper(const struct map_leaf *l, uint64_t x)
{
    uint32_t lo = 0, hi = l->n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (l->lba[mid] <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Index of the first extent in l that ends after x; l->n when none does. */
static uint32_t leaf_first_after(const struct map_leaf *l, uint64_t x)
{
    uint32_t i = leaf_upper(l, x);
    return i > 0 && leaf_end(l, i - 1) > x ? i - 1 : i;
}

/* Puts e at position i of l, which has room. */
static void leaf_put(struct map *m, struct map_leaf *l, uint32_t i, const struct map_extent *e)
{
    leaf_copy(l, i + 1, l, i, l->n - i);
    l->lba[i] = e->lba;
    l->len[i] = e->nblocks;
    l->seg[i] = e->seg;
    l->blk[i] = e->block;
    l->n++;
    m->count++;
}

static void leaf_remove(struct map *m, struct map_leaf *l, uint32_t i, uint32_t cnt)
{
    leaf_copy(l, i, l, i + cnt, l->n - i - cnt);
    l->n -= cnt;
    m->count -= cnt;
}

/* Moves extents across the boundary of neighbours l and r (r to the right)
 * until l holds a of them. */
static void leaves_balance(struct map_leaf *l, struct map_leaf *r, uint32_t a)
{
    if (l->n < a) {
        uint32_t k = a - l->n;
        leaf_copy(l, l->n, r, 0, k);
        leaf_copy(r, 0, r, k, r->n - k);
        l->n += k;
        r->n -= k;
    } else if (l->n > a) {
        uint32_t k = l->n - a;
        leaf_copy(r, k, r, 0, r->n);
        leaf_copy(r, 0, l, a, k);
        l->n -= k;
        r->n += k;
    }
}

/* ---- inner nodes ---- */

/* Number of keys of nd at or below x: the child to follow for x. */
static uint32_t node_upper(const struct map_node *nd, uint64_t x)
{
    uint32_t lo = 0, hi = nd->n - 1;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (nd->key[mid] <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Puts key k at position pos of nd and child c right of it (nd has room). */
static void node_put(struct map_node *nd, uint32_t pos, uint64_t k, void *c)
{
    uint32_t after = nd->n - 1 - pos;
    memmove(&nd->key[pos + 1], &nd->key[pos], after * sizeof nd->key[0]);
    memmove(&nd->child[pos + 2], &nd->child[pos + 1], after * sizeof nd->child[0]);
    nd->key[pos] = k;
    nd->child[pos + 1] = c;
    nd->n++;
}

/* Removes key pos of nd and the child right of it. */
static void node_del(struct map_node *nd, uint32_t pos)
{
    uint32_t after = nd->n - 2 - pos;
    memmove(&nd->key[pos], &nd->key[pos + 1], after * sizeof nd->key[0]);
    memmove(&nd->child[pos + 1], &nd->child[pos + 2], after * sizeof nd->child[0]);
    nd->n--;
}

/* Moves children across the boundary of neighbours l and r, whose parent
 * key between them is *k, until l has a of them; keys rotate through *k. */
static void nodes_balance(struct map_node *l, struct map_node *r, uint64_t *k, uint32_t a)
{
    if (l->n < a) {
        uint32_t c = a - l->n;
        l->key[l->n - 1] = *k;
        memcpy(&l->key[l->n], r->key, (c - 1) * sizeof r->key[0]);
        memcpy(&l->child[l->n], r->child, c * sizeof r->child[0]);
        *k = r->key[c - 1];
        memmove(r->key, &r->key[c], (r->n - 1 - c) * sizeof r->key[0]);
        memmove(r->child, &r->child[c], (r->n - c) * sizeof r->child[0]);
        l->n += c;
        r->n -= c;
    } else if (l->n > a) {
        uint32_t c = l->n - a;
        memmove(&r->key[c], r->key, (r->n - 1) * sizeof r->key[0]);
        memmove(&r->child[c], r->child, r->n * sizeof r->child[0]);
        r->key[c - 1] = *k;
        memcpy(r->key, &l->key[a], (c - 1) * sizeof r->key[0]);
        memcpy(r->child, &l->child[a], c * sizeof r->child[0]);
        *k = l->key[a - 1];
        l->n -= c;
        r->n += c;
    }
}

/* Appends r and the key k between them to l. */
static void nodes_merge(struct map_node *l, const struct map_node *r, uint64_t k)
{
    l->key[l->n - 1] = k;
    memcpy(&l->key[l->n], r->key, (r->n - 1) * sizeof r->key[0]);
    memcpy(&l->child[l->n], r->child, r->n * sizeof r->child[0]);
    l->n += r->n;
}

/* ---- descent ---- */

static const struct map_leaf *find_leaf(const struct map *m, uint64_t x)
{
    const void *cur = m->root;
    for (int d = 0; d < m->height - 1; d++) {
        const struct map_node *nd = cur;
        cur = nd->child[node_upper(nd, x)];
    }
    return cur;
}

/* The leaf that holds the extent containing x, if there is one, or else
 * the leaf where an extent starting at x belongs (rule 4). */
static struct map_leaf *descend(struct map *m, uint64_t x, struct path *p)
{
    void *cur = m->root;
    p->h = m->height;
    for (int d = 0; d < m->height - 1; d++) {
        struct map_node *nd = cur;
        p->node[d] = nd;
        p->idx[d] = node_upper(nd, x);
        cur = nd->child[p->idx[d]];
    }
    p->node[m->height - 1] = cur;
    return cur;
}

/* Something in p's leaf now ends at end: raise the keys right of the path
 * that it would pass.  The caller has unmapped everything it grew into. */
static void raise_path(struct path *p, uint64_t end)
{
    for (int d = 0; d < p->h - 1; d++) {
        struct map_node *nd = p->node[d];
        uint32_t i = p->idx[d];
        if (i + 1 < nd->n && nd->key[i] < end)
            nd->key[i] = end;
    }
}

/* Something in p's leaf now starts at start: lower the keys left of it. */
static void lower_path(struct path *p, uint64_t start)
{
    for (int d = 0; d < p->h - 1; d++) {
        struct map_node *nd = p->node[d];
        uint32_t i = p->idx[d];
        if (i > 0 && nd->key[i - 1] > start)
            nd->key[i - 1] = start;
    }
}

/* ---- insertion ---- */

/* Adds key k and, right of it, the new child c next to child p->idx[d] of
 * p->node[d], splitting nodes upwards as needed; d == -1 grows a new root. */
static void node_insert(struct map *m, struct path *p, int d, uint64_t k, void *c)
{
    if (d < 0) {
        if (m->height >= MAX_HEIGHT) {
            fprintf(stderr, "buoy: extent map deeper than %d levels\n", MAX_HEIGHT);
            abort();
        }
        struct map_node *root = node_new(m);
        root->n = 2;
        root->key[0] = k;
        root->child[0] = m->root;
        root->child[1] = c;
        m->root = root;
        m->height++;
        return;
    }
    struct map_node *nd = p->node[d];
    uint32_t pos = p->idx[d];
    if (nd->n < m->node_max) {
        node_put(nd, pos, k, c);
        return;
    }
    struct map_node *r = node_new(m);
    uint32_t a = nd->n / 2; /* children nd keeps */
    uint64_t up = nd->key[a - 1];
    r->n = nd->n - a;
    memcpy(r->key, &nd->key[a], (r->n - 1) * sizeof r->key[0]);
    memcpy(r->child, &nd->child[a], r->n * sizeof r->child[0]);
    nd->n = a;
    if (pos < a)
        node_put(nd, pos, k, c);
    else
        node_put(r, pos - a, k, c);
    node_insert(m, p, d - 1, up, r);
}

/* Makes room in the full leaf l (child ci of parent) by sharing its extents
 * with a neighbour that has room, and puts e at position i.  0 when neither
 * neighbour has room. */
static int leaf_insert_shift(struct map *m, struct map_node *parent, uint32_t ci,
                             struct map_leaf *l, uint32_t i, const struct map_extent *e)
{
    if (ci > 0) {
        struct map_leaf *w = parent->child[ci - 1];
        if (w->n + 2 <= m->leaf_max) {
            uint32_t g = w->n + i;
            leaves_balance(w, l, (w->n + l->n + 1) / 2);
            if (g <= w->n)
                leaf_put(m, w, g, e);
            else
                leaf_put(m, l, g - w->n, e);
            parent->key[ci - 1] = l->lba[0];
            return 1;
        }
    }
    if (ci + 1 < parent->n) {
        struct map_leaf *r = parent->child[ci + 1];
        if (r->n + 2 <= m->leaf_max) {
            leaves_balance(l, r, (l->n + r->n + 1) / 2);
            if (i <= l->n)
                leaf_put(m, l, i, e);
            else
                leaf_put(m, r, i - l->n, e);
            parent->key[ci] = r->lba[0];
            return 1;
        }
    }
    return 0;
}

/* Puts e at position i of p's leaf: directly, by sharing with a
 * neighbour, or by splitting the leaf. */
static void leaf_insert(struct map *m, struct path *p, uint32_t i, const struct map_extent *e)
{
    int d = p->h - 1;
    struct map_leaf *l = p->node[d];
    if (l->n < m->leaf_max) {
        leaf_put(m, l, i, e);
        return;
    }
    if (d > 0 && leaf_insert_shift(m, p->node[d - 1], p->idx[d - 1], l, i, e))
        return;
    struct map_leaf *r = leaf_new(m);
    leaves_balance(l, r, (l->n + 1) / 2);
    r->next = l->next;
    l->next = r;
    if (i <= l->n)
        leaf_put(m, l, i, e);
    else
        leaf_put(m, r, i - l->n, e);
    node_insert(m, p, d - 1, r->lba[0], r);
}

/* Inserts e into a range where nothing is mapped. */
static void insert_extent(struct map *m, const struct map_extent *e)
{
    struct path p;
    struct map_leaf *l = descend(m, e->lba, &p);
    raise_path(&p, e->lba + e->nblocks);
    leaf_insert(m, &p, leaf_upper(l, e->lba), e);
}

/* ---- removal ---- */

static void shrink_root(struct map *m)
{
    struct map_node *root = m->root;
    if (m->height > 1 && root->n == 1) {
        m->root = root->child[0];
        m->height--;
        node_free(m, root);
    }
}

/* Evens out or merges the leaves under children li and li + 1 of parent.
 * 1 when merged: the parent lost a child. */
static int leaves_fix(struct map *m, struct map_node *parent, uint32_t li)
{
    struct map_leaf *l = parent->child[li], *r = parent->child[li + 1];
    if (l->n + r->n <= m->leaf_max) {
        leaf_copy(l, l->n, r, 0, r->n);
        l->n += r->n;
        l->next = r->next;
        leaf_free(m, r);
        node_del(parent, li);
        return 1;
    }
    leaves_balance(l, r, (l->n + r->n) / 2);
    parent->key[li] = r->lba[0];
    return 0;
}

/* As leaves_fix, for inner nodes. */
static int nodes_fix(struct map *m, struct map_node *parent, uint32_t li)
{
    struct map_node *l = parent->child[li], *r = parent->child[li + 1];
    if (l->n + r->n <= m->node_max) {
        nodes_merge(l, r, parent->key[li]);
        node_free(m, r);
        node_del(parent, li);
        return 1;
    }
    nodes_balance(l, r, &parent->key[li], (l->n + r->n) / 2);
    return 0;
}

/* The node at depth d of p may have fallen under its minimum: borrow from
 * or merge with a neighbour, and so on upwards. */
static void rebalance(struct map *m, struct path *p, int d)
{
    if (d == 0) {
        shrink_root(m);
        return;
    }
    int leaf = d == p->h - 1;
    uint32_t n = leaf ? ((struct map_leaf *)p->node[d])->n : ((struct map_node *)p->node[d])->n;
    if (n >= (leaf ? m->leaf_min : m->node_min))
        return;
    struct map_node *parent = p->node[d - 1];
    uint32_t li = p->idx[d - 1] > 0 ? p->idx[d - 1] - 1 : 0;
    if (leaf ? leaves_fix(m, parent, li) : nodes_fix(m, parent, li))
        rebalance(m, p, d - 1);
}

static void drop(struct map *m, uint32_t seg, uint32_t n)
{
    m->mapped -= n;
    if (m->on_drop)
        m->on_drop(m->arg, seg, n);
}

/* Unmaps what [s, e) covers in p's leaf, from extent i on (the first one
 * ending after s; it starts before e).  1 when nothing beyond this leaf
 * can be left to unmap. */
static int unset_leaf(struct map *m, struct path *p, uint32_t i, uint64_t s, uint64_t e)
{
    struct map_leaf *l = p->node[p->h - 1];
    if (l->lba[i] < s) {
        uint64_t end = leaf_end(l, i);
        uint32_t head = (uint32_t)(s - l->lba[i]);
        if (end > e) {
            struct map_extent tail = {e, (uint32_t)(end - e), l->seg[i],
                                      l->blk[i] + (uint32_t)(e - l->lba[i])};
            l->len[i] = head;
            drop(m, tail.seg, (uint32_t)(e - s));
            insert_extent(m, &tail);
            return 1;
        }
        drop(m, l->seg[i], (uint32_t)(end - s));
        l->len[i] = head;
        i++;
    }
    uint32_t j = i;
    while (j < l->n && leaf_end(l, j) <= e) {
        drop(m, l->seg[j], l->len[j]);
        j++;
    }
    leaf_remove(m, l, i, j - i);
    int done = i < l->n;
    if (done && l->lba[i] < e) {
        uint32_t cut = (uint32_t)(e - l->lba[i]);
        drop(m, l->seg[i], cut);
        l->lba[i] = e;
        l->blk[i] += cut;
        l->len[i] -= cut;
    }
    if (j > i)
        rebalance(m, p, p->h - 1);
    return done;
}

static void unset_range(struct map *m, uint64_t s, uint64_t e)
{
    struct path p;
    for (;;) {
        struct map_leaf *l = descend(m, s, &p);
        uint32_t i = leaf_first_after(l, s);
        if (i == l->n) {
            if (!l->next || l->next->lba[0] >= e)
                return;
            s = l->next->lba[0];
            continue;
        }
        if (l->lba[i] >= e || unset_leaf(m, &p, i, s, e))
            return;
    }
}

/* ---- public ---- */

struct map *map_create_tuned(map_drop_fn on_drop, void *arg, unsigned leaf_max, unsigned node_max)
{
    struct map *m = xcalloc(1, sizeof *m);
    m->leaf_max = leaf_max < 3 ? 3 : leaf_max > LEAF_CAP ? LEAF_CAP : leaf_max;
    m->node_max = node_max < 4 ? 4 : node_max > NODE_CAP ? NODE_CAP : node_max;
    m->leaf_min = m->leaf_max / 2;
    m->node_min = m->node_max / 2;
    m->on_drop = on_drop;
    m->arg = arg;
    m->bytes = alloc_bytes(sizeof *m);
    m->root = leaf_new(m);
    m->height = 1;
    return m;
}

struct map *map_create(map_drop_fn on_drop, void *arg)
{
    return map_create_tuned(on_drop, arg, LEAF_CAP, NODE_CAP);
}

static void free_subtree(struct map *m, void *node, int depth)
{
    if (depth == m->height - 1) {
        leaf_free(m, node);
        return;
    }
    struct map_node *nd = node;
    for (uint32_t i = 0; i < nd->n; i++)
        free_subtree(m, nd->child[i], depth + 1);
    node_free(m, nd);
}

void map_free(struct map *m)
{
    if (!m)
        return;
    free_subtree(m, m->root, 0);
    free(m);
}

/* map_set() when nothing overlaps x and x's left neighbour is in the leaf
 * where x belongs: the common case of random and sequential writes, done
 * in one descent.  0 when the general path is needed. */
static int set_fast(struct map *m, const struct map_extent *x)
{
    struct path p;
    uint64_t end = x->lba + x->nblocks;
    struct map_leaf *l = descend(m, x->lba, &p);
    uint32_t i = leaf_upper(l, x->lba);
    if (i == 0 || leaf_end(l, i - 1) > x->lba)
        return 0;
    struct map_extent a, b = {0};
    int right = 0;
    leaf_get(l, i - 1, &a);
    if (i < l->n) {
        leaf_get(l, i, &b);
        if (b.lba < end)
            return 0;
        right = continues(x, &b);
    } else if (l->next) {
        leaf_get(l->next, 0, &b);
        if (b.lba < end || continues(x, &b))
            return 0;
    }
    int left = continues(&a, x);
    m->mapped += x->nblocks;
    raise_path(&p, end);
    if (left && right && (uint64_t)a.nblocks + x->nblocks + b.nblocks <= UINT32_MAX) {
        l->len[i - 1] += x->nblocks + b.nblocks;
        leaf_remove(m, l, i, 1);
        rebalance(m, &p, p.h - 1);
    } else if (left) {
        l->len[i - 1] += x->nblocks;
    } else if (right) {
        l->lba[i] = x->lba;
        l->blk[i] = x->block;
        l->len[i] += x->nblocks;
    } else {
        leaf_insert(m, &p, i, x);
    }
    return 1;
}

int map_set(struct map *m, uint64_t lba, uint32_t nblocks, uint32_t seg, uint32_t block)
{
    if (!nblocks || lba > UINT64_MAX - nblocks || (uint64_t)block + nblocks > BLOCK_LIMIT)
        return -EINVAL;
    struct map_extent x = {lba, nblocks, seg, block}, a = {0}, b = {0};
    if (set_fast(m, &x))
        return 0;
    uint64_t end = lba + nblocks;
    unset_range(m, lba, end);
    m->mapped += nblocks;

    /* The left neighbour, if it ends at lba, and the right one, if it starts
     * at end: x may continue the one or be continued by the other. */
    struct path pp, sp;
    int left = 0, right = 0;
    struct map_leaf *pl = NULL, *sl;
    uint32_t pi = 0, si;
    if (lba > 0) {
        pl = descend(m, lba - 1, &pp);
        pi = leaf_upper(pl, lba - 1);
        if (pi > 0) {
            leaf_get(pl, --pi, &a);
            left = continues(&a, &x);
        }
    }
    sl = descend(m, end, &sp);
    si = leaf_upper(sl, end);
    if (si > 0) {
        leaf_get(sl, --si, &b);
        right = continues(&x, &b);
    }

    if (left && right && (uint64_t)a.nblocks + nblocks + b.nblocks <= UINT32_MAX) {
        leaf_remove(m, sl, si, 1);
        rebalance(m, &sp, sp.h - 1);
        pl = descend(m, lba - 1, &pp);
        pi = leaf_upper(pl, lba - 1) - 1;
        pl->len[pi] += nblocks + b.nblocks;
        raise_path(&pp, end + b.nblocks);
    } else if (left) {
        pl->len[pi] += nblocks;
        raise_path(&pp, end);
    } else if (right) {
        sl->lba[si] = lba;
        sl->blk[si] = block;
        sl->len[si] += nblocks;
        lower_path(&sp, lba);
    } else {
        insert_extent(m, &x);
    }
    return 0;
}

int map_unset(struct map *m, uint64_t lba, uint64_t nblocks)
{
    if (nblocks > UINT64_MAX - lba)
        return -EINVAL;
    if (nblocks)
        unset_range(m, lba, lba + nblocks);
    return 0;
}

int map_lookup(const struct map *m, uint64_t lba, uint64_t nblocks, map_piece_fn fn, void *arg)
{
    if (nblocks > UINT64_MAX - lba)
        return -EINVAL;
    uint64_t pos = lba, end = lba + nblocks;
    const struct map_leaf *l = find_leaf(m, lba);
    uint32_t i = leaf_first_after(l, lba);
    while (pos < end) {
        if (i == l->n && l->next) {
            l = l->next;
            i = 0;
            continue;
        }
        if (i == l->n || l->lba[i] >= end)
            return fn(arg, pos, end - pos, 0, 0, 0);
        int rc;
        if (l->lba[i] > pos) {
            rc = fn(arg, pos, l->lba[i] - pos, 0, 0, 0);
            if (rc)
                return rc;
            pos = l->lba[i];
        }
        uint64_t stop = leaf_end(l, i) < end ? leaf_end(l, i) : end;
        rc = fn(arg, pos, stop - pos, l->seg[i], l->blk[i] + (uint32_t)(pos - l->lba[i]), 1);
        if (rc)
            return rc;
        pos = stop;
        i++;
    }
    return 0;
}

void map_iter_start(const struct map *m, struct map_iter *it)
{
    const void *cur = m->root;
    for (int d = 0; d < m->height - 1; d++)
        cur = ((const struct map_node *)cur)->child[0];
    it->leaf = cur;
    it->i = 0;
}

int map_iter_next(struct map_iter *it, struct map_extent *e)
{
    while (it->leaf && it->i == it->leaf->n) {
        it->leaf = it->leaf->next;
        it->i = 0;
    }
    if (!it->leaf)
        return 0;
    leaf_get(it->leaf, it->i++, e);
    return 1;
}

uint64_t map_count(const struct map *m)
{
    return m->count;
}

uint64_t map_mapped_blocks(const struct map *m)
{
    return m->mapped;
}

size_t map_mem_bytes(const struct map *m)
{
    return m->bytes;
}

/* ---- bulk load ---- */

__attribute__((format(printf, 3, 4))) static int load_fail(char *err, size_t errlen,
                                                           const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* Checks ext (rules 1 and 2) and counts the extents it makes once merged. */
static int load_validate(const struct map_extent *ext, size_t n, size_t *runs, uint64_t *blocks,
                         char *err, size_t errlen)
{
    struct map_extent run = {0};
    *runs = 0;
    *blocks = 0;
    for (size_t i = 0; i < n; i++) {
        const struct map_extent *x = &ext[i];
        if (!x->nblocks)
            return load_fail(err, errlen, "extent %zu (lba %" PRIu64 ") has no blocks", i,
                             x->lba);
        if (x->lba > UINT64_MAX - x->nblocks)
            return load_fail(err, errlen, "extent %zu (lba %" PRIu64 ") runs past the last block",
                             i, x->lba);
        if ((uint64_t)x->block + x->nblocks > BLOCK_LIMIT)
            return load_fail(err, errlen, "extent %zu (lba %" PRIu64 ") runs past block 2^32",
                             i, x->lba);
        if (i > 0 && x->lba < ext[i - 1].lba + ext[i - 1].nblocks)
            return load_fail(err, errlen,
                             "extent %zu (lba %" PRIu64 ") overlaps or precedes extent %zu", i,
                             x->lba, i - 1);
        *blocks += x->nblocks;
        if (i > 0 && continues(&run, x)) {
            run.nblocks += x->nblocks;
        } else {
            run = *x;
            (*runs)++;
        }
    }
    return 0;
}

/* How many nodes to spread n entries over, each about `load` full and at
 * least min full (one node may hold fewer: it will be the root). */
static size_t spread(size_t n, size_t load, size_t min)
{
    size_t k = (n + load - 1) / load;
    while (k > 1 && n / k < min)
        k--;
    return k;
}

/* Builds the leaves from ext (merging as it goes) into leaves[0..nleaves),
 * runs extents spread evenly, and records each leaf's first lba. */
static void load_leaves(struct map *m, const struct map_extent *ext, size_t n, size_t runs,
                        void **leaves, uint64_t *first, size_t nleaves)
{
    struct map_leaf *l = NULL;
    size_t li = 0, quota = 0;
    struct map_extent run = ext[0];
    for (size_t i = 1; i <= n; i++) {
        if (i < n && continues(&run, &ext[i])) {
            run.nblocks += ext[i].nblocks;
            continue;
        }
        if (!l || l->n == quota) {
            struct map_leaf *nl = leaf_new(m);
            if (l)
                l->next = nl;
            l = nl;
            quota = runs / nleaves + (li < runs % nleaves);
            first[li] = run.lba;
            leaves[li++] = l;
        }
        leaf_put(m, l, l->n, &run);
        if (i < n)
            run = ext[i];
    }
}

/* Builds inner levels over the cnt nodes in child[] (first[] holding the
 * first lba under each) until one root is left; returns it. */
static void *load_inner(struct map *m, void **child, uint64_t *first, size_t cnt)
{
    size_t load = m->node_max - m->node_max / 8;
    while (cnt > 1) {
        size_t k = spread(cnt, load, m->node_min), c = 0;
        for (size_t j = 0; j < k; j++) {
            struct map_node *nd = node_new(m);
            size_t take = cnt / k + (j < cnt % k);
            uint64_t f = first[c];
            for (size_t t = 0; t < take; t++, c++) {
                if (t > 0)
                    nd->key[t - 1] = first[c];
                nd->child[t] = child[c];
            }
            nd->n = (uint32_t)take;
            child[j] = nd;
            first[j] = f;
        }
        cnt = k;
        m->height++;
    }
    return child[0];
}

int map_load(struct map *m, const struct map_extent *ext, size_t n, char *err, size_t errlen)
{
    if (m->count)
        return load_fail(err, errlen, "the map is not empty (%" PRIu64 " extents)", m->count);
    size_t runs;
    uint64_t blocks;
    int rc = load_validate(ext, n, &runs, &blocks, err, errlen);
    if (rc || !n)
        return rc;
    size_t nleaves = spread(runs, m->leaf_max - m->leaf_max / 8, m->leaf_min);
    void **nodes = xmalloc(nleaves * sizeof *nodes);
    uint64_t *first = xmalloc(nleaves * sizeof *first);
    leaf_free(m, m->root);
    m->height = 1;
    load_leaves(m, ext, n, runs, nodes, first, nleaves);
    m->root = load_inner(m, nodes, first, nleaves);
    m->mapped = blocks;
    free(nodes);
    free(first);
    return 0;
}

/* ---- checking ---- */

struct check {
    const struct map *m;
    char *err;
    size_t errlen;
    const struct map_leaf *prev_leaf;
    struct map_extent prev;
    uint64_t count, mapped;
    size_t leaves, nodes;
};

__attribute__((format(printf, 2, 3))) static int check_fail(struct check *c, const char *fmt,
                                                            ...)
{
    if (c->err && c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int check_extent(struct check *c, const struct map_extent *x, uint64_t lo, uint64_t hi)
{
    if (!x->nblocks || x->lba > UINT64_MAX - x->nblocks ||
        (uint64_t)x->block + x->nblocks > BLOCK_LIMIT)
        return check_fail(c, "rule 2: invalid extent lba %" PRIu64 " len %" PRIu32
                              " block %" PRIu32, x->lba, x->nblocks, x->block);
    if (x->lba < lo || x->lba + x->nblocks > hi)
        return check_fail(c, "rule 4: extent [%" PRIu64 ", %" PRIu64 ") outside its keys [%" PRIu64
                              ", %" PRIu64 "]", x->lba, x->lba + x->nblocks, lo, hi);
    if (c->count > 0) {
        if (c->prev.lba + c->prev.nblocks > x->lba)
            return check_fail(c, "rule 1: extent at %" PRIu64 " (len %" PRIu32
                                  ") not before extent at %" PRIu64, c->prev.lba,
                              c->prev.nblocks, x->lba);
        if (continues(&c->prev, x))
            return check_fail(c, "rule 3: extent at %" PRIu64 " continues extent at %" PRIu64,
                              x->lba, c->prev.lba);
    }
    c->prev = *x;
    c->count++;
    c->mapped += x->nblocks;
    return 0;
}

static int check_leaf(struct check *c, const struct map_leaf *l, int is_root, uint64_t lo,
                      uint64_t hi)
{
    const struct map *m = c->m;
    if (l->n > m->leaf_max || (!is_root && l->n < m->leaf_min))
        return check_fail(c, "rule 5: leaf %zu holds %" PRIu32 " extents (min %" PRIu32
                              ", max %" PRIu32 ")", c->leaves, l->n, m->leaf_min, m->leaf_max);
    if (c->prev_leaf && c->prev_leaf->next != l)
        return check_fail(c, "rule 6: leaf %zu is not its left neighbour's next", c->leaves);
    c->prev_leaf = l;
    c->leaves++;
    for (uint32_t i = 0; i < l->n; i++) {
        struct map_extent x;
        leaf_get(l, i, &x);
        if (check_extent(c, &x, lo, hi) < 0)
            return -1;
    }
    return 0;
}

static int check_node(struct check *c, const void *node, int depth, uint64_t lo, uint64_t hi)
{
    const struct map *m = c->m;
    if (depth == m->height - 1)
        return check_leaf(c, node, depth == 0, lo, hi);
    const struct map_node *nd = node;
    uint32_t min = depth == 0 ? 2 : m->node_min;
    if (nd->n > m->node_max || nd->n < min)
        return check_fail(c, "rule 5: node at depth %d has %" PRIu32 " children (min %" PRIu32
                              ", max %" PRIu32 ")", depth, nd->n, min, m->node_max);
    c->nodes++;
    for (uint32_t i = 0; i < nd->n; i++) {
        uint64_t clo = i > 0 ? nd->key[i - 1] : lo;
        uint64_t chi = i + 1 < nd->n ? nd->key[i] : hi;
        if (clo > chi || clo < lo || chi > hi)
            return check_fail(c, "rule 4: keys out of order at depth %d child %" PRIu32, depth,
                              i);
        if (check_node(c, nd->child[i], depth + 1, clo, chi) < 0)
            return -1;
    }
    return 0;
}

int map_check(const struct map *m, char *err, size_t errlen)
{
    struct check c = {.m = m, .err = err, .errlen = errlen};
    if (m->height < 1 || m->height > MAX_HEIGHT)
        return check_fail(&c, "rule 5: height %d", m->height);
    if (check_node(&c, m->root, 0, 0, UINT64_MAX) < 0)
        return -1;
    if (c.prev_leaf->next)
        return check_fail(&c, "rule 6: the last leaf has a next");
    if (c.count != m->count || c.mapped != m->mapped)
        return check_fail(&c, "rule 7: the tree holds %" PRIu64 " extents of %" PRIu64
                              " blocks, the counters say %" PRIu64 " of %" PRIu64, c.count,
                          c.mapped, m->count, m->mapped);
    size_t bytes = alloc_bytes(sizeof *m) + c.leaves * alloc_bytes(sizeof(struct map_leaf)) +
                   c.nodes * alloc_bytes(sizeof(struct map_node));
    if (bytes != m->bytes)
        return check_fail(&c, "rule 7: the nodes take %zu bytes, the counter says %zu", bytes,
                          m->bytes);
    return 0;
}
