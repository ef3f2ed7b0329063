/* ha_import.h - converting a Heartbeat v1 set-up (ha.cf, haresources,
 * authkeys) to buoy-ha.conf; what maps is listed in ha_import.c. */
#ifndef BUOY_HA_IMPORT_H
#define BUOY_HA_IMPORT_H

#include "util/buf.h"

#include <stddef.h>

struct ha_import_opts {
    const char *ha_cf, *haresources, *authkeys;
    const char *node;        /* NULL: uname -n up to the first dot */
    const char *key_out;     /* written with mode 0600 */
    const char *lease_store; /* required */
};

/* Appends the configuration to out and writes the key file (creating its
 * directory, mode 0700, when missing).  What was converted only in part or
 * needs a hand (a log setting, a resource script that is not there) goes
 * to warn, one line each, and as a comment into the configuration.  0, or
 * -1 with a one-line err naming the file and what to do. */
int ha_import(const struct ha_import_opts *io, struct buf *out, struct buf *warn, char *err,
              size_t errlen);

#endif
