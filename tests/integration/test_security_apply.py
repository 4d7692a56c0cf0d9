"""Apply the security attributes in a forked child on the real kernel (root only)."""
import errno
import json
import os
import resource
import signal
import socket

import pytest

from pyrunc import native
from pyrunc.errors import ContainerStartError
from pyrunc.security import capabilities as caps
from pyrunc.security.capabilities import CAPABILITIES as C, finalize_identity_and_caps, parse_capabilities
from pyrunc.security.identity import parse_user
from pyrunc.security.rlimits import RLIM_INFINITY, apply_rlimits, current_rlimits, parse_rlimits
from pyrunc.security.seccomp import compile_seccomp

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]


def run_child(fn, stderr_to_pipe=False):
    """Run fn() in a forked child; return (json result or None, wait status, stderr bytes)."""
    r, w = os.pipe()
    er, ew = os.pipe() if stderr_to_pipe else (None, None)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            if stderr_to_pipe:
                os.close(er)
                os.dup2(ew, 2)
            try:
                out = {"ok": fn()}
            except BaseException as e:  # noqa: BLE001 - report everything to the parent
                out = {"error": f"{type(e).__name__}: {e}"}
            with open(w, "w") as f:
                f.write(json.dumps(out))
        finally:
            os._exit(0)
    os.close(w)
    with open(r) as f:
        data = f.read()
    err = b""
    if stderr_to_pipe:
        os.close(ew)
        with open(er, "rb") as f:
            err = f.read()
    _, status = os.waitpid(pid, 0)
    return (json.loads(data) if data else None), status, err


def ok(result):
    assert result is not None and "error" not in result, result
    return result["ok"]


def proc_status() -> dict:
    with open("/proc/self/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def mask(*names):
    return sum(1 << C[n] for n in names)


def need_caps(*names):
    _, prm, _ = native.capget()
    if prm & mask(*names) != mask(*names):
        pytest.skip(f"runtime lacks some of {names}")


# --- capabilities + identity ----------------------------------------------------------

def test_bounding_identity_and_caps_for_non_root_user():
    need_caps("CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")
    sets = parse_capabilities({
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE", "CAP_CHOWN"],  # CHOWN not inheritable -> not raised
    })
    ident = parse_user({"uid": 1000, "gid": 1001, "additionalGids": [5, 6], "umask": 0o027})
    calls = []

    def child():
        finalize_identity_and_caps(ident, sets, after_user=lambda: calls.append(os.getuid()))
        st = proc_status()
        return {k: st[k] for k in ("CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb", "Uid", "Gid",
                                   "Groups", "Umask")} | {"calls": calls,
                                                          "keepcaps": native.prctl(7)}

    st = ok(run_child(child)[0])
    assert int(st["CapBnd"], 16) == mask("CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE")
    assert int(st["CapEff"], 16) == mask("CAP_CHOWN", "CAP_NET_BIND_SERVICE")
    assert int(st["CapPrm"], 16) == mask("CAP_CHOWN", "CAP_NET_BIND_SERVICE")
    assert int(st["CapInh"], 16) == mask("CAP_NET_BIND_SERVICE")
    assert int(st["CapAmb"], 16) == mask("CAP_NET_BIND_SERVICE")
    assert st["Uid"].split() == ["1000"] * 4
    assert st["Gid"].split() == ["1001"] * 4
    assert st["Groups"].split() == ["5", "6"]
    assert st["Umask"] == "0027"
    assert st["calls"] == [1000]  # after_user ran after the uid switch
    assert st["keepcaps"] == 0    # PR_GET_KEEPCAPS (7): cleared again


def test_root_with_reduced_caps_and_default_umask():
    need_caps("CAP_KILL", "CAP_SETPCAP")
    sets = parse_capabilities({"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                               "permitted": ["CAP_KILL"]})
    ident = parse_user({"uid": 0, "gid": 0})

    def child():
        finalize_identity_and_caps(ident, sets)
        st = proc_status()
        return [st["CapBnd"], st["CapEff"], st["CapPrm"], st["CapInh"], st["CapAmb"], st["Uid"],
                st["Groups"], st["Umask"]]

    bnd, eff, prm, inh, amb, uid, groups, umask = ok(run_child(child)[0])
    assert int(bnd, 16) == int(eff, 16) == int(prm, 16) == mask("CAP_KILL")
    assert int(inh, 16) == int(amb, 16) == 0
    assert uid.split() == ["0"] * 4
    assert groups.strip() == ""  # setgroups([]) as runc does with no additionalGids
    assert umask == "0022"


def test_no_capabilities_section_leaves_caps_like_runc():
    before = native.capget()
    ident = parse_user({"uid": 1000, "gid": 1000})

    def child():
        finalize_identity_and_caps(ident, None)
        st = proc_status()
        return [int(st["CapEff"], 16), int(st["CapPrm"], 16), int(st["CapBnd"], 16)]

    eff, prm, bnd = ok(run_child(child)[0])
    assert eff == 0                      # euid 0 -> 1000 clears effective
    assert prm == before[1]              # PR_SET_KEEPCAPS kept permitted
    assert bnd == int(proc_status()["CapBnd"], 16)


def test_capset_of_unheld_cap_is_a_clear_error():
    _, prm, _ = native.capget()
    missing = [c for c in range(caps.cap_last_cap() + 1) if not prm >> c & 1]
    if not missing:
        pytest.skip("the runtime holds every capability")
    name = caps.CAP_NAMES[missing[0]]
    sets = parse_capabilities({"bounding": [name], "permitted": [name], "effective": [name]})

    def child():
        finalize_identity_and_caps(parse_user({"uid": 0, "gid": 0}), sets)

    res = run_child(child)[0]
    assert res["error"].startswith("ContainerStartError")
    assert name in res["error"]


# --- seccomp ----------------------------------------------------------------------------

def _nnp_and_load(plan):
    native.prctl(native.PR_SET_NO_NEW_PRIVS, 1)
    plan.load()


def _errno_of(fn, *args):
    try:
        fn(*args)
    except OSError as e:
        return e.errno
    return 0


def test_seccomp_errno_rules(tmp_path):
    plan = compile_seccomp({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["getcwd", "not_a_real_syscall"], "action": "SCMP_ACT_ERRNO",
             "errnoRet": errno.ENOTSUP},
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
        ],
    })
    target = str(tmp_path / "d")

    def child():
        _nnp_and_load(plan)
        st = proc_status()
        return {"getcwd": _errno_of(os.getcwd), "mkdir": _errno_of(os.mkdir, target),
                "pid": os.getpid() > 0, "listdir": _errno_of(os.listdir, "/"),
                "seccomp": st["Seccomp"], "nnp": st["NoNewPrivs"]}

    res = ok(run_child(child)[0])
    assert res == {"getcwd": errno.ENOTSUP, "mkdir": errno.EPERM, "pid": True, "listdir": 0,
                   "seccomp": "2", "nnp": "1"}
    assert not os.path.exists(target)
    assert os.getcwd()  # the parent is not affected


def test_seccomp_default_errno_allowlist():
    plan = compile_seccomp({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.ENOSYS,
                            "syscalls": [{"names": ["getpid", "write", "close", "exit_group",
                                                    "munmap", "brk", "mmap", "rt_sigprocmask",
                                                    "rt_sigaction", "openat", "fstat", "newfstatat",
                                                    "futex", "getrandom"],
                                          "action": "SCMP_ACT_ALLOW"}]})

    def child():
        _nnp_and_load(plan)
        return [_errno_of(os.getcwd), os.getpid() > 0]

    assert ok(run_child(child)[0]) == [errno.ENOSYS, True]


def test_seccomp_arg_filters():
    plan = compile_seccomp({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EAFNOSUPPORT,
         "args": [{"index": 0, "value": socket.AF_INET, "op": "SCMP_CMP_EQ"}]},
        # two conditions on arg0 -> split into two rules (either one matches)
        {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EL2HLT,
         "args": [{"index": 0, "value": os.PRIO_PGRP, "op": "SCMP_CMP_EQ"},
                  {"index": 0, "value": os.PRIO_USER, "op": "SCMP_CMP_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOTTY,
         "args": [{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"}]},
    ]})

    def child():
        _nnp_and_load(plan)

        def sock(family):
            socket.socket(family, socket.SOCK_STREAM).close()

        return {"inet": _errno_of(sock, socket.AF_INET), "unix": _errno_of(sock, socket.AF_UNIX),
                "prio_process": _errno_of(os.getpriority, os.PRIO_PROCESS, 0),
                "prio_pgrp": _errno_of(os.getpriority, os.PRIO_PGRP, 0),
                "prio_user": _errno_of(os.getpriority, os.PRIO_USER, 0),
                "pers_query": _errno_of(native.syscall, 135, 0xFFFFFFFF),
                "pers_other": _errno_of(native.syscall, 135, 0)}  # PER_LINUX: allowed

    res = ok(run_child(child)[0])
    assert res == {"inet": errno.EAFNOSUPPORT, "unix": 0, "prio_process": 0,
                   "prio_pgrp": errno.EL2HLT, "prio_user": errno.EL2HLT,
                   "pers_query": errno.ENOTTY, "pers_other": 0}


def test_seccomp_kill_process():
    plan = compile_seccomp({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}]})

    def child():
        _nnp_and_load(plan)
        os.getppid()
        return "survived"

    res, status, _ = run_child(child)
    assert res is None
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS


def test_seccomp_load_without_nnp_needs_cap_sys_admin():
    plan = compile_seccomp({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]})

    def child():
        plan.load()  # privileged load (CAP_SYS_ADMIN), NNP attr off
        st = proc_status()
        return [st["NoNewPrivs"], st["Seccomp"], _errno_of(os.getcwd)]

    assert ok(run_child(child)[0]) == ["0", "2", errno.EPERM]

    def child_unprivileged():
        eff, prm, inh = native.capget()
        native.capset(eff & ~mask("CAP_SYS_ADMIN"), prm, inh)
        plan.load()

    res = run_child(child_unprivileged)[0]
    assert res["error"].startswith("ContainerStartError") and "noNewPrivileges" in res["error"]


def test_seccomp_plan_built_before_fork_loaded_by_exec_tail(tmp_path):
    plan = compile_seccomp({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EROFS}]})
    target = str(tmp_path / "x")

    def child():
        native.prctl(native.PR_SET_NO_NEW_PRIVS, 1)
        err = native.exec_tail(-1, (plan.program, plan.kernel_flags), "/bin/mkdir", ["mkdir", target],
                               ["PATH=/bin:/usr/bin", "LC_ALL=C"])
        return str(err)

    res, status, err = run_child(child, stderr_to_pipe=True)
    assert res is None, res  # exec succeeded
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 1
    assert b"Read-only file system" in err
    assert not os.path.exists(target)


# --- rlimits ----------------------------------------------------------------------------

def test_rlimits_exact_values_and_others_untouched():
    limits = parse_rlimits([{"type": "RLIMIT_NOFILE", "soft": 300, "hard": 400},
                            {"type": "RLIMIT_CPU", "soft": 60, "hard": 120}])
    before = {r.name: (r.soft, r.hard) for r in current_rlimits()}

    def child():
        apply_rlimits(limits)
        return {r.name: [r.soft, r.hard] for r in current_rlimits()}

    after = ok(run_child(child)[0])
    assert after.pop("RLIMIT_NOFILE") == [300, 400]
    assert after.pop("RLIMIT_CPU") == [60, 120]
    assert {k: tuple(v) for k, v in after.items()} == \
        {k: v for k, v in before.items() if k not in ("RLIMIT_NOFILE", "RLIMIT_CPU")}


def test_rlimit_infinity():
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    if hard != resource.RLIM_INFINITY:
        pytest.skip("RLIMIT_CORE hard limit is not unlimited here")
    limits = parse_rlimits([{"type": "RLIMIT_CORE", "soft": 4096, "hard": RLIM_INFINITY}])

    def child():
        apply_rlimits(limits)
        return list(resource.getrlimit(resource.RLIMIT_CORE))

    assert ok(run_child(child)[0]) == [4096, resource.RLIM_INFINITY]


def test_raising_hard_limit_without_cap_sys_resource_is_a_clear_error():
    lower = parse_rlimits([{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 100}])
    higher = parse_rlimits([{"type": "RLIMIT_NOFILE", "soft": 200, "hard": 200}])

    def child():
        apply_rlimits(lower)
        eff, prm, inh = native.capget()
        native.capset(eff & ~mask("CAP_SYS_RESOURCE"), prm & ~mask("CAP_SYS_RESOURCE"), inh)
        apply_rlimits(higher)

    res = run_child(child)[0]
    assert res["error"].startswith("ContainerStartError")
    assert "RLIMIT_NOFILE" in res["error"] and "CAP_SYS_RESOURCE" in res["error"]


def test_container_start_error_type():
    assert issubclass(ContainerStartError, Exception)
