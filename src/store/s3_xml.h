/* s3_xml.h - the S3 XML answers buoy reads: ListObjectsV2 pages (with
 * CommonPrefixes when a delimiter was given), CopyObjectResult, and error
 * bodies (<Error><Code>..</Code><Message>..</Message></Error>). */
#ifndef BUOY_S3_XML_H
#define BUOY_S3_XML_H

#include "store.h"

#include <stddef.h>

struct s3_list_page {
    struct store_obj *v; /* appended to across pages */
    size_t n, cap;
    int truncated;
    char *next_token; /* NextContinuationToken, heap, NULL if absent */
    char *last_key;   /* this page's last key, for start-after when there is no token */
    char **pfx;       /* CommonPrefixes/Prefix, appended to across pages (heap) */
    size_t npfx, pfxcap;
};

/* Appends a page's entries to page (the prefix is stripped: skip bytes are
 * dropped from each key).  -1 if the XML is malformed. */
int s3_parse_list(const char *xml, size_t len, size_t skip, struct s3_list_page *page);
void s3_list_page_clear(struct s3_list_page *page); /* frees token and last_key only */
/* The store error for an HTTP status and S3 error code ("" when none):
 * 404 not found (NoSuchBucket: fatal), 412 precondition, 409 conflict,
 * 401/403 auth, 429 and 503 SlowDown throttled, other 5xx, 408 and 400
 * RequestTimeout transient, anything else fatal. */
enum store_err s3_classify(long status, const char *code);

/* A CopyObject answer, which S3 may send with status 200 and an <Error>
 * body: 0 with etag filled (quotes stripped) from <CopyObjectResult>, 1 with
 * code and msg filled from <Error>, -1 if it is neither. */
int s3_parse_copy(const char *xml, size_t len, char *etag, size_t etaglen, char *code,
                  size_t codelen, char *msg, size_t msglen);

/* Fills code and message (empty strings when absent). -1 if not XML. */
int s3_parse_error(const char *xml, size_t len, char *code, size_t codelen, char *msg,
                   size_t msglen);

#endif
