/* creds.h - AWS credentials: where they come from and keeping them fresh.
 *
 * Resolution order (the AWS CLI's, less the parts we do not need):
 *   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
 *   2. shared credentials file: $AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials,
 *      section [profile] where profile is the argument, else $AWS_PROFILE, else "default"
 *   3. EC2 instance role through IMDSv2: PUT /latest/api/token, then
 *      GET /latest/meta-data/iam/security-credentials/ and .../ROLE.
 *      Endpoint $AWS_EC2_METADATA_SERVICE_ENDPOINT (default http://169.254.169.254);
 *      skipped when AWS_EC2_METADATA_DISABLED=true.
 * An explicit profile that is missing is an error, not a fall-through.
 * Temporary credentials are refreshed when less than refresh_margin seconds
 * remain before their expiry. */
#ifndef BUOY_CREDS_H
#define BUOY_CREDS_H

#include <stddef.h>
#include <time.h>

struct aws_creds {
    char *access_key;
    char *secret_key;
    char *token;        /* NULL for long-term keys */
    time_t expires;     /* 0: does not expire */
    const char *source; /* "environment", "profile NAME", "instance role NAME" */
};

struct creds_provider;

/* profile may be NULL.  Returns NULL and fills err (one line) when nothing
 * supplies credentials. */
struct creds_provider *creds_open(const char *profile, char *err, size_t errlen);
/* The current credentials, refreshed first if they expire within the margin.
 * The pointer stays valid until the next creds_get or creds_close.  Returns 0,
 * or -1 with err filled (a failed refresh of still-valid creds logs a warning
 * and returns the old ones). */
int creds_get(struct creds_provider *p, const struct aws_creds **out, char *err, size_t errlen);
/* Default 300 s. */
void creds_set_refresh_margin(struct creds_provider *p, int seconds);
/* How many times the provider has fetched from its source (for tests/stats). */
unsigned creds_fetch_count(const struct creds_provider *p);
void creds_close(struct creds_provider *p);

/* One IMDSv2 read (session token, then GET path, e.g.
 * "/latest/meta-data/instance-id"), trimmed, into out.  Same endpoint and
 * AWS_EC2_METADATA_DISABLED rules as above.  0, or -1 with err filled. */
int creds_imds_get(const char *path, char *out, size_t outlen, char *err, size_t errlen);

#endif
