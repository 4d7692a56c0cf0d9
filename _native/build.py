"""cffi build script (API mode): compiles _native/shim.c into pyrunc._native.

Run by setuptools at install time (see setup.py); needs a C compiler and
libseccomp's headers (Debian: libseccomp-dev).
"""
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent

CDEF = """
long pyrunc_mount(const char *src, const char *tgt, const char *fstype,
                  unsigned long flags, const char *data);
long pyrunc_umount2(const char *tgt, int flags);
long pyrunc_pivot_root(const char *new_root, const char *put_old);
long pyrunc_setns(int fd, int nstype);
long pyrunc_unshare(int flags);
long pyrunc_sethostname(const char *name, size_t len);
long pyrunc_setdomainname(const char *name, size_t len);
long pyrunc_prctl(int option, unsigned long a2, unsigned long a3,
                  unsigned long a4, unsigned long a5);
long pyrunc_syscall6(long nr, long a1, long a2, long a3, long a4, long a5, long a6);
long pyrunc_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode,
                    uint64_t resolve);
long pyrunc_close_range(unsigned first, unsigned last, unsigned flags);
long pyrunc_open_tree(int dirfd, const char *path, unsigned flags);
long pyrunc_move_mount(int from_dirfd, const char *from_path, int to_dirfd,
                       const char *to_path, unsigned flags);
long pyrunc_mount_setattr(int dirfd, const char *path, unsigned flags,
                          uint64_t attr_set, uint64_t attr_clr,
                          uint64_t propagation, uint64_t userns_fd);
long pyrunc_fstatfs_type(int fd);
long pyrunc_capget(int pid, uint64_t out[3]);
long pyrunc_capset(uint64_t effective, uint64_t permitted, uint64_t inheritable);
long pyrunc_sched_setattr(int pid, uint32_t policy, uint64_t flags, int32_t nice,
                          uint32_t priority, uint64_t runtime, uint64_t deadline,
                          uint64_t period);
long pyrunc_ioprio_set(int which, int who, int ioprio);
long pyrunc_personality(unsigned long persona);
long pyrunc_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode);
long pyrunc_reset_cpu_affinity(int pid);
long pyrunc_pidfd_getfd(int pidfd, int fd, unsigned flags);
long pyrunc_seccomp_install(const void *prog, unsigned short len, unsigned flags);
long pyrunc_seccomp_flags_known(unsigned flags);
long pyrunc_seccomp_share_listener(int listener, int sync_fd, const char *msg);
long pyrunc_wait_for_start(int fifo_fd);
long pyrunc_exec_tail(int fifo_fd, const void *prog, unsigned short prog_len,
                      unsigned seccomp_flags, const char *path,
                      char *const argv[], char *const envp[], int *stage);

/* libseccomp */
typedef void *scmp_filter_ctx;
typedef uint64_t scmp_datum_t;
enum scmp_compare { SCMP_CMP_NE = 1, SCMP_CMP_LT = 2, SCMP_CMP_LE = 3,
                    SCMP_CMP_EQ = 4, SCMP_CMP_GE = 5, SCMP_CMP_GT = 6,
                    SCMP_CMP_MASKED_EQ = 7 };
struct scmp_arg_cmp { unsigned int arg; enum scmp_compare op;
                      scmp_datum_t datum_a; scmp_datum_t datum_b; };
struct scmp_version { unsigned int major; unsigned int minor; unsigned int micro; };
const struct scmp_version *seccomp_version(void);
unsigned int seccomp_api_get(void);
scmp_filter_ctx seccomp_init(uint32_t def_action);
void seccomp_release(scmp_filter_ctx ctx);
int seccomp_attr_set(scmp_filter_ctx ctx, int attr, uint32_t value);
uint32_t seccomp_arch_resolve_name(const char *arch_name);
uint32_t seccomp_arch_native(void);
int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token);
int seccomp_arch_exist(const scmp_filter_ctx ctx, uint32_t arch_token);
int seccomp_syscall_resolve_name(const char *name);
int seccomp_syscall_resolve_name_arch(uint32_t arch_token, const char *name);
int seccomp_export_bpf(const scmp_filter_ctx ctx, int fd);
int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall,
                           unsigned int arg_cnt, const struct scmp_arg_cmp *arg_array);
int seccomp_load(const scmp_filter_ctx ctx);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "pyrunc._native",
    (HERE / "shim.c").read_text(),
    include_dirs=[str(HERE)],  # tail.c
    libraries=["seccomp"],
    extra_compile_args=["-O2", "-Wall"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
