/*
 * The last steps of a container process: wait for `start`, reset signals,
 * load a late seccomp filter, execve. No Python code may run here: once the
 * filter is loaded every syscall counts, and Python would make many.
 *
 * Compiled twice from this one file: into the shim (pyrunc_exec_tail, for a
 * process that runs Python after `start`, and for exec'd processes) and into
 * the waiting init (init.c), a static program a container's init becomes
 * when it is ready, so that a created container waits in a few pages of C
 * instead of a copy of the runtime's interpreter.
 *
 * Functions return -errno on failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

/* Returns the listener fd with SECCOMP_FILTER_FLAG_NEW_LISTENER, else 0. */
long pyrunc_seccomp_install(const void *prog, unsigned short len, unsigned flags)
{
    struct sock_fprog fprog = { len, (struct sock_filter *)prog };
    long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog);
    return r < 0 ? -errno : r;
}

static void exit_on_signal(int sig) { _exit(128 + sig); }

/* While it waits for `start`, the container's init must die on the signals a
 * caller uses to stop a created container (`kill ID TERM`); as PID 1 of its
 * namespace a default disposition would make it ignore them. */
static const int stop_signals[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1,
                                    SIGUSR2, SIGALRM };

static void reset_signals(void)
{
    struct sigaction sa;
    sigset_t none;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &sa, NULL); /* SIGKILL/SIGSTOP/reserved fail harmlessly */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Block until `pyrunc start` opens the exec FIFO for reading: reopen the
 * O_PATH fd write-only through /proc, which blocks until a reader exists. */
long pyrunc_wait_for_start(int fifo_fd)
{
    struct sigaction sa;
    sigset_t none;
    char path[64];
    int fd;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = exit_on_signal;
    for (size_t i = 0; i < sizeof stop_signals / sizeof *stop_signals; i++)
        sigaction(stop_signals[i], &sa, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    snprintf(path, sizeof path, "/proc/self/fd/%d", fifo_fd);
    do
        fd = open(path, O_WRONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -errno;
    if (write(fd, "0", 1) != 1) {
        int err = errno;
        close(fd);
        return -err;
    }
    close(fd);
    close(fifo_fd);
    return 0;
}

/* Returns only on failure: -errno, with *stage saying which step failed
 * (1 = waiting for start, 2 = seccomp, 3 = execve). */
long pyrunc_exec_tail(int fifo_fd, const void *prog, unsigned short prog_len,
                      unsigned seccomp_flags, const char *path,
                      char *const argv[], char *const envp[], int *stage)
{
    long r;
    *stage = 1;
    if (fifo_fd >= 0 && (r = pyrunc_wait_for_start(fifo_fd)) < 0)
        return r;
    reset_signals();
    *stage = 2;
    if (prog && (r = pyrunc_seccomp_install(prog, prog_len, seccomp_flags)) < 0)
        return r;
    *stage = 3;
    execve(path, argv, envp);
    return -errno;
}
