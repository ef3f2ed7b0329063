/* run.c - helper programs with a timeout (see run.h). */
#include "run.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define OUT_MAX (64 * 1024)

extern char **environ;

static void child(char *const argv[], char *const extra_env[], int wfd)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    setpgid(0, 0);
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0) {
        dup2(nul, 0);
        if (nul > 0)
            close(nul);
    }
    dup2(wfd, 1);
    dup2(wfd, 2);
    if (wfd > 2)
        close(wfd);
    for (int i = 0; extra_env && extra_env[i]; i++)
        putenv(extra_env[i]);
    execvp(argv[0], argv);
    fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

static __thread int (*abort_fn)(void *, char *, size_t);
static __thread void *abort_arg;

void run_set_abort(int (*abort)(void *arg, char *why, size_t whylen), void *arg)
{
    abort_fn = abort;
    abort_arg = arg;
}

int run_cmd(char *const argv[], char *const extra_env[], uint64_t timeout_ms, struct buf *out,
            char *err, size_t errlen)
{
    int p[2];
    struct buf local = {0};
    struct buf *o = out ? out : &local;
    buf_reset(o);
    if (pipe2(p, O_CLOEXEC) < 0) {
        set_err(err, errlen, "%s: pipe: %s", argv[0], strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        set_err(err, errlen, "%s: fork: %s", argv[0], strerror(errno));
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        close(p[0]);
        /* the write end must survive exec */
        int w = dup(p[1]);
        child(argv, extra_env, w);
    }
    setpgid(pid, pid); /* both sides, so the group exists before any kill */
    close(p[1]);
    uint64_t start = clock_mono_ms(), deadline = start + timeout_ms, kill_at = 0;
    int open_pipe = 1, status = 0, reaped = 0, timed_out = 0, cancelled = 0;
    char why[256] = "";
    while (!reaped) {
        uint64_t now = clock_mono_ms();
        if (!timed_out && abort_fn && abort_fn(abort_arg, why, sizeof why)) {
            timed_out = cancelled = 1;
            kill(-pid, SIGTERM);
            kill_at = now + 1000;
        }
        if (!timed_out && now >= deadline) {
            timed_out = 1;
            kill(-pid, SIGTERM);
            kill_at = now + 1000;
        }
        if (timed_out && kill_at && now >= kill_at) {
            kill(-pid, SIGKILL);
            kill_at = 0;
        }
        if (open_pipe) {
            struct pollfd pf = {.fd = p[0], .events = POLLIN};
            int r = poll(&pf, 1, 50);
            if (r > 0) {
                char tmp[4096];
                ssize_t n = read(p[0], tmp, sizeof tmp);
                if (n > 0) {
                    if (o->len < OUT_MAX)
                        buf_append(o, tmp,
                                   o->len + (size_t)n > OUT_MAX ? OUT_MAX - o->len : (size_t)n);
                } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
                    open_pipe = 0;
                }
            }
        } else {
            clock_sleep_ms(5);
        }
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            reaped = 1;
            /* drain what is left, without blocking on grandchildren that keep the pipe */
            if (open_pipe) {
                fcntl(p[0], F_SETFL, O_NONBLOCK);
                char tmp[4096];
                ssize_t n;
                while ((n = read(p[0], tmp, sizeof tmp)) > 0)
                    if (o->len + (size_t)n <= OUT_MAX)
                        buf_append(o, tmp, (size_t)n);
            }
        }
    }
    close(p[0]);
    char line[200];
    int ret;
    if (cancelled) {
        set_err(err, errlen, "%s cancelled: %s", argv[0], why);
        ret = -1;
    } else if (timed_out) {
        set_err(err, errlen, "%s timed out after %llums", argv[0], (unsigned long long)timeout_ms);
        ret = -1;
    } else if (WIFSIGNALED(status)) {
        set_err(err, errlen, "%s died of signal %d", argv[0], WTERMSIG(status));
        ret = -1;
    } else {
        ret = WEXITSTATUS(status);
        if (ret == 127)
            set_err(err, errlen, "%s", run_last_line(o, line, sizeof line));
    }
    buf_free(&local);
    return ret;
}

const char *run_last_line(const struct buf *out, char *line, size_t n)
{
    size_t end = out->len;
    while (end && (out->p[end - 1] == '\n' || out->p[end - 1] == ' ' || out->p[end - 1] == '\r'))
        end--;
    size_t start = end;
    while (start && out->p[start - 1] != '\n')
        start--;
    size_t len = end - start;
    if (len >= n)
        len = n - 1;
    if (len)
        memcpy(line, out->p + start, len);
    line[len] = '\0';
    return line;
}
