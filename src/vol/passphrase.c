/* passphrase.c - changing an encrypted volume's passphrase.
 *
 * The volume's master key stays; only its wrapping in the superblock
 * changes (keys.h): the old passphrase unwraps it, the new one (with a
 * fresh salt) wraps it again, and the superblock is rewritten with If-Match
 * on the ETag it was read with.  One PUT, so at every moment the volume
 * opens with exactly one of the two passphrases, and no object but the
 * superblock is touched.  A volume from before wrapped keys (version 2) is
 * upgraded on the way: its master key is its old passphrase's key.
 *
 * Mounts that are running keep their keys; the next open needs the new
 * passphrase.  Clones have their own superblocks and keep theirs. */
#include "keys.h"
#include "super.h"
#include "vol.h"
#include "store/store.h"

#include <stdio.h>
#include <string.h>

/* After a PUT that failed or whose answer is unknown: what the superblock
 * now is.  1 when it is the text we wrote, 0 when it is still the old one,
 * -1 when it is neither or cannot be read (why in err). */
static int which_super(struct store *s, const struct buf *old, const struct buf *new,
                       char *err, size_t errlen)
{
    struct buf now = {0};
    char why[STORE_ERRMSG_MAX];
    int rc = -1;
    if (store_get(s, SUPER_KEY, 0, 0, &now, NULL, why, sizeof why))
        snprintf(err, errlen,
                 "cannot tell whether the new passphrase took (reading the superblock back: "
                 "%s); one of the two opens the volume",
                 why);
    else if (now.len == new->len && memcmp(now.p, new->p, now.len) == 0)
        rc = 1;
    else if (now.len == old->len && memcmp(now.p, old->p, now.len) == 0)
        rc = 0;
    else
        snprintf(err, errlen, "the superblock changed while this ran (another passphrase "
                              "change?); nothing was changed by this one: run it again");
    buf_free(&now);
    return rc;
}

int vol_change_passphrase(const char *url, const struct vol_opts *o, const char *new_file,
                          uint64_t ops, uint64_t mem, char *err, size_t errlen)
{
    const char *at = strrchr(url, '@');
    if (at && !strchr(at, '/')) {
        snprintf(err, errlen, "a snapshot has its volume's passphrase: name the volume, not %s",
                 url);
        return -1;
    }
    if (!new_file) {
        snprintf(err, errlen, "give the new passphrase with --new-passphrase-file");
        return -1;
    }
    struct store *s = store_open(url, &o->store, err, errlen);
    if (!s)
        return -1;
    struct buf old = {0}, new = {0};
    struct store_obj info;
    struct vol_super sb;
    struct vol_keys k;
    char why[STORE_ERRMSG_MAX], *pass = NULL;
    size_t len = 0;
    int rc = -1, keyed = 0;
    enum store_err e = store_get(s, SUPER_KEY, 0, 0, &old, &info, why, sizeof why);
    if (e == STORE_ENOTFOUND)
        snprintf(err, errlen, "no volume at %s", url);
    else if (e)
        snprintf(err, errlen, "%s", why);
    else if (super_parse(old.p, old.len, &sb, why, sizeof why) < 0)
        snprintf(err, errlen, "%s/%s: %s", url, SUPER_KEY, why);
    else if (!super_encrypted(&sb))
        snprintf(err, errlen, "%s is not encrypted (encryption is chosen at buoy create)", url);
    else if (keys_unlock(&sb, old.p, o->passphrase_file, url, &k, err, errlen) == 0)
        keyed = 1;
    if (!keyed)
        goto out;
    if (keys_read_passphrase(new_file, &pass, &len, err, errlen) < 0)
        goto out;
    if (keys_lock(&sb, &k, pass, len, ops ? ops : sb.kdf_ops, mem ? mem : sb.kdf_mem, why,
                  sizeof why) < 0) {
        snprintf(err, errlen, "%s: %s", url, why);
        goto out;
    }
    super_encode_keyed(&sb, &k, &new);
    e = store_put(s, SUPER_KEY, new.p, new.len, STORE_IF_MATCH, info.etag, NULL, why, sizeof why);
    if (e == STORE_OK) {
        rc = 0;
        goto out;
    }
    /* A retried PUT whose first answer was lost meets its own ETag change
     * (EPRECOND); any other failure may also have landed.  Look. */
    switch (which_super(s, &old, &new, err, errlen)) {
    case 1:
        rc = 0;
        break;
    case 0:
        snprintf(err, errlen, "writing %s/%s: %s; the passphrase is unchanged", url, SUPER_KEY,
                 why);
        break;
    default:
        break;
    }
out:
    if (pass)
        keys_free_passphrase(pass, len);
    if (keyed)
        keys_wipe(&k);
    buf_free(&old);
    buf_free(&new);
    store_close(s);
    return rc;
}
