/* path.h - small helpers for paths on the local disk. */
#ifndef BUOY_UTIL_PATH_H
#define BUOY_UTIL_PATH_H

/* mkdir -p with mode for every directory it makes: 0, or -1 with errno. */
int path_mkdirs(const char *path, int mode);

#endif
