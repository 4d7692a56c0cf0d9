"""runc's -ENOSYS stub: a syscall newer than everything a restrictive profile
names returns ENOSYS (libc falls back, e.g. clone3 -> clone), not the
profile's default action. Observed with a static probe inside the container."""
import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

PROBE_C = Path(__file__).resolve().parents[1] / "tools" / "probe.c"
CLONE3, ACCT, PIDFD_OPEN = 435, 163, 434


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory) -> str:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the static probe (scripts/setup.sh installs it)")
    d = tmp_path_factory.mktemp("probe")
    res = subprocess.run(["gcc", "-static", "-O1", "-o", str(d / "probe"), str(PROBE_C)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot build a static probe: {res.stderr.strip()[:200]}")
    return str(d)


def syscall_names(upto: int, skip: set[int]) -> list[str]:
    """Every x86_64 syscall libseccomp names with a number <= upto."""
    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    x86_64 = lib.seccomp_arch_resolve_name(b"x86_64")
    libc = ctypes.CDLL(None)
    names = []
    for nr in range(upto + 1):
        p = lib.seccomp_syscall_resolve_num_arch(ctypes.c_uint32(x86_64), nr)
        if p and nr not in skip:
            names.append(ctypes.string_at(p).decode())
            libc.free(ctypes.c_void_p(p))
    return names


def profile(bundle, probe_dir, default: str, upto: int, deny=(ACCT,)) -> None:
    bundle.bind(probe_dir, "/in", "ro")
    bundle.linux["seccomp"] = {
        "defaultAction": default,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": syscall_names(upto, set(deny)), "action": "SCMP_ACT_ALLOW"}]}


def probe(pyrunc, bundle, *numbers) -> list[str]:
    script = "; ".join(f"/in/probe syscall {n}" for n in numbers)
    return pyrunc.run_ok(bundle.sh(script)).split("\n")[:-1]


@pytest.mark.parametrize("default", ["SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS"])
def test_newer_syscalls_get_enosys(pyrunc, bundle, probe_dir, default):
    """A profile written before clone3 (5.3): pidfd_open is its newest syscall."""
    profile(bundle, probe_dir, default, upto=PIDFD_OPEN)
    if default == "SCMP_ACT_ERRNO":
        out = probe(pyrunc, bundle, ACCT, CLONE3, 450)
        assert out == ["errno 1", "errno 38", "errno 38"]   # EPERM, ENOSYS, ENOSYS
    else:
        assert probe(pyrunc, bundle, CLONE3, 450) == ["errno 38", "errno 38"]


def test_named_syscalls_keep_the_default(pyrunc, bundle, probe_dir):
    """clone3 named in the profile (here: not allowed): the default action applies."""
    profile(bundle, probe_dir, "SCMP_ACT_ERRNO", upto=CLONE3, deny=(ACCT, CLONE3))
    bundle.linux["seccomp"]["syscalls"].append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO",
                                                "errnoRet": 95})
    assert probe(pyrunc, bundle, CLONE3, ACCT, 440) == ["errno 95", "errno 1", "errno 38"]


def test_permissive_default_has_no_stub(pyrunc, bundle, probe_dir):
    bundle.bind(probe_dir, "/in", "ro")
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
    assert probe(pyrunc, bundle, 39, 1000) == ["errno 13", "errno 38"]  # 1000: the kernel's ENOSYS
