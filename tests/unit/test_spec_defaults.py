"""Unit tests for pyrunc.spec.defaults (what `pyrunc spec` writes)."""

import json
import os

import pytest

from pyrunc.spec import defaults
from pyrunc.spec.defaults import OCI_VERSION, default_spec, spec_json, to_rootless
from pyrunc.spec.validate import validate_config

CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

# runc's libcontainer/specconv/example.go Example() on a cgroup v2 host, with
# our ociVersion and hostname.
EXPECTED = {
    "ociVersion": "1.3.0",
    "process": {
        "terminal": True,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {"bounding": CAPS, "effective": CAPS, "permitted": CAPS},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "pyrunc",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        },
    ],
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [
            {"type": "pid"},
            {"type": "network"},
            {"type": "ipc"},
            {"type": "uts"},
            {"type": "mount"},
            {"type": "cgroup"},
        ],
        "maskedPaths": [
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi",
        ],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
}


def keys_in_order(d):
    """Nested key order, to compare with Go's struct-order marshalling."""
    if isinstance(d, dict):
        return [(k, keys_in_order(val)) for k, val in d.items()]
    if isinstance(d, list):
        return [keys_in_order(x) for x in d]
    return None


def test_default_spec_matches_runc_example():
    spec = default_spec(cgroup_ns=True)
    assert spec == EXPECTED
    assert keys_in_order(spec) == keys_in_order(EXPECTED)
    assert spec["ociVersion"] == OCI_VERSION
    # runc >= 1.1.2 sets no inheritable/ambient capabilities (CVE-2022-29162)
    assert set(spec["process"]["capabilities"]) == {"bounding", "effective", "permitted"}
    assert "options" not in spec["mounts"][0]  # Go omits the nil slice


def test_cgroup_namespace_follows_host_like_runc(monkeypatch):
    monkeypatch.setattr(defaults, "cgroup2_unified", lambda: False)
    types = [ns["type"] for ns in default_spec()["linux"]["namespaces"]]
    assert types == ["pid", "network", "ipc", "uts", "mount"]
    monkeypatch.setattr(defaults, "cgroup2_unified", lambda: True)
    types = [ns["type"] for ns in default_spec()["linux"]["namespaces"]]
    assert types == ["pid", "network", "ipc", "uts", "mount", "cgroup"]
    assert [ns["type"] for ns in default_spec(cgroup_ns=False)["linux"]["namespaces"]][-1] == "mount"


def test_cgroup2_unified_detection():
    assert defaults.cgroup2_unified() == os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def test_each_call_returns_a_fresh_spec():
    a = default_spec(cgroup_ns=True)
    a["mounts"][1]["options"].append("x")
    a["process"]["capabilities"]["bounding"].clear()
    a["linux"]["maskedPaths"].clear()
    a["process"]["env"].append("A=B")
    assert default_spec(cgroup_ns=True) == EXPECTED


def test_rootless():
    spec = default_spec(rootless=True, cgroup_ns=True)
    linux = spec["linux"]
    assert [ns["type"] for ns in linux["namespaces"]] == ["pid", "ipc", "uts", "mount", "cgroup", "user"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    assert "resources" not in linux
    assert list(linux) == ["uidMappings", "gidMappings", "namespaces", "maskedPaths", "readonlyPaths"]
    sys_mounts = [m for m in spec["mounts"] if m["destination"] == "/sys"]
    assert sys_mounts == [
        {"destination": "/sys", "type": "none", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
    ]
    assert [m["destination"] for m in spec["mounts"]] == [m["destination"] for m in EXPECTED["mounts"]]
    pts = next(m for m in spec["mounts"] if m["destination"] == "/dev/pts")
    assert pts["options"] == ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
    for m in spec["mounts"]:
        assert not any(o.startswith(("uid=", "gid=")) for o in m.get("options", ()))
    # everything else is untouched
    for key in ("ociVersion", "process", "root", "hostname"):
        assert spec[key] == EXPECTED[key]


def test_to_rootless_explicit_ids_and_existing_userns():
    spec = {
        "ociVersion": "1.3.0",
        "root": {"path": "rootfs"},
        "mounts": [
            {"destination": "/sys/", "type": "sysfs", "source": "sysfs"},
            {"destination": "/x", "type": "tmpfs", "source": "tmpfs", "options": ["uid=5", "gid=5"]},
        ],
        "linux": {
            "namespaces": [{"type": "user", "path": "/proc/1/ns/user"}, {"type": "network"}, {"type": "pid"}],
            "resources": {"pids": {"limit": 10}},
            "sysctl": {"kernel.msgmax": "1"},
        },
    }
    out = to_rootless(spec, euid=1000, egid=100)
    assert out is spec
    assert spec["linux"]["namespaces"] == [{"type": "pid"}, {"type": "user"}]
    assert spec["linux"]["uidMappings"][0]["hostID"] == 1000
    assert spec["linux"]["gidMappings"][0]["hostID"] == 100
    assert list(spec["linux"]) == ["uidMappings", "gidMappings", "sysctl", "namespaces"]
    assert spec["mounts"][0]["type"] == "none" and spec["mounts"][0]["destination"] == "/sys"
    assert spec["mounts"][1] == {"destination": "/x", "type": "tmpfs", "source": "tmpfs"}  # nil options omitted
    validate_config(spec)


@pytest.mark.parametrize("rootless", [False, True])
def test_default_spec_validates(rootless):
    validate_config(default_spec(rootless))


def test_spec_json_like_runc():
    text = spec_json(default_spec(cgroup_ns=True))
    assert text.startswith('{\n\t"ociVersion": "1.3.0",\n\t"process": {\n\t\t"terminal": true,')
    assert not text.endswith("\n")
    assert json.loads(text) == EXPECTED
