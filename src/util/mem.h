/* mem.h - allocation that never returns NULL.
 *
 * buoy treats running out of memory as fatal: every allocation site would
 * otherwise need an error path that is never tested.  These wrappers print one
 * line naming the size and abort. */
#ifndef BUOY_MEM_H
#define BUOY_MEM_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a fresh heap string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
