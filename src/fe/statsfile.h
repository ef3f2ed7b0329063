/* statsfile.h - the text form of a volume's statistics: the `stats` file of
 * a FUSE mount, read by `buoy stats` and `buoy umount`.
 *
 * One "name value" pair a line, names in lower case with their unit
 * (_bytes, _usd), integers unless the name says ratio or usd; url,
 * journal_dir, error_reason and unsaved_note (the last two only in the
 * error state) are text to the end of the line.  The first line is
 * "buoy_stats 1" (the format version).  New names may be added; none is
 * ever renamed. */
#ifndef BUOY_FE_STATSFILE_H
#define BUOY_FE_STATSFILE_H

#include "util/buf.h"
#include "vol/vol.h"

/* Appends the stats of v (served from url by process pid) to out. */
void statsfile_format(struct vol *v, const char *url, int pid, struct buf *out);

#endif
