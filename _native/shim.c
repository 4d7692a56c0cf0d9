/*
 * pyrunc native shim: the syscalls Python's standard library lacks, plus the
 * last steps of a container process (wait for `start`, reset signals, load a
 * late seccomp filter, execve), which must not run Python code: after the
 * filter is loaded every syscall counts, and Python would make many.
 *
 * Every function returns -errno on failure (never sets a Python exception);
 * pyrunc/native.py turns that into OSError.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>

#define RET(expr) do { long _r = (expr); return _r < 0 ? -errno : _r; } while (0)

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

struct pyrunc_open_how { uint64_t flags, mode, resolve; };
struct pyrunc_mount_attr { uint64_t attr_set, attr_clr, propagation, userns_fd; };

long pyrunc_mount(const char *src, const char *tgt, const char *fstype,
                  unsigned long flags, const char *data)
{ RET(mount(src, tgt, fstype, flags, data)); }

long pyrunc_umount2(const char *tgt, int flags) { RET(umount2(tgt, flags)); }
long pyrunc_pivot_root(const char *new_root, const char *put_old)
{ RET(syscall(SYS_pivot_root, new_root, put_old)); }
long pyrunc_setns(int fd, int nstype) { RET(setns(fd, nstype)); }
long pyrunc_unshare(int flags) { RET(unshare(flags)); }
long pyrunc_sethostname(const char *name, size_t len) { RET(sethostname(name, len)); }
long pyrunc_setdomainname(const char *name, size_t len) { RET(setdomainname(name, len)); }
long pyrunc_prctl(int option, unsigned long a2, unsigned long a3,
                  unsigned long a4, unsigned long a5)
{ RET(prctl(option, a2, a3, a4, a5)); }
long pyrunc_syscall6(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{ RET(syscall(nr, a1, a2, a3, a4, a5, a6)); }

long pyrunc_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode,
                    uint64_t resolve)
{
    struct pyrunc_open_how how = { flags, mode, resolve };
    RET(syscall(SYS_openat2, dirfd, path, &how, sizeof how));
}

long pyrunc_close_range(unsigned first, unsigned last, unsigned flags)
{ RET(syscall(SYS_close_range, first, last, flags)); }

long pyrunc_open_tree(int dirfd, const char *path, unsigned flags)
{ RET(syscall(SYS_open_tree, dirfd, path, flags)); }

long pyrunc_move_mount(int from_dirfd, const char *from_path, int to_dirfd,
                       const char *to_path, unsigned flags)
{ RET(syscall(SYS_move_mount, from_dirfd, from_path, to_dirfd, to_path, flags)); }

long pyrunc_mount_setattr(int dirfd, const char *path, unsigned flags,
                          uint64_t attr_set, uint64_t attr_clr,
                          uint64_t propagation, uint64_t userns_fd)
{
    struct pyrunc_mount_attr attr = { attr_set, attr_clr, propagation, userns_fd };
    RET(syscall(SYS_mount_setattr, dirfd, path, flags, &attr, sizeof attr));
}

/* The filesystem type (statfs f_type) of what fd refers to. */
long pyrunc_fstatfs_type(int fd)
{
    struct statfs st;
    if (fstatfs(fd, &st) < 0)
        return -errno;
    return (long)(unsigned long)st.f_type;
}

/* Capabilities: 64-bit sets as two 32-bit words (version 3 ABI). */
long pyrunc_capget(int pid, uint64_t out[3])
{
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, pid };
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) < 0)
        return -errno;
    out[0] = data[0].effective | ((uint64_t)data[1].effective << 32);
    out[1] = data[0].permitted | ((uint64_t)data[1].permitted << 32);
    out[2] = data[0].inheritable | ((uint64_t)data[1].inheritable << 32);
    return 0;
}

long pyrunc_capset(uint64_t effective, uint64_t permitted, uint64_t inheritable)
{
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2] = {
        { (uint32_t)effective, (uint32_t)permitted, (uint32_t)inheritable },
        { (uint32_t)(effective >> 32), (uint32_t)(permitted >> 32),
          (uint32_t)(inheritable >> 32) },
    };
    RET(syscall(SYS_capset, &hdr, data));
}

/* --- process attributes (process.scheduler, ioPriority, execCPUAffinity,
 * linux.personality, linux.memoryPolicy) ----------------------------------- */

struct pyrunc_sched_attr {
    uint32_t size, policy;
    uint64_t flags;
    int32_t nice;
    uint32_t priority;
    uint64_t runtime, deadline, period;
    uint32_t util_min, util_max;
};

long pyrunc_sched_setattr(int pid, uint32_t policy, uint64_t flags, int32_t nice,
                          uint32_t priority, uint64_t runtime, uint64_t deadline,
                          uint64_t period)
{
    struct pyrunc_sched_attr attr = { sizeof attr, policy, flags, nice, priority,
                                      runtime, deadline, period, 0, 0 };
    RET(syscall(SYS_sched_setattr, pid, &attr, 0));
}

long pyrunc_ioprio_set(int which, int who, int ioprio)
{ RET(syscall(SYS_ioprio_set, which, who, ioprio)); }

long pyrunc_personality(unsigned long persona)
{ RET(syscall(SYS_personality, persona)); }

long pyrunc_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode)
{
    long r;
    do
        r = syscall(SYS_set_mempolicy, mode, nodemask, maxnode);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}

/* Every CPU the kernel may ever have (runc's tryResetCPUAffinity): the
 * kernel clamps the mask to its CPUs and the task's cpuset, so a process
 * forked by a pinned runtime does not keep the runtime's pin. */
long pyrunc_reset_cpu_affinity(int pid)
{
    static unsigned char all[64 * 1024 / 8];
    memset(all, 0xff, sizeof all);
    RET(syscall(SYS_sched_setaffinity, pid, sizeof all, all));
}

long pyrunc_pidfd_getfd(int pidfd, int fd, unsigned flags)
{ RET(syscall(SYS_pidfd_getfd, pidfd, fd, flags)); }

/* --- seccomp: pyrunc loads the BPF program itself (seccomp(2), as runc's
 * patchbpf does), so it can prepend the -ENOSYS stub and pass kernel flags
 * libseccomp may not know (NEW_LISTENER, WAIT_KILLABLE_RECV). ------------- */

/* pyrunc_seccomp_install: see tail.c */

/* A flag the kernel knows makes seccomp(2) fail on the NULL program (EFAULT)
 * rather than on the flags (EINVAL). */
long pyrunc_seccomp_flags_known(unsigned flags)
{
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, NULL) < 0)
        return errno == EFAULT;
    return 0;
}

/* Right after the filter is loaded: tell the host which fd is the listener
 * (it copies it with pidfd_getfd) and wait for its ack, then close ours, so
 * the listener dies with the agent's copy. Only write(2) may not be notified
 * here (the profile is refused then): nobody can answer before the host has
 * the fd. `msg` holds "%d" for the fd number. */
long pyrunc_seccomp_share_listener(int listener, int sync_fd, const char *msg)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, msg, listener);
    long r = 0;
    if (n < 0 || (size_t)n >= sizeof buf)
        r = -EINVAL;
    else if (write(sync_fd, buf, n) != n)
        r = -errno;
    else if ((n = read(sync_fd, buf, sizeof buf)) <= 0)
        r = n == 0 ? -EPIPE : -errno;
    close(listener);
    return r;
}

/* --- the last steps of a container process: in tail.c, which the waiting
 * init (init.c) is built from too ----------------------------------------- */
#include "tail.c"
