/* sys.c - mount points, loop devices and helper programs (see sys.h). */
#include "sys.h"
#include "util/mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

/* mountinfo escapes space, tab, newline and backslash as \ooo */
static void unescape(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '7' && p[2] && p[3]) {
            *o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
            p += 3;
        } else
            *o++ = *p;
    }
    *o = '\0';
}

/* Calls fn(majmin, mountpoint, fstype, source) for each line of mountinfo;
 * stops when fn returns nonzero and returns that, else 0; -1 when the file
 * cannot be read. */
static int each_mount(int (*fn)(void *, const char *, const char *, const char *, const char *),
                      void *arg)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;
    while (!rc && getline(&line, &cap, f) > 0) {
        /* id parent maj:min root mountpoint opts [optional...] - fstype source superopts */
        char *save, *tok[6] = {0};
        int n = 0;
        for (char *t = strtok_r(line, " \n", &save); t && n < 5; t = strtok_r(NULL, " \n", &save))
            tok[n++] = t;
        if (n < 5)
            continue;
        char *t, *fstype = NULL, *source = NULL;
        while ((t = strtok_r(NULL, " \n", &save)))
            if (strcmp(t, "-") == 0) {
                fstype = strtok_r(NULL, " \n", &save);
                source = strtok_r(NULL, " \n", &save);
                break;
            }
        if (!fstype || !source)
            continue;
        unescape(tok[4]);
        unescape(source);
        rc = fn(arg, tok[2], tok[4], fstype, source);
    }
    free(line);
    fclose(f);
    return rc;
}

struct mp_arg {
    const char *path;
    char *fstype;
    size_t fslen;
};

static int match_mp(void *arg, const char *majmin, const char *mp, const char *fstype,
                    const char *source)
{
    struct mp_arg *a = arg;
    if (strcmp(mp, a->path) != 0)
        return 0;
    if (a->fstype)
        snprintf(a->fstype, a->fslen, "%s", fstype);
    return 1;
}

int sys_is_mountpoint(const char *path, char *fstype, size_t fslen)
{
    struct mp_arg a = {path, fstype, fslen};
    return each_mount(match_mp, &a);
}

struct dev_arg {
    char majmin[32];
    char **out;
    int n, max;
};

static int match_dev(void *arg, const char *majmin, const char *mp, const char *fstype,
                     const char *source)
{
    struct dev_arg *a = arg;
    if (strcmp(majmin, a->majmin) == 0 && a->n < a->max)
        a->out[a->n++] = xstrdup(mp);
    return 0;
}

int sys_mounts_of_dev(const char *dev, char **out, int max)
{
    struct stat st;
    if (stat(dev, &st) < 0 || !S_ISBLK(st.st_mode))
        return 0;
    struct dev_arg a = {.out = out, .max = max};
    snprintf(a.majmin, sizeof a.majmin, "%u:%u", major(st.st_rdev), minor(st.st_rdev));
    each_mount(match_dev, &a);
    /* later lines are mounted later, on top: unmount them first */
    for (int i = 0; i < a.n / 2; i++) {
        char *t = out[i];
        out[i] = out[a.n - 1 - i];
        out[a.n - 1 - i] = t;
    }
    return a.n;
}

int sys_loops_of_file(const char *file, char **out, int max)
{
    DIR *d = opendir("/sys/block");
    int n = 0;
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        if (strncmp(e->d_name, "loop", 4) != 0)
            continue;
        char path[300];
        snprintf(path, sizeof path, "/sys/block/%s/loop/backing_file", e->d_name);
        char *bf = sys_read_file(path);
        if (!bf)
            continue;
        bf[strcspn(bf, "\n")] = '\0';
        if (strcmp(bf, file) == 0)
            out[n++] = xasprintf("/dev/%s", e->d_name);
        free(bf);
    }
    closedir(d);
    return n;
}

struct deep_arg {
    const char *path;
    size_t best;
    char mp[4096], majmin[32];
};

/* The deepest mount whose mount point is path or a directory above it. */
static int match_deepest(void *arg, const char *majmin, const char *mp, const char *fstype,
                         const char *source)
{
    struct deep_arg *a = arg;
    size_t l = strlen(mp);
    int above = strcmp(mp, "/") == 0 ||
                (strncmp(a->path, mp, l) == 0 && (a->path[l] == '\0' || a->path[l] == '/'));
    if (above && l >= a->best) { /* later lines are mounted on top: >= */
        a->best = l;
        snprintf(a->mp, sizeof a->mp, "%s", mp);
        snprintf(a->majmin, sizeof a->majmin, "%s", majmin);
    }
    return 0;
}

int sys_buoy_mount_of(const char *path, char *mp, size_t mplen, char *fsdir, size_t fslen)
{
    struct deep_arg a = {.path = path};
    if (each_mount(match_deepest, &a) < 0 || !a.best)
        return 0;
    unsigned maj, min;
    if (sscanf(a.majmin, "%u:%u", &maj, &min) != 2)
        return 0;
    /* a loop device's backing file: /sys/dev/block/MAJ:MIN/loop/backing_file */
    char bfp[128], fstype[64] = "";
    snprintf(bfp, sizeof bfp, "/sys/dev/block/%u:%u/loop/backing_file", maj, min);
    char *bf = sys_read_file(bfp);
    if (!bf)
        return 0;
    bf[strcspn(bf, "\n")] = '\0';
    size_t l = strlen(bf);
    int found = 0;
    if (l > 5 && strcmp(bf + l - 5, "/disk") == 0) {
        bf[l - 5] = '\0';
        if (sys_is_mountpoint(bf, fstype, sizeof fstype) == 1 && strcmp(fstype, "fuse.buoy") == 0) {
            snprintf(mp, mplen, "%s", bf);
            if (fsdir)
                snprintf(fsdir, fslen, "%s", a.mp);
            found = 1;
        }
    }
    free(bf);
    return found;
}

static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
}

int sys_run(char *const argv[], char *out, size_t outlen, char *err, size_t errlen)
{
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) < 0)
        goto fail;
    if (pipe2(pe, O_CLOEXEC) < 0) {
        close(po[0]);
        close(po[1]);
        goto fail;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(po[0]);
        close(po[1]);
        close(pe[0]);
        close(pe[1]);
        goto fail;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        dup2(null, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s", argv[0], strerror(errno));
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    size_t no = 0, ne = 0;
    struct pollfd pf[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_fds = 2;
    char junk[4096];
    while (open_fds) {
        if (poll(pf, 2, -1) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char *dst = i == 0 ? out : err;
            size_t cap = i == 0 ? outlen : errlen, *len = i == 0 ? &no : &ne;
            ssize_t r;
            if (dst && *len + 1 < cap)
                r = read(pf[i].fd, dst + *len, cap - 1 - *len);
            else
                r = read(pf[i].fd, junk, sizeof junk);
            if (r > 0 && dst && *len + 1 < cap)
                *len += (size_t)r;
            if (r <= 0) {
                close(pf[i].fd);
                pf[i].fd = -1;
                open_fds--;
            }
        }
    }
    if (out && outlen) {
        out[no] = '\0';
        chomp(out);
    }
    if (err && errlen) {
        err[ne] = '\0';
        chomp(err);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
fail:
    if (err)
        snprintf(err, errlen, "cannot run %s: %s", argv[0], strerror(errno));
    return -1;
}

char *sys_read_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, len = 0;
    char *s = xmalloc(cap);
    for (;;) {
        if (len + 1 == cap)
            s = xrealloc(s, cap *= 2);
        ssize_t r = read(fd, s + len, cap - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r < 0) {
                free(s);
                s = NULL;
            }
            break;
        }
        len += (size_t)r;
    }
    close(fd);
    if (s)
        s[len] = '\0';
    return s;
}

int sys_stat_value(const char *text, const char *name, char *out, size_t outlen)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, name, n) == 0 && p[n] == ' ') {
            const char *v = p + n + 1;
            size_t l = strcspn(v, "\n");
            snprintf(out, outlen, "%.*s", (int)l, v);
            return 0;
        }
    return -1;
}
