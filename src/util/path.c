/* path.c - small helpers for paths on the local disk (see path.h). */
#include "path.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int path_mkdirs(const char *path, int mode)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, (mode_t)mode) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(tmp, (mode_t)mode) < 0 && errno != EEXIST ? -1 : 0;
}
