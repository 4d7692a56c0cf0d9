"""The process's environment and program, as runc 1.5 makes them: HOME and
the order of overrides (libcontainer/env.go prepareEnv), the program lookup
before `start` and its wording, a program that cannot be executed after
`start` (the init's "exec PATH: …" and status 255), a config without a
process. Each for run/create+start and for exec."""
import json
import os
import subprocess

import pytest

pytestmark = pytest.mark.integration

INIT_FAILED = "unable to start container process: error during container init: "


def environ(text: str) -> list[str]:
    return [e for e in text.split("\0") if e]


def running(pyrunc, bundle) -> str:
    bundle.args("sleep", "1000")
    cid, _ = pyrunc.create(bundle)
    pyrunc.ok("start", cid)
    return cid


def exec_env(pyrunc, cid, tmp_path, env, **process) -> list[str]:
    """The environment of `cat /proc/self/environ` exec'd with --process."""
    spec = {"args": ["cat", "/proc/self/environ"], "cwd": "/", **process}
    if env is not None:
        spec["env"] = env
    path = tmp_path / f"process-{len(os.listdir(tmp_path))}.json"
    path.write_text(json.dumps(spec))
    return environ(pyrunc.ok("exec", "--process", path, cid).stdout)


# --- HOME and overrides ----------------------------------------------------------------------

ENV_CASES = {
    # config env -> the program's environment (runc 1.5.1 gives the same)
    "home kept": (["PATH=/bin", "HOME=/custom"], ["PATH=/bin", "HOME=/custom"]),
    "empty home replaced": (["HOME=", "PATH=/bin"], ["PATH=/bin", "HOME=/root"]),
    "last home wins": (["HOME=/a", "PATH=/bin", "HOME=/b"], ["PATH=/bin", "HOME=/b"]),
    "last empty home replaced": (["HOME=/a", "HOME="], ["HOME=/root"]),
    # a later entry wins at its own place (Go 1.22 os/exec dedupEnv order)
    "override order": (["A=1", "B=2", "A=3", "HOME=/x"], ["B=2", "A=3", "HOME=/x"]),
    "path override": (["PATH=/nowhere", "HOME=/q", "PATH=/bin"], ["HOME=/q", "PATH=/bin"]),
    "empty env": ([], ["HOME=/root"]),
    "no env": (None, []),  # runc: a nil environment stays empty, no HOME added
}


@pytest.mark.parametrize("case", ENV_CASES)
def test_environment_of_the_container_process(pyrunc, bundle, case):
    env, expected = ENV_CASES[case]
    if env is None:
        del bundle.process["env"]
    else:
        bundle.process["env"] = env
    bundle.args("/bin/cat", "/proc/self/environ")
    assert environ(pyrunc.run_ok(bundle)) == expected


@pytest.mark.parametrize("case", ENV_CASES)
def test_environment_of_an_exec_process(pyrunc, bundle, tmp_path, case):
    env, expected = ENV_CASES[case]
    cid = running(pyrunc, bundle)
    if env is not None:
        env = [e.replace("PATH=/bin", "PATH=/bin:/usr/bin") for e in env]
        expected = [e.replace("PATH=/bin", "PATH=/bin:/usr/bin") for e in expected]
    if env is None or not any(e.startswith("PATH=") for e in env):
        # without PATH "cat" is not found: name it by its path
        spec = {"args": ["/bin/cat", "/proc/self/environ"], "cwd": "/"}
        if env is not None:
            spec["env"] = env
        (tmp_path / "p.json").write_text(json.dumps(spec))
        got = environ(pyrunc.ok("exec", "--process", tmp_path / "p.json", cid).stdout)
    else:
        got = exec_env(pyrunc, cid, tmp_path, env)
    assert got == expected


def test_exec_env_flags_override_in_order(pyrunc, bundle):
    bundle.process["env"] = ["PATH=/bin:/usr/bin", "HOME=/from-config", "A=1"]
    cid = running(pyrunc, bundle)
    out = pyrunc.ok("exec", "--env", "A=2", "--env", "HOME=", "--env", "B=3", cid,
                    "cat", "/proc/self/environ").stdout
    assert environ(out) == ["PATH=/bin:/usr/bin", "A=2", "B=3", "HOME=/root"]


def test_home_of_a_user_from_the_container_passwd(pyrunc, bundle, tmp_path):
    rootfs = bundle.private_rootfs()
    with open(rootfs / "etc" / "passwd", "a") as f:
        f.write("tester:x:1000:1000::/home/tester:/bin/sh\nnohome:x:1001:1001::::\n")
    bundle.process["env"] = ["PATH=/bin"]
    bundle.args("/bin/cat", "/proc/self/environ")
    for uid, home in ((1000, "HOME=/home/tester"), (1001, "HOME="), (4242, "HOME=/")):
        bundle.process["user"] = {"uid": uid, "gid": uid}
        assert environ(pyrunc.run_ok(bundle)) == ["PATH=/bin", home], uid
    bundle.process["user"] = {"uid": 0, "gid": 0}
    cid = running(pyrunc, bundle)
    assert exec_env(pyrunc, cid, tmp_path, ["PATH=/bin"], user={"uid": 1000, "gid": 1000}) == \
        ["PATH=/bin", "HOME=/home/tester"]


@pytest.mark.parametrize("entry,why", [
    ("NOEQUALS", "process.env[1]: invalid environment variable: missing '='"),
    ("=value", "process.env[1]: invalid environment variable: name cannot be empty"),
])
def test_invalid_environment_entry(pyrunc, bundle, entry, why):
    """runc refuses these (in its init); pyrunc before anything is made."""
    bundle.process["env"] = ["PATH=/bin", entry]
    res = pyrunc.run(bundle)
    assert res.returncode == 1
    assert pyrunc.one_line_error(res) == "pyrunc run failed: " + why


# --- the program ------------------------------------------------------------------------------

@pytest.fixture
def programs(bundle):
    """A private rootfs with a script whose interpreter is missing, a file with
    a bad ELF header, and a plain file."""
    rootfs = bundle.private_rootfs()
    (rootfs / "bad-interpreter").write_text("#!/nonexistent\necho hi\n")
    (rootfs / "bad-elf").write_bytes(b"\x7fELF garbage")
    (rootfs / "not-executable").write_text("echo hi\n")
    for name in ("bad-interpreter", "bad-elf"):
        os.chmod(rootfs / name, 0o755)
    os.chmod(rootfs / "not-executable", 0o644)
    return rootfs


LOOKUP_FAILURES = {
    # arg0 -> runc 1.5's wording (create/run: INIT_FAILED before it; exec: see below)
    "/nope": 'exec: "/nope": stat /nope: no such file or directory',
    "nope": 'exec: "nope": executable file not found in $PATH',
    "/etc": 'exec: "/etc": is a directory',
    "/not-executable": 'exec: "/not-executable": permission denied',
}


@pytest.mark.parametrize("arg0", LOOKUP_FAILURES)
def test_program_not_found_fails_run(pyrunc, bundle, programs, arg0):
    bundle.args(arg0)
    res = pyrunc.run(bundle)
    assert res.returncode == 1
    assert pyrunc.one_line_error(res) == "pyrunc run failed: " + INIT_FAILED + LOOKUP_FAILURES[arg0]
    cid, res = pyrunc.create(bundle, check=False)
    assert res.returncode == 1
    assert pyrunc.one_line_error(res) == "pyrunc create failed: " + INIT_FAILED + LOOKUP_FAILURES[arg0]


@pytest.mark.parametrize("arg0", LOOKUP_FAILURES)
def test_program_not_found_fails_exec(pyrunc, bundle, programs, arg0):
    cid = running(pyrunc, bundle)
    res = pyrunc("exec", cid, arg0)
    assert res.returncode == 255
    assert pyrunc.one_line_error(res) == ("exec failed: unable to start container process: "
                                          + LOOKUP_FAILURES[arg0])


EXEC_FAILURES = {
    "/bad-interpreter": "exec /bad-interpreter: no such file or directory",
    "/bad-elf": "exec /bad-elf: exec format error",
}


@pytest.mark.parametrize("arg0", EXEC_FAILURES)
def test_program_that_cannot_be_executed(pyrunc, bundle, programs, arg0, tmp_path):
    """It passes the lookup, so create succeeds; execve fails after `start`:
    the init says why on the process's stderr and exits 255 (runc 1.5)."""
    bundle.args(arg0)
    res = pyrunc.run(bundle)
    assert res.returncode == 255
    assert pyrunc.one_line_error(res) == EXEC_FAILURES[arg0]
    # create + start: start succeeds, the container stops, the line is on its stderr
    with open(tmp_path / "stderr", "w+") as err:
        cid, _ = pyrunc.create(bundle, stderr=err)
        assert pyrunc.ok("start", cid).stderr == ""
        pyrunc.wait_status(cid, "stopped")
        err.seek(0)
        assert err.read() == EXEC_FAILURES[arg0] + "\n"
    pyrunc.ok("delete", cid)
    # exec
    cid = running(pyrunc, bundle)
    res = pyrunc("exec", cid, arg0)
    assert res.returncode == 255
    assert pyrunc.one_line_error(res) == EXEC_FAILURES[arg0]


# --- no process -------------------------------------------------------------------------------

def test_run_without_process_fails(pyrunc, bundle):
    del bundle.config["process"]
    res = pyrunc.run(bundle)
    assert res.returncode == 1
    assert pyrunc.one_line_error(res) == "pyrunc run failed: process property must not be empty"
    assert not os.path.exists(pyrunc.root) or os.listdir(pyrunc.root) == []


def test_start_without_process_fails(pyrunc, bundle):
    """The spec: start MUST fail without a process. create succeeds (process is
    OPTIONAL until start); start fails, its init is gone, delete removes the
    rest. (runc refuses at create already; runtime-tools' `start` program
    checks this case inverted and so reports one "not ok" either way.)"""
    del bundle.config["process"]
    cid, _ = pyrunc.create(bundle)
    pid = pyrunc.state(cid)["pid"]
    res = pyrunc("start", cid)
    assert res.returncode == 1
    assert pyrunc.one_line_error(res) == "process property must not be empty"
    assert not pyrunc.pid_alive(pid)
    assert pyrunc.state(cid)["status"] == "stopped"
    pyrunc.ok("delete", cid)


@pytest.mark.parametrize("errno_ret", [1, 38])  # EPERM, ENOSYS
def test_program_lookup_when_seccomp_refuses_faccessat2(pyrunc, bundle, programs, errno_ret):
    """Go's LookPath falls back to the mode bits when access() is refused
    (a profile loaded before the lookup: without noNewPrivileges), as in
    runtime-tools' default profile; the bits still say no for a user who may not."""
    bundle.process["noNewPrivileges"] = False
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["faccessat2", "faccessat", "access"], "action": "SCMP_ACT_ERRNO",
         "errnoRet": errno_ret}]}
    os.chmod(programs / "bin" / "busybox", 0o750)  # owner root, group root: not for others
    bundle.args("/bin/echo", "found")
    assert pyrunc.run_ok(bundle) == "found\n"
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    res = pyrunc.run(bundle)
    assert pyrunc.one_line_error(res) == \
        'pyrunc run failed: ' + INIT_FAILED + 'exec: "/bin/echo": permission denied'
