/* sys.h - what the frontends ask of the system: mount points, loop devices,
 * running a helper program (losetup, mkfs, mount) and reading its answer. */
#ifndef BUOY_FE_SYS_H
#define BUOY_FE_SYS_H

#include <stddef.h>

/* 1 when path (absolute, canonical) is a mount point, 0 when not, -1 when
 * /proc/self/mountinfo cannot be read.  fstype (may be NULL) gets the type. */
int sys_is_mountpoint(const char *path, char *fstype, size_t fslen);
/* The mount points of block device dev ("/dev/loop3"), deepest first, into
 * out[0..max); returns how many.  Each out[i] is malloc'd. */
int sys_mounts_of_dev(const char *dev, char **out, int max);
/* The loop devices whose backing file is file ("/mnt/x/disk"), into
 * out[0..max) as "/dev/loopN" (malloc'd); returns how many. */
int sys_loops_of_file(const char *file, char **out, int max);

/* 1 when path (absolute, canonical) is in a filesystem mounted from a loop
 * device whose backing file is MP/disk of a buoy FUSE mount MP (buoy mount
 * --fs): mp gets MP, fsdir (may be NULL) that filesystem's mount point
 * (the --fs-dir).  0 otherwise. */
int sys_buoy_mount_of(const char *path, char *mp, size_t mplen, char *fsdir, size_t fslen);

/* Runs argv[0] (searched in PATH) with argv, stdin from /dev/null, and
 * waits.  Its stdout goes to out (NUL-terminated, trailing newline removed;
 * may be NULL), its stderr to err (the same).  Returns the exit status, 128
 * + signal when killed, or -1 when it could not be started (err says why). */
int sys_run(char *const argv[], char *out, size_t outlen, char *err, size_t errlen);

/* Reads the whole small file path into a malloc'd NUL-terminated string. */
char *sys_read_file(const char *path);
/* The value of "name value" line name in text, copied to out; -1 if absent. */
int sys_stat_value(const char *text, const char *name, char *out, size_t outlen);

#endif
