"""Bad configs: create fails with one clear line naming the config field,
writes no pid file and (checked by the fixture) leaves nothing behind."""
import os
import resource

import pytest

pytestmark = pytest.mark.integration


def create_fails(pyrunc, bundle, *needles, run=False):
    pid_file = bundle.dir.parent / "fail.pid"
    cid = pyrunc.new_id()
    cmd = "run" if run else "create"
    res = pyrunc(cmd, "--bundle", bundle.path, "--pid-file", str(pid_file), cid, bundle=bundle)
    line = pyrunc.one_line_error(res, *needles)
    assert not pid_file.exists(), "pid file written by a failed create"
    return line  # the fixture checks that no state, cgroup, mount or process is left


def test_invalid_json(pyrunc, bundle):
    bundle.write_config = False
    (bundle.dir / "config.json").write_text('{"ociVersion": "1.0.0", ')
    create_fails(pyrunc, bundle, "config.json")


def test_missing_config(pyrunc, bundle):
    bundle.write_config = False
    line = create_fails(pyrunc, bundle, "config.json")
    assert "not found" in line or "no such file" in line.lower()


def test_config_not_an_object(pyrunc, bundle):
    bundle.write_config = False
    (bundle.dir / "config.json").write_text("[]")
    create_fails(pyrunc, bundle)


def test_schema_violation(pyrunc, bundle):
    bundle.config["root"]["readonly"] = "yes"
    create_fails(pyrunc, bundle, "root.readonly")


def test_missing_required_field(pyrunc, bundle):
    del bundle.config["process"]["cwd"]
    create_fails(pyrunc, bundle, "process.cwd")


def test_unsupported_oci_version(pyrunc, bundle):
    bundle.config["ociVersion"] = "2.0.0"
    create_fails(pyrunc, bundle, "ociVersion", "2.0.0")


def test_bind_source_missing(pyrunc, bundle, tmp_path):
    i = bundle.bind(tmp_path / "does-not-exist", "/mnt/rw")
    create_fails(pyrunc, bundle, f"mounts[{i}].source")


def test_unknown_mount_type(pyrunc, bundle):
    i = bundle.add_mount("/mnt/tmp", "nosuchfs", "x")
    create_fails(pyrunc, bundle, f"mounts[{i}]")


def test_unknown_capability(pyrunc, bundle):
    bundle.process["capabilities"]["bounding"] = ["CAP_KILL", "CAP_BOGUS"]
    create_fails(pyrunc, bundle, "process.capabilities.bounding[1]")


def test_unknown_namespace_type(pyrunc, bundle):
    i = bundle.add_namespace("bogus")
    create_fails(pyrunc, bundle, f"linux.namespaces[{i}]")


def test_duplicate_namespace(pyrunc, bundle):
    i = bundle.add_namespace("ipc")
    line = create_fails(pyrunc, bundle, f"linux.namespaces[{i}]")
    assert 'malformed spec file: duplicated ns "ipc"' in line


def test_namespace_path_of_wrong_type(pyrunc, bundle):
    bundle.remove_namespace("network")
    i = bundle.add_namespace("network", "/proc/self/ns/ipc")
    create_fails(pyrunc, bundle, f"linux.namespaces[{i}].path")


def test_namespace_path_missing(pyrunc, bundle, tmp_path):
    bundle.remove_namespace("ipc")
    i = bundle.add_namespace("ipc", str(tmp_path / "no-such-ns"))
    create_fails(pyrunc, bundle, f"linux.namespaces[{i}].path")


@pytest.mark.parametrize("run", [False, True], ids=["create", "run"])
def test_missing_executable_fails_at_create(pyrunc, bundle, run):
    bundle.args("nope")
    create_fails(pyrunc, bundle, 'exec: "nope": executable file not found in $PATH', run=run)


def test_missing_executable_absolute(pyrunc, bundle):
    bundle.args("/bin/nope")
    create_fails(pyrunc, bundle, "/bin/nope", "no such file or directory")


def test_cwd_does_not_exist(pyrunc, bundle):
    bundle.process["cwd"] = "/nonexistent"
    create_fails(pyrunc, bundle, "process.cwd")


def test_cwd_relative(pyrunc, bundle):
    bundle.process["cwd"] = "tmp"
    create_fails(pyrunc, bundle, "process.cwd")


def test_empty_args(pyrunc, bundle):
    bundle.process["args"] = []
    create_fails(pyrunc, bundle, "process.args")


def _have_cap_sys_resource() -> bool:
    with open("/proc/self/status") as f:
        eff = next(int(x.split()[1], 16) for x in f if x.startswith("CapEff:"))
    return bool(eff & (1 << 24))


def test_rlimit_above_hard_limit(pyrunc, bundle):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or _have_cap_sys_resource():
        pytest.skip("the runtime may raise NOFILE here (CAP_SYS_RESOURCE or no hard limit)")
    bundle.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": hard + 1000}]
    create_fails(pyrunc, bundle, "process.rlimits")


def test_rlimit_above_nr_open(pyrunc, bundle):
    with open("/proc/sys/fs/nr_open") as f:
        nr_open = int(f.read())
    bundle.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": nr_open + 1000}]
    create_fails(pyrunc, bundle, "process.rlimits")


def test_rlimit_soft_above_hard(pyrunc, bundle):
    bundle.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]
    create_fails(pyrunc, bundle, "process.rlimits[0]")


@pytest.mark.parametrize("run", [False, True], ids=["create", "run-detach"])
def test_terminal_without_console_socket(pyrunc, bundle, run):
    """runc: "cannot allocate tty if runc will detach without setting console socket"."""
    bundle.process["terminal"] = True
    pid_file = bundle.dir.parent / "fail.pid"
    cid = pyrunc.new_id()
    cmd = ["run", "--detach"] if run else ["create"]
    res = pyrunc(*cmd, "--bundle", bundle.path, "--pid-file", str(pid_file), cid, bundle=bundle)
    line = pyrunc.one_line_error(res)
    assert "not supported" in line or "without setting console socket" in line, line
    assert not pid_file.exists()


def test_sysctl_does_not_exist(pyrunc, bundle):
    bundle.linux["sysctl"] = {"kernel.no_such_sysctl_here": "1"}
    create_fails(pyrunc, bundle, "linux.sysctl")


def test_resources_unified_on_cgroup_v1(pyrunc, bundle):
    """runc: "cannot use unified on cgroup v1". (linux.resources other than
    devices used to be refused as not supported, until the cgroups task.)"""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        pytest.skip("pure cgroup v2 host")
    bundle.linux["resources"]["unified"] = {"memory.max": "64M"}
    create_fails(pyrunc, bundle, "linux.resources.unified")


def test_resources_bad_value(pyrunc, bundle):
    bundle.linux["resources"]["memory"] = {"swappiness": 1000}
    create_fails(pyrunc, bundle, "linux.resources.memory.swappiness")


def test_hostname_without_uts_namespace(pyrunc, bundle):
    bundle.remove_namespace("uts")
    bundle.config["hostname"] = "nope"
    create_fails(pyrunc, bundle, "hostname")


def test_rootfs_missing(pyrunc, bundle, tmp_path):
    bundle.config["root"]["path"] = str(tmp_path / "no-rootfs")
    create_fails(pyrunc, bundle, "root.path")


def test_bad_device_entry(pyrunc, bundle):
    bundle.linux["devices"] = [{"path": "/dev/x", "type": "q", "major": 1, "minor": 1}]
    create_fails(pyrunc, bundle, "linux.devices[0]")


def test_seccomp_unknown_syscall_action(pyrunc, bundle):
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_NOPE"}
    create_fails(pyrunc, bundle, "linux.seccomp.defaultAction")


def test_failed_create_keeps_existing_container(pyrunc, bundle):
    """A failing create with an id in use must not harm the existing one."""
    cid, _ = pyrunc.create(bundle)
    pid = pyrunc.state(cid)["pid"]
    bad = pyrunc.bundle("bad")
    bad.args("nope")
    _, res = pyrunc.create(bad, cid=cid, check=False)
    pyrunc.one_line_error(res, "already exists")
    st = pyrunc.state(cid)
    assert (st["status"], st["pid"]) == ("created", pid)


def test_late_failure_cleans_up(pyrunc, bundle, tmp_path):
    """A failure after namespaces, cgroup and mounts exist (in init: cwd) leaves nothing."""
    out = tmp_path / "out"
    out.mkdir()
    bundle.bind(out, "/out")
    bundle.tmpfs("/mnt/tmp")
    bundle.process["cwd"] = "/out/missing"
    create_fails(pyrunc, bundle, "process.cwd")
    assert os.listdir(out) == []


def test_oom_score_adj_refused_by_the_kernel(pyrunc, bundle):
    """Lowering oom_score_adj needs CAP_SYS_RESOURCE, which this machine's root lacks:
    the error must say so (as runc does), not surface as a broken sync channel."""
    with open("/proc/self/status") as f:
        bounding = int(next(line for line in f if line.startswith("CapBnd:")).split()[1], 16)
    if bounding & (1 << 24):  # CAP_SYS_RESOURCE: the kernel would allow it here
        bundle.config["process"]["oomScoreAdj"] = -998
        bundle.sh("cat /proc/self/oom_score_adj")
        assert pyrunc.run_ok(bundle).strip() == "-998"
        return
    bundle.config["process"]["oomScoreAdj"] = -998
    create_fails(pyrunc, bundle, "process.oomScoreAdj",
                 "failed to update /proc/self/oom_score_adj: Permission denied")


# --- runc's words for the conditions it names too ---------------------------------------------

def _no(ns):
    return lambda b: b.remove_namespace(ns)


def _set(path, value):
    def edit(b):
        node = b.config
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return edit


def _all(*edits):
    return lambda b: [e(b) for e in edits]


RUNC_WORDS = {
    # case: (config edit, where, how the message begins: runc 1.5.1's words)
    "unified on v1": (_set(("linux", "resources", "unified"), {"pids.max": "10"}),
                      "linux.resources.unified",
                      "invalid configuration: cannot use unified on cgroup v1"),
    "hostname": (_no("uts"), "hostname", "unable to set hostname without a private UTS namespace"),
    "domainname": (_all(_no("uts"), _set(("hostname",), ""), _set(("domainname",), "d")),
                   "domainname", "unable to set domainname without a private UTS namespace"),
    "sysctl": (_set(("linux", "sysctl"), {"kernel.foo": "1"}), "linux.sysctl.kernel.foo",
               'sysctl "kernel.foo" is not in a separate kernel namespace'),
    "ipc sysctl": (_all(_no("ipc"), _set(("linux", "sysctl"), {"kernel.shmmax": "1"})),
                   "linux.sysctl.kernel.shmmax",
                   'sysctl "kernel.shmmax" is not allowed in the hosts ipc namespace'),
    "net sysctl": (_all(_no("network"), _set(("linux", "sysctl"), {"net.ipv4.ip_forward": "1"})),
                   "linux.sysctl.net.ipv4.ip_forward",
                   'sysctl "net.ipv4.ip_forward" not allowed in host network namespace'),
    "hostname sysctl": (_set(("linux", "sysctl"), {"kernel.hostname": "x"}),
                        "linux.sysctl.kernel.hostname",
                        'sysctl "kernel.hostname" is not allowed as it conflicts with the OCI '
                        '"hostname" field'),
    "userns without maps": (lambda b: b.add_namespace("user"), "linux.uidMappings",
                            "user namespaces enabled, but no uid mappings found"),
    "time offsets": (_set(("linux", "timeOffsets"), {"monotonic": {"secs": 1}}),
                     "linux.timeOffsets", "time namespace offsets specified, but time namespace "
                                          "isn't enabled in the config"),
    "rootfs": (_set(("root", "path"), "/nonexistent-rootfs"), "root.path",
               "invalid rootfs: stat /nonexistent-rootfs: no such file or directory"),
    "rlimit": (_set(("process", "rlimits"), [{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}]),
               "process.rlimits[0].type", "wrong rlimit value: RLIMIT_FOO"),
    "cwd": (_set(("process", "cwd"), "rel"), "process.cwd", "Cwd must be an absolute path"),
    "args": (_set(("process", "args"), []), "process.args", "args must not be empty"),
    "duplicated ns": (lambda b: b.add_namespace("pid"), "linux.namespaces[5].type",
                      "malformed spec file: duplicated ns "),
    "device type": (_set(("linux", "resources", "devices"), [{"allow": True, "type": "u",
                                                              "access": "rwm"}]),
                    "linux.resources.devices[0].type", 'invalid cgroup device type "u"'),
    "device access": (_set(("linux", "resources", "devices"), [{"allow": False, "access": "rwm"},
                                                               {"allow": True, "access": ""}]),
                      "linux.resources.devices[1].access",
                      "device access at 1 field cannot be empty"),
    "selinux": (_set(("process", "selinuxLabel"), "system_u:system_r:container_t:s0"),
                "process.selinuxLabel",
                "selinux label is specified in config, but selinux is disabled or not supported"),
}


@pytest.mark.parametrize("case", RUNC_WORDS)
def test_errors_begin_with_runcs_words(pyrunc, bundle, case):
    """Where runc names the same condition, the message (after the config
    field) begins with runc's words, so what users and tools match on holds."""
    edit, where, words = RUNC_WORDS[case]
    if case == "unified on v1" and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        pytest.skip("pure cgroup v2 host")
    if case == "selinux" and os.path.exists("/sys/fs/selinux/enforce"):
        pytest.skip("SELinux is enabled here")
    edit(bundle)
    line = create_fails(pyrunc, bundle, run=True)
    message = line.removeprefix("pyrunc run failed: ")
    if not pyrunc.is_runc:  # (PYRUNC=.../runc: the same test shows runc's own line)
        assert message.startswith(f"{where}: "), line
        message = message[len(where) + 2:]
    assert message.startswith(words), line
