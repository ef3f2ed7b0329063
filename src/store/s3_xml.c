/* s3_xml.c - reading S3's XML answers with expat (see s3_xml.h).
 *
 * Both parsers collect the text of the element being closed and act on its
 * name and depth; nothing else of the document is kept. */
#include "s3_xml.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/mem.h"

#include <expat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct xml_state {
    struct buf text;
    int depth;
    int in_contents; /* depth of <Contents>, 0 outside */
    int in_common;   /* depth of <CommonPrefixes>, 0 outside */
    char root[32];   /* the document element's local name */
    char *etag;      /* CopyObjectResult */
    size_t etaglen;
    struct s3_list_page *page;
    size_t skip;
    struct store_obj cur;
    char *code, *msg;
    size_t codelen, msglen;
};

/* Element names may carry a namespace prefix ("ns:Key"); compare the local part. */
static const char *local(const char *name)
{
    const char *c = strrchr(name, ':');
    return c ? c + 1 : name;
}

static void on_text(void *ud, const XML_Char *s, int len)
{
    struct xml_state *x = ud;
    buf_append(&x->text, s, (size_t)len);
}

static void on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    struct xml_state *x = ud;
    x->depth++;
    buf_reset(&x->text);
    if (x->depth == 1)
        snprintf(x->root, sizeof x->root, "%s", local(name));
    if (x->page && x->depth == 2 && strcmp(local(name), "Contents") == 0) {
        x->in_contents = x->depth;
        memset(&x->cur, 0, sizeof x->cur);
    } else if (x->page && x->depth == 2 && strcmp(local(name), "CommonPrefixes") == 0)
        x->in_common = x->depth;
}

static void strip_quotes(const char *in, char *out, size_t n)
{
    size_t len = strlen(in);
    if (len >= 2 && in[0] == '"' && in[len - 1] == '"')
        snprintf(out, n, "%.*s", (int)(len - 2), in + 1);
    else if (len >= 12 && strncmp(in, "&quot;", 6) == 0)
        snprintf(out, n, "%.*s", (int)(len - 12), in + 6);
    else
        snprintf(out, n, "%s", in);
}

static void list_end(struct xml_state *x, const char *n)
{
    struct s3_list_page *p = x->page;
    const char *t = x->text.p ? x->text.p : "";

    if (x->in_contents && x->depth == x->in_contents + 1) {
        if (strcmp(n, "Key") == 0) {
            free(x->cur.key);
            x->cur.key = xstrdup(t);
        } else if (strcmp(n, "Size") == 0)
            x->cur.size = strtoull(t, NULL, 10);
        else if (strcmp(n, "ETag") == 0)
            strip_quotes(t, x->cur.etag, sizeof x->cur.etag);
        else if (strcmp(n, "LastModified") == 0)
            x->cur.mtime = clock_parse_iso8601(t);
    } else if (x->in_contents && x->depth == x->in_contents) {
        x->in_contents = 0;
        if (!x->cur.key)
            return;
        free(p->last_key);
        p->last_key = xstrdup(x->cur.key);
        if (strlen(x->cur.key) < x->skip) { /* outside our prefix: not ours */
            free(x->cur.key);
            x->cur.key = NULL;
            return;
        }
        if (x->skip)
            memmove(x->cur.key, x->cur.key + x->skip, strlen(x->cur.key + x->skip) + 1);
        if (p->n == p->cap) {
            p->cap = p->cap ? p->cap * 2 : 256;
            p->v = xrealloc(p->v, p->cap * sizeof *p->v);
        }
        p->v[p->n++] = x->cur;
        memset(&x->cur, 0, sizeof x->cur);
    } else if (x->in_common && x->depth == x->in_common + 1 && strcmp(n, "Prefix") == 0) {
        if (strlen(t) < x->skip) /* outside our prefix: not ours */
            return;
        if (p->npfx == p->pfxcap) {
            p->pfxcap = p->pfxcap ? p->pfxcap * 2 : 64;
            p->pfx = xrealloc(p->pfx, p->pfxcap * sizeof *p->pfx);
        }
        p->pfx[p->npfx++] = xstrdup(t + x->skip);
    } else if (x->in_common && x->depth == x->in_common)
        x->in_common = 0;
    else if (x->depth == 2 && strcmp(n, "IsTruncated") == 0)
        p->truncated = strcmp(t, "true") == 0;
    else if (x->depth == 2 && strcmp(n, "NextContinuationToken") == 0) {
        free(p->next_token);
        p->next_token = xstrdup(t);
    }
}

static void on_end(void *ud, const XML_Char *name)
{
    struct xml_state *x = ud;
    const char *n = local(name);
    if (x->page)
        list_end(x, n);
    else if (x->etag && x->depth == 2 && strcmp(n, "ETag") == 0)
        strip_quotes(x->text.p ? x->text.p : "", x->etag, x->etaglen);
    else if (x->depth == 2 && strcmp(n, "Code") == 0)
        snprintf(x->code, x->codelen, "%s", x->text.p ? x->text.p : "");
    else if (x->depth == 2 && strcmp(n, "Message") == 0)
        snprintf(x->msg, x->msglen, "%s", x->text.p ? x->text.p : "");
    buf_reset(&x->text);
    x->depth--;
}

static int parse(struct xml_state *x, const char *xml, size_t len)
{
    XML_Parser p = XML_ParserCreate(NULL);
    if (!p)
        return -1;
    XML_SetUserData(p, x);
    XML_SetElementHandler(p, on_start, on_end);
    XML_SetCharacterDataHandler(p, on_text);
    int ok = XML_Parse(p, xml, (int)len, 1) == XML_STATUS_OK;
    XML_ParserFree(p);
    buf_free(&x->text);
    free(x->cur.key);
    return ok ? 0 : -1;
}

int s3_parse_list(const char *xml, size_t len, size_t skip, struct s3_list_page *page)
{
    struct xml_state x = {.page = page, .skip = skip};
    page->truncated = 0;
    s3_list_page_clear(page); /* token and last key are this page's only */
    return parse(&x, xml, len);
}

void s3_list_page_clear(struct s3_list_page *page)
{
    free(page->next_token);
    free(page->last_key);
    page->next_token = page->last_key = NULL;
}

int s3_parse_copy(const char *xml, size_t len, char *etag, size_t etaglen, char *code,
                  size_t codelen, char *msg, size_t msglen)
{
    struct xml_state x = {.etag = etag,
                          .etaglen = etaglen,
                          .code = code,
                          .msg = msg,
                          .codelen = codelen,
                          .msglen = msglen};
    etag[0] = code[0] = msg[0] = '\0';
    if (len == 0 || parse(&x, xml, len) < 0)
        return -1;
    if (strcmp(x.root, "Error") == 0)
        return 1;
    return strcmp(x.root, "CopyObjectResult") == 0 && etag[0] ? 0 : -1;
}

int s3_parse_error(const char *xml, size_t len, char *code, size_t codelen, char *msg,
                   size_t msglen)
{
    struct xml_state x = {.code = code, .msg = msg, .codelen = codelen, .msglen = msglen};
    code[0] = msg[0] = '\0';
    if (len == 0)
        return -1;
    return parse(&x, xml, len);
}
