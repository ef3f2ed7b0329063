/* ec2.h - the few EC2 Query API calls an Elastic IP needs, signed with our
 * own SigV4 (sigv4.c), credentials from creds.c.
 *
 * Requests are POST / with a form body (Action=...&Version=2016-11-15),
 * signed for service "ec2"; answers are XML, of which we read a handful of
 * elements.  The endpoint defaults to https://ec2.REGION.amazonaws.com. */
#ifndef BUOY_EC2_H
#define BUOY_EC2_H

#include <stddef.h>

struct ec2;

struct ec2_addr {
    char public_ip[48];
    char allocation_id[64];
    char association_id[64];
    char instance_id[64]; /* "" when not associated */
};

/* endpoint, region, profile may be NULL.  NULL + err on failure. */
struct ec2 *ec2_open(const char *endpoint, const char *region, const char *profile, char *err,
                     size_t errlen);
void ec2_close(struct ec2 *e);
/* Each call gives up after ms (default 10 s; connecting, at most 3 s of it). */
void ec2_set_timeout(struct ec2 *e, long ms);

/* DescribeAddresses for one public IP.  0, or -1 with err. */
int ec2_describe_address(struct ec2 *e, const char *public_ip, struct ec2_addr *out, char *err,
                         size_t errlen);
/* AssociateAddress (AllowReassociation=true) of the address to an instance:
 * by allocation id when known (VPC), else by public IP.  0 or -1. */
int ec2_associate(struct ec2 *e, const struct ec2_addr *a, const char *instance_id, char *err,
                  size_t errlen);
/* DisassociateAddress by association id (or public IP when there is none). */
int ec2_disassociate(struct ec2 *e, const struct ec2_addr *a, char *err, size_t errlen);
/* Any call: params "Name=Value&..." already encoded, without Action.  The
 * answer's body goes into *xml (heap, NUL-terminated; caller frees). */
int ec2_call(struct ec2 *e, const char *action, const char *params, char **xml, char *err,
             size_t errlen);
/* The text of the first <tag>...</tag> inside xml, or "" (for tests too). */
void ec2_xml_text(const char *xml, const char *tag, char *out, size_t n);

#endif
