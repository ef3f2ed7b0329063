/* buf.h - a growable byte buffer.
 *
 * Layout: p[0..len) holds the bytes; p[len] is always a NUL so a buffer of
 * text can be used as a C string; cap counts the allocation without that NUL.
 * A zeroed struct buf is a valid empty buffer. */
#ifndef BUOY_BUF_H
#define BUOY_BUF_H

#include <stddef.h>

struct buf {
    char *p;
    size_t len;
    size_t cap;
};

void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_reset(struct buf *b); /* len = 0, keeps the allocation */
void buf_free(struct buf *b);
/* Hands the bytes to the caller (NUL-terminated, never NULL) and empties b. */
char *buf_steal(struct buf *b, size_t *len);

#endif
