/*
 * pyrunc-init: what a created container's init becomes once it is set up.
 *
 * The init is a fork of the runtime's Python interpreter; waiting for `start`
 * in it would keep a private copy of that heap (about 4.5 MB) per created
 * container. Instead, when everything but the last steps is done, it execs
 * this static program (no loader or libc needed in the rootfs), which waits
 * in a few pages and does the last steps of tail.c.
 *
 * It is run from a sealed memfd that `create` filled from the installed copy
 * (pyrunc/process/waiter.py): /proc/<pid>/exe of a waiting container is that
 * memfd, which no one can write (the CVE-2019-5736 lesson), never a file of
 * the host. The init hands over before it tells the host READY, and this
 * program makes itself non-dumpable before it does so, so no process of the
 * container can ever find it dumpable.
 *
 * argv[1] is the fd of a memfd with the parameters, NUL-separated:
 *   sync fd, READY message, fifo fd, seccomp flags, seccomp program length,
 *   path, argc, argv..., envc, envp..., then the program's bytes.
 * Exit status 255 with one line on stderr if a step fails (runc's init after
 * `start`: "exec PATH: why").
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "tail.c"

static const char *stages[] = { "", "waiting for start", "loading seccomp filter", "exec" };

static void fail(const char *what, const char *path, int err)
{
    char line[4200], why[128];
    snprintf(why, sizeof why, "%s", strerror(err));
    for (char *c = why; *c; c++)  /* Go's syscall.Errno words: lower case */
        if (*c >= 'A' && *c <= 'Z')
            *c += 'a' - 'A';
    int n = path ? snprintf(line, sizeof line, "%s %s: %s\n", what, path, why)
                 : snprintf(line, sizeof line, "%s: %s\n", what, why);
    if (n > 0)
        (void)!write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    _exit(255);
}

/* The next NUL-terminated field of [*p, end), or NULL if there is none. */
static char *field(char **p, char *end)
{
    char *s = *p, *nul = s < end ? memchr(s, 0, end - s) : NULL;
    if (!nul)
        return NULL;
    *p = nul + 1;
    return s;
}

static long number(char **p, char *end)
{
    char *s = field(p, end), *stop;
    long v = s ? strtol(s, &stop, 10) : -1;
    return s && *s && !*stop ? v : -1;
}

/* argc strings into a NULL-terminated array (in anonymous memory). */
static char **strings(char **p, char *end, long count)
{
    if (count < 0 || count > (end - *p) + 1)
        return NULL;
    char **v = mmap(NULL, (count + 1) * sizeof *v, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (v == MAP_FAILED)
        return NULL;
    for (long i = 0; i < count; i++)
        if (!(v[i] = field(p, end)))
            return NULL;
    v[count] = NULL;
    return v;
}

int main(int argc, char **argv)
{
    struct stat st;
    int stage = 0;

    /* first: the container must never find this process dumpable */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        fail("pyrunc-init: dumpable", NULL, errno);
    int params = argc == 2 ? atoi(argv[1]) : -1;
    if (params < 0 || fstat(params, &st) < 0 || st.st_size <= 0)
        fail("pyrunc-init: parameters", NULL, EINVAL);
    char *p = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, params, 0);
    if (p == MAP_FAILED)
        fail("pyrunc-init: parameters", NULL, errno);
    close(params);
    char *end = p + st.st_size;

    long sync_fd = number(&p, end);
    char *ready = field(&p, end);
    long fifo_fd = number(&p, end), flags = number(&p, end), prog_len = number(&p, end);
    char *path = field(&p, end);
    char **args = strings(&p, end, number(&p, end));
    char **env = args ? strings(&p, end, number(&p, end)) : NULL;
    if (sync_fd < 0 || !ready || fifo_fd < 0 || flags < 0 || !path || !env
        || prog_len < 0 || prog_len % 8 || prog_len / 8 > 0xffff || prog_len != end - p)
        fail("pyrunc-init: parameters", NULL, EINVAL);

    prctl(PR_SET_NAME, "pyrunc-init", 0, 0, 0);  /* (not the memfd's name) */
    /* the exec FIFO is held only while waiting: not by the user's program */
    if (fcntl(fifo_fd, F_SETFD, FD_CLOEXEC) < 0)
        fail("pyrunc-init: exec fifo", NULL, errno);

    /* set up: the host's create may return (SOCK_SEQPACKET: one message) */
    if (write(sync_fd, ready, strlen(ready)) < 0)
        fail("pyrunc-init: ready", NULL, errno);
    close(sync_fd);

    long r = pyrunc_exec_tail(fifo_fd, prog_len ? p : NULL, prog_len / 8, flags, path,
                              args, env, &stage);
    if (stage == 3)
        fail("exec", path, -r);
    fail(stages[stage], NULL, -r);
    return 255;
}
