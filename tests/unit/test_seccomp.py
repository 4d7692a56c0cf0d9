import errno
import json
import os

import pytest

from pyrunc import native
from pyrunc.errors import ConfigError
from pyrunc.security import seccomp as sc
from pyrunc.security.seccomp import compile_seccomp

ALLOW = "SCMP_ACT_ALLOW"


def cfg(syscalls=None, **kw):
    d = {"defaultAction": ALLOW, "syscalls": syscalls or []}
    d.update(kw)
    return d


def test_disabled():
    assert compile_seccomp(None) is None
    assert compile_seccomp({}) is None
    assert compile_seccomp({"defaultAction": "", "syscalls": []}) is None


def test_action_codes():
    assert sc.SCMP_ACT_ERRNO(errno.EPERM) == 0x00050001
    assert sc.SCMP_ACT_TRACE(3) == 0x7FF00003
    p = compile_seccomp({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.ENOSYS})
    assert p.default_action == 0x00050000 | errno.ENOSYS
    assert compile_seccomp({"defaultAction": "SCMP_ACT_ERRNO"}).default_action == 0x00050001
    assert compile_seccomp({"defaultAction": "SCMP_ACT_KILL"}).default_action == 0
    assert compile_seccomp({"defaultAction": "SCMP_ACT_KILL_THREAD"}).default_action == 0
    assert compile_seccomp({"defaultAction": "SCMP_ACT_KILL_PROCESS"}).default_action == 0x80000000
    assert compile_seccomp({"defaultAction": "SCMP_ACT_TRAP"}).default_action == 0x00030000
    assert compile_seccomp({"defaultAction": "SCMP_ACT_LOG"}).default_action == 0x7FFC0000
    assert compile_seccomp({"defaultAction": "SCMP_ACT_TRACE"}).default_action == 0x7FF00001
    assert compile_seccomp({"defaultAction": ALLOW}).default_action == 0x7FFF0000


def test_rules_and_errno_ret():
    p = compile_seccomp(cfg([
        {"names": ["getcwd", "mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOENT},
        {"names": ["chdir"], "action": "SCMP_ACT_ERRNO"},
    ]))
    assert [(r.syscall, r.nr, r.action, r.args) for r in p.rules] == [
        ("getcwd", native.seccomp_syscall_number("getcwd"), 0x00050000 | errno.ENOENT, ()),
        ("mkdir", native.seccomp_syscall_number("mkdir"), 0x00050000 | errno.ENOENT, ()),
        ("chdir", native.seccomp_syscall_number("chdir"), 0x00050001, ()),
    ]
    assert p.rules[1].where == "linux.seccomp.syscalls[0].names[1]"


def test_rule_equal_to_default_is_skipped():
    p = compile_seccomp({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO"},                   # same: skipped
        {"names": ["write"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},   # EPERM too: skipped
        {"names": ["open"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2},    # differs: kept
        {"names": ["close"], "action": ALLOW},
    ]})
    assert [r.syscall for r in p.rules] == ["open", "close"]


def test_unknown_syscalls_ignored_like_runc():
    p = compile_seccomp(cfg([{"names": ["no_such_syscall_xyz", "getcwd"], "action": "SCMP_ACT_ERRNO"}]))
    assert p.ignored_syscalls == ["no_such_syscall_xyz"]
    assert [r.syscall for r in p.rules] == ["getcwd"]


def test_args_same_index_are_split():
    p = compile_seccomp(cfg([{"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "args": [
        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
        {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
        {"index": 1, "value": 7, "valueTwo": 0, "op": "SCMP_CMP_NE"},
    ]}]))
    assert [r.args for r in p.rules] == [((0, 4, 1, 0),), ((0, 4, 2, 0),), ((1, 1, 7, 0),)]


def test_args_distinct_indexes_are_one_rule():
    p = compile_seccomp(cfg([{"names": ["socket"], "action": "SCMP_ACT_ERRNO", "args": [
        {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
        {"index": 1, "value": 0xF, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"},
    ]}]))
    assert [r.args for r in p.rules] == [((0, 4, 2, 0), (1, 7, 0xF, 1))]


def test_operators():
    assert sc.OPERATORS == {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
                            "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
    for op in sc.OPERATORS:
        compile_seccomp(cfg([{"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                              "args": [{"index": 1, "value": 9, "op": op}]}]))


def test_architectures():
    p = compile_seccomp(cfg(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]))
    assert p is not None
    with pytest.raises(ConfigError) as ei:
        compile_seccomp(cfg(architectures=["SCMP_ARCH_X86", "SCMP_ARCH_Z80"]))
    assert ei.value.where == "linux.seccomp.architectures[1]"
    assert "SCMP_ARCH_Z80" in ei.value.message


def test_every_known_arch_resolves_or_is_a_clear_error():
    # unknown to this libseccomp -> NotSupportedError; other-endian arch (EDOM) -> ConfigError
    for name in sc.ARCHITECTURES:
        try:
            compile_seccomp(cfg(architectures=[name]))
        except ConfigError as e:
            assert e.where == "linux.seccomp.architectures[0]"
            assert name in e.message


def test_flags():
    assert compile_seccomp(cfg()).flags == (sc.FLAG_SPEC_ALLOW,)  # runc's default
    assert compile_seccomp(cfg(flags=[])).flags == ()
    p = compile_seccomp(cfg(flags=["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"]))
    assert p.flags == ("SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC")
    with pytest.raises(ConfigError) as ei:
        compile_seccomp(cfg(flags=["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_BOGUS"]))
    assert ei.value.where == "linux.seccomp.flags[1]"
    assert p.kernel_flags == 2  # LOG; TSYNC is accepted and not passed (runc)
    with pytest.raises(ConfigError) as ei:  # it applies to a listener: needs a notify rule
        compile_seccomp(cfg(flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]))
    assert ei.value.where == "linux.seccomp.flags[0]"


def test_many_syscalls_enable_optimization():
    names = ["getcwd", "mkdir", "rmdir", "chdir", "fchdir", "link", "unlink", "symlink", "rename",
             "chmod", "fchmod", "chown", "fchown", "lchown", "truncate", "ftruncate", "mknod",
             "sethostname", "setdomainname", "acct", "mount", "umount2", "swapon", "swapoff",
             "reboot", "pivot_root", "chroot", "sync", "syncfs", "iopl", "ioperm", "kexec_load",
             "init_module", "delete_module"]
    p = compile_seccomp(cfg([{"names": names, "action": "SCMP_ACT_ERRNO"}]))
    assert len(p.rules) == len(names)


@pytest.mark.parametrize("seccomp,where", [
    ({"defaultAction": "SCMP_ACT_FOO"}, "linux.seccomp.defaultAction"),
    ({"syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]}, "linux.seccomp.defaultAction"),
    ({"defaultAction": ALLOW, "defaultErrnoRet": 1}, "linux.seccomp.defaultErrnoRet"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1}, "linux.seccomp.defaultErrnoRet"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}, "linux.seccomp.defaultErrnoRet"),
    ({"defaultAction": "SCMP_ACT_NOTIFY"}, "linux.seccomp.defaultAction"),
    (cfg([{"names": ["a"], "action": "SCMP_ACT_ERRNO"}, {"names": ["getcwd"], "action": "nope"}]),
     "linux.seccomp.syscalls[1].action"),
    (cfg([{"names": ["getcwd"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]),
     "linux.seccomp.syscalls[0].errnoRet"),
    (cfg([{"action": "SCMP_ACT_KILL"}]), "linux.seccomp.syscalls[0].names"),
    (cfg([{"names": "getcwd", "action": "SCMP_ACT_KILL"}]), "linux.seccomp.syscalls[0].names"),
    (cfg([{"names": ["getcwd", ""], "action": "SCMP_ACT_KILL"}]), "linux.seccomp.syscalls[0].names[1]"),
    (cfg([{"names": ["kill"], "action": "SCMP_ACT_KILL",
           "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]),
     "linux.seccomp.syscalls[0].args[0].index"),
    (cfg([{"names": ["kill"], "action": "SCMP_ACT_KILL",
           "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                    {"index": 1, "value": 1, "op": "EQ"}]}]),
     "linux.seccomp.syscalls[0].args[1].op"),
    (cfg([{"names": ["kill"], "action": "SCMP_ACT_KILL",
           "args": [{"index": 0, "value": 2**64, "op": "SCMP_CMP_EQ"}]}]),
     "linux.seccomp.syscalls[0].args[0].value"),
    (cfg([{"names": ["kill"], "action": "SCMP_ACT_KILL",
           "args": [{"index": 0, "op": "SCMP_CMP_EQ"}]}]),
     "linux.seccomp.syscalls[0].args[0].value"),
    (cfg([{"names": ["kill"], "action": "SCMP_ACT_KILL",
           "args": [{"index": 0, "value": 1, "valueTwo": -1, "op": "SCMP_CMP_EQ"}]}]),
     "linux.seccomp.syscalls[0].args[0].valueTwo"),
    (cfg(architectures="SCMP_ARCH_X86"), "linux.seccomp.architectures"),
    ("SCMP_ACT_ALLOW", "linux.seccomp"),
])
def test_errors(seccomp, where):
    with pytest.raises(ConfigError) as ei:
        compile_seccomp(seccomp)
    assert ei.value.where == where


def test_notify_needs_a_listener(tmp_path):
    notify = [{"names": ["getcwd"], "action": "SCMP_ACT_NOTIFY"}]
    with pytest.raises(ConfigError) as ei:
        compile_seccomp(cfg(notify))
    assert ei.value.where == "linux.seccomp.listenerPath"
    with pytest.raises(ConfigError) as ei:  # the spec: MUST NOT be set without listenerPath
        compile_seccomp(cfg(listenerMetadata="x"))
    assert ei.value.where == "linux.seccomp.listenerMetadata"
    # a listenerPath without a notify rule is ignored, as runc does
    assert not compile_seccomp(cfg(listenerPath="/nonexistent")).notify


@pytest.mark.parametrize("path,needle", [
    ("relative.sock", "must be absolute"),
    ("/nonexistent/agent.sock", "no such file"),
    ("@", "invalid abstract"),
    ("FILE", "not a socket"),
])
def test_bad_listener_paths(tmp_path, path, needle):
    if path == "FILE":
        path = str(tmp_path / "f")
        open(path, "w").close()
    with pytest.raises(ConfigError) as ei:
        compile_seccomp(cfg([{"names": ["getcwd"], "action": "SCMP_ACT_NOTIFY"}],
                            listenerPath=path))
    assert ei.value.where == "linux.seccomp.listenerPath"
    assert needle in ei.value.message


def test_notify_plan(tmp_path):
    import socket
    path = str(tmp_path / "agent.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    try:
        p = compile_seccomp(cfg([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
                                listenerPath=path, listenerMetadata="bar",
                                flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]))
        assert p.notify and p.listener_path == path and p.listener_metadata == "bar"
        assert p.kernel_flags == 8 | 32   # NEW_LISTENER | WAIT_KILLABLE_RECV
        with pytest.raises(ConfigError) as ei:  # init reports the listener with write(2)
            compile_seccomp(cfg([{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"},
                                 {"names": ["read", "write"], "action": "SCMP_ACT_NOTIFY"}],
                                listenerPath=path))
        assert ei.value.where == "linux.seccomp.syscalls[1].names[1]"
        assert compile_seccomp(cfg(listenerPath="@agent")).listener_path == ""
    finally:
        s.close()


def test_features():
    assert sc.seccomp_supported()
    assert sc.FLAG_SPEC_ALLOW in sc.supported_flags()
    assert "SCMP_ACT_KILL_PROCESS" in sc.known_actions()
    assert "SCMP_ARCH_X86_64" in sc.known_architectures()
    assert sc.known_operators()[0] == "SCMP_CMP_EQ"


def test_program_is_libseccomps_after_the_stub():
    p = compile_seccomp(cfg([{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]))
    assert isinstance(p.filter, native.SeccompFilter)
    assert p.program == p.filter.export_bpf()  # default allow: no stub
    p = compile_seccomp({"defaultAction": "SCMP_ACT_ERRNO",
                         "syscalls": [{"names": ["getcwd"], "action": ALLOW}]})
    assert len(p.program) > len(p.filter.export_bpf()) and len(p.program) % 8 == 0
    assert p.program.endswith(p.filter.export_bpf())


def test_agent_that_never_accepts_does_not_hang(full_backlog_socket, monkeypatch):
    """A listener whose backlog is full: connect fails at once (EAGAIN on a
    unix socket with a timeout, as Go's net.Dial in runc), never blocks."""
    import time
    from pyrunc.errors import ContainerStartError
    from pyrunc.security import seccomp_notify
    monkeypatch.setattr(seccomp_notify, "CONNECT_TIMEOUT", 0.3)
    plan = compile_seccomp(cfg([{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}],
                               listenerPath=full_backlog_socket))
    r, w = os.pipe()
    try:
        started = time.monotonic()
        with pytest.raises(ContainerStartError) as ei:
            seccomp_notify.send_listener(plan, r, 1, {"id": "x"})
        assert time.monotonic() - started < 5
        # a full backlog is retried until the timeout, then one line says so
        assert "did not accept the connection within 0.3s" in ei.value.message
        assert ei.value.where == "linux.seccomp.listenerPath"
    finally:
        os.close(r)
        os.close(w)


def test_process_state_document():
    from pyrunc.security import seccomp_notify
    plan = sc.SeccompPlan(None, 0, listener_metadata="m")
    doc = json.loads(seccomp_notify.process_state(plan, 42, {"id": "c", "status": "running"}))
    assert doc == {"ociVersion": doc["ociVersion"], "fds": ["seccompFd"], "pid": 42,
                   "metadata": "m", "state": {"id": "c", "status": "running"}}
