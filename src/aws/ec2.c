/* ec2.c - EC2 Query API calls for an Elastic IP (see ec2.h). */
#include "ec2.h"
#include "creds.h"
#include "sigv4.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/mem.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EC2_VERSION  "2016-11-15"
#define EC2_MAX_BODY (1024 * 1024)

struct ec2 {
    char *scheme, *host, *region;
    long timeout_ms;
    struct creds_provider *creds;
};

struct ec2 *ec2_open(const char *endpoint, const char *region, const char *profile, char *err,
                     size_t errlen)
{
    const char *reg = region && *region                               ? region
                      : getenv("AWS_REGION") && *getenv("AWS_REGION") ? getenv("AWS_REGION")
                      : getenv("AWS_DEFAULT_REGION") && *getenv("AWS_DEFAULT_REGION")
                          ? getenv("AWS_DEFAULT_REGION")
                          : "us-east-1";
    struct ec2 *e = xcalloc(1, sizeof *e);
    e->region = xstrdup(reg);
    e->timeout_ms = 10000;
    if (endpoint && *endpoint) {
        const char *sep = strstr(endpoint, "://");
        if (!sep ||
            (strncmp(endpoint, "http://", 7) != 0 && strncmp(endpoint, "https://", 8) != 0)) {
            set_err(err, errlen, "EC2 endpoint %s: use http://HOST[:PORT] or https://HOST",
                    endpoint);
            ec2_close(e);
            return NULL;
        }
        e->scheme = xstrndup(endpoint, (size_t)(sep - endpoint));
        e->host = xstrdup(sep + 3);
        size_t n = strlen(e->host);
        while (n && e->host[n - 1] == '/')
            e->host[--n] = '\0';
    } else {
        e->scheme = xstrdup("https");
        e->host = xasprintf("ec2.%s.amazonaws.com", reg);
    }
    e->creds = creds_open(profile, err, errlen);
    if (!e->creds) {
        ec2_close(e);
        return NULL;
    }
    return e;
}

void ec2_set_timeout(struct ec2 *e, long ms)
{
    e->timeout_ms = ms > 100 ? ms : 100;
}

void ec2_close(struct ec2 *e)
{
    if (!e)
        return;
    if (e->creds)
        creds_close(e->creds);
    free(e->scheme);
    free(e->host);
    free(e->region);
    free(e);
}

static size_t on_body(char *d, size_t size, size_t nmemb, void *arg)
{
    struct buf *b = arg;
    size_t n = size * nmemb;
    if (b->len + n > EC2_MAX_BODY)
        return 0;
    buf_append(b, d, n);
    return n;
}

void ec2_xml_text(const char *xml, const char *tag, char *out, size_t n)
{
    char open[80], close[80];
    out[0] = '\0';
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *a = xml ? strstr(xml, open) : NULL;
    if (!a)
        return;
    a += strlen(open);
    const char *b = strstr(a, close);
    if (!b)
        return;
    size_t len = (size_t)(b - a);
    if (len >= n)
        len = n - 1;
    memcpy(out, a, len);
    out[len] = '\0';
}

int ec2_call(struct ec2 *e, const char *action, const char *params, char **xml, char *err,
             size_t errlen)
{
    const struct aws_creds *cr;
    char why[256], amz_date[17], hash[65], curl_err[CURL_ERROR_SIZE] = "";
    struct buf body = {0}, auth = {0}, url = {0}, resp = {0};
    int ret = -1;
    *xml = NULL;
    if (creds_get(e->creds, &cr, why, sizeof why) < 0) {
        set_err(err, errlen, "EC2 %s: %s", action, why);
        return -1;
    }
    buf_printf(&body, "Action=%s&Version=%s%s%s", action, EC2_VERSION, params && *params ? "&" : "",
               params ? params : "");
    clock_amz_date(time(NULL), amz_date);
    sha256_hex(body.p, body.len, hash);
    static const char ctype[] = "application/x-www-form-urlencoded; charset=utf-8";
    struct sigv4_header sh[4] = {
        {"content-type", ctype},
        {"host", e->host},
        {"x-amz-date", amz_date},
        {"x-amz-security-token", cr->token},
    };
    struct sigv4_request sreq = {
        .method = "POST",
        .path = "/",
        .query = "",
        .headers = sh,
        .nheaders = cr->token ? 4 : 3,
        .payload_hash = hash,
        .normalize_path = 1,
    };
    struct sigv4_key key = {
        .access_key = cr->access_key,
        .secret_key = cr->secret_key,
        .region = e->region,
        .service = "ec2",
        .amz_date = amz_date,
    };
    sigv4_authorization(&sreq, &key, &auth);

    CURL *h = curl_easy_init();
    if (!h) {
        set_err(err, errlen, "EC2 %s: curl_easy_init failed", action);
        goto out;
    }
    struct curl_slist *hl = NULL;
    char *line;
    line = xasprintf("Content-Type: %s", ctype);
    hl = curl_slist_append(hl, line);
    free(line);
    line = xasprintf("Host: %s", e->host);
    hl = curl_slist_append(hl, line);
    free(line);
    line = xasprintf("X-Amz-Date: %s", amz_date);
    hl = curl_slist_append(hl, line);
    free(line);
    if (cr->token) {
        line = xasprintf("X-Amz-Security-Token: %s", cr->token);
        hl = curl_slist_append(hl, line);
        free(line);
    }
    line = xasprintf("Authorization: %s", auth.p);
    hl = curl_slist_append(hl, line);
    free(line);
    hl = curl_slist_append(hl, "Expect:");
    buf_printf(&url, "%s://%s/", e->scheme, e->host);
    curl_easy_setopt(h, CURLOPT_URL, url.p);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.p);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)body.len);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, e->timeout_ms < 3000 ? e->timeout_ms : 3000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, e->timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hl);
    if (rc != CURLE_OK) {
        set_err(err, errlen, "EC2 %s at %s: %s", action, url.p,
                *curl_err ? curl_err : curl_easy_strerror(rc));
        goto out;
    }
    buf_putc(&resp, '\0');
    resp.len--;
    if (status != 200) {
        char code[64], msg[200];
        ec2_xml_text(resp.p, "Code", code, sizeof code);
        ec2_xml_text(resp.p, "Message", msg, sizeof msg);
        set_err(err, errlen, "EC2 %s at %s: HTTP %ld %s: %s", action, url.p, status,
                *code ? code : "?", *msg ? msg : "(no message)");
        goto out;
    }
    *xml = buf_steal(&resp, NULL);
    ret = 0;
out:
    buf_free(&body);
    buf_free(&auth);
    buf_free(&url);
    buf_free(&resp);
    return ret;
}

static void form(struct buf *b, const char *name, const char *value)
{
    if (b->len)
        buf_putc(b, '&');
    sigv4_uri_encode(b, name, strlen(name), 0);
    buf_putc(b, '=');
    sigv4_uri_encode(b, value, strlen(value), 0);
}

int ec2_describe_address(struct ec2 *e, const char *public_ip, struct ec2_addr *out, char *err,
                         size_t errlen)
{
    struct buf p = {0};
    char *xml;
    memset(out, 0, sizeof *out);
    form(&p, "PublicIp.1", public_ip);
    int r = ec2_call(e, "DescribeAddresses", p.p, &xml, err, errlen);
    buf_free(&p);
    if (r < 0)
        return -1;
    const char *item = strstr(xml, "<item>");
    if (!item) {
        set_err(err, errlen, "EC2 DescribeAddresses: no Elastic IP %s in this account and region",
                public_ip);
        free(xml);
        return -1;
    }
    ec2_xml_text(item, "publicIp", out->public_ip, sizeof out->public_ip);
    ec2_xml_text(item, "allocationId", out->allocation_id, sizeof out->allocation_id);
    ec2_xml_text(item, "associationId", out->association_id, sizeof out->association_id);
    ec2_xml_text(item, "instanceId", out->instance_id, sizeof out->instance_id);
    free(xml);
    if (strcmp(out->public_ip, public_ip) != 0) {
        set_err(err, errlen, "EC2 DescribeAddresses: asked for %s, answered %s", public_ip,
                out->public_ip);
        return -1;
    }
    return 0;
}

int ec2_associate(struct ec2 *e, const struct ec2_addr *a, const char *instance_id, char *err,
                  size_t errlen)
{
    struct buf p = {0};
    char *xml;
    if (a->allocation_id[0])
        form(&p, "AllocationId", a->allocation_id);
    else
        form(&p, "PublicIp", a->public_ip);
    form(&p, "InstanceId", instance_id);
    form(&p, "AllowReassociation", "true");
    int r = ec2_call(e, "AssociateAddress", p.p, &xml, err, errlen);
    buf_free(&p);
    free(xml);
    return r;
}

int ec2_disassociate(struct ec2 *e, const struct ec2_addr *a, char *err, size_t errlen)
{
    struct buf p = {0};
    char *xml;
    if (a->association_id[0])
        form(&p, "AssociationId", a->association_id);
    else
        form(&p, "PublicIp", a->public_ip);
    int r = ec2_call(e, "DisassociateAddress", p.p, &xml, err, errlen);
    buf_free(&p);
    free(xml);
    return r;
}
