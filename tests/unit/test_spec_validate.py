"""Unit tests for pyrunc.spec.validate and the schemas/ package data (no root needed)."""

import copy
import json
import subprocess
import sys

import pytest

from pyrunc.errors import ConfigError
from pyrunc.spec import validate as v
from pyrunc.spec.defaults import default_spec
from pyrunc.spec.validate import (
    SCHEMA_BASE_URI,
    SCHEMA_FILES,
    format_where,
    load_schema,
    register_fast_check,
    schema_registry,
    schemas_dir,
    validate_config,
    validate_features,
    validate_process,
    validate_state,
)

MINIMAL = {"ociVersion": "1.0.0", "root": {"path": "rootfs"}}

MINIMAL_FOR_START = {
    "ociVersion": "1.0.0",
    "root": {"path": "rootfs"},
    "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}},
}

# Every runtime-spec v1.3 field that applies to Linux, set once.
FULL_LINUX = {
    "ociVersion": "1.3.0",
    "process": {
        "terminal": True,
        "consoleSize": {"height": 25, "width": 80},
        "user": {"uid": 1, "gid": 1, "umask": 18, "additionalGids": [5, 6]},
        "args": ["sh", "-c", "true"],
        "env": ["PATH=/usr/bin:/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {
            "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_AUDIT_WRITE", "CAP_KILL"],
            "inheritable": ["CAP_AUDIT_WRITE"],
            "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_NET_BIND_SERVICE"],
        },
        "rlimits": [
            {"type": "RLIMIT_CORE", "hard": 1024, "soft": 1024},
            {"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024},
        ],
        "noNewPrivileges": True,
        "apparmorProfile": "acme_secure_profile",
        "oomScoreAdj": 100,
        "scheduler": {"policy": "SCHED_FIFO", "priority": 10, "flags": ["SCHED_FLAG_RESET_ON_FORK"]},
        "selinuxLabel": "system_u:system_r:svirt_lxc_net_t:s0:c124,c675",
        "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
        "execCPUAffinity": {"initial": "7", "final": "0-3,7"},
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "slartibartfast",
    "domainname": "foobarbaz.test",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
        {
            "destination": "/data",
            "type": "bind",
            "source": "/srv/data",
            "options": ["rbind", "ro"],
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 65536}],
            "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 65536}],
        },
    ],
    "hooks": {
        "prestart": [{"path": "/usr/bin/fix-mounts", "args": ["fix-mounts", "a"], "env": ["k=v"]}],
        "createRuntime": [{"path": "/usr/bin/setup-network"}],
        "createContainer": [{"path": "/usr/bin/mount-hook", "timeout": 5}],
        "startContainer": [{"path": "/usr/bin/refresh-ldcache"}],
        "poststart": [{"path": "/usr/bin/notify-start", "timeout": 5}],
        "poststop": [{"path": "/usr/sbin/cleanup.sh", "args": ["cleanup.sh", "-f"]}],
    },
    "annotations": {"com.example.key1": "value1"},
    "linux": {
        "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 32000}],
        "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 32000}],
        "sysctl": {"net.ipv4.ip_forward": "1", "net.core.somaxconn": "256"},
        "resources": {
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
            ],
            "memory": {
                "limit": 536870912,
                "reservation": 536870912,
                "swap": 536870912,
                "kernel": -1,
                "kernelTCP": -1,
                "swappiness": 0,
                "disableOOMKiller": False,
                "useHierarchy": False,
                "checkBeforeUpdate": True,
            },
            "cpu": {
                "shares": 1024,
                "quota": 1000000,
                "burst": 1000000,
                "period": 500000,
                "realtimeRuntime": 950000,
                "realtimePeriod": 1000000,
                "cpus": "2-3",
                "mems": "0-7",
                "idle": 0,
            },
            "pids": {"limit": 32771},
            "blockIO": {
                "weight": 10,
                "leafWeight": 10,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 500, "leafWeight": 300}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
                "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
                "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 300}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 300}],
            },
            "hugepageLimits": [{"pageSize": "2MB", "limit": 209715200}, {"pageSize": "64KB", "limit": 1000000}],
            "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500}]},
            "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
            "unified": {"io.max": "8:0 rbps=1048576", "memory.high": "max"},
        },
        "cgroupsPath": "/myRuntime/myContainer",
        "namespaces": [
            {"type": "pid"},
            {"type": "network", "path": "/var/run/netns/neta"},
            {"type": "ipc"},
            {"type": "uts"},
            {"type": "mount"},
            {"type": "user"},
            {"type": "cgroup"},
            {"type": "time"},
        ],
        "devices": [
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0},
            {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0, "fileMode": 432},
        ],
        "netDevices": {"eth0": {"name": "container_eth0"}, "ens4": {}},
        "seccomp": {
            "defaultAction": "SCMP_ACT_ALLOW",
            "defaultErrnoRet": 1,
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "listenerPath": "/run/seccomp-agent.socket",
            "listenerMetadata": "foo",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["getcwd", "chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {
                    "names": ["personality"],
                    "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}],
                },
                {"names": ["mount"], "action": "SCMP_ACT_NOTIFY"},
            ],
        },
        "rootfsPropagation": "slave",
        "maskedPaths": ["/proc/kcore", "/proc/latency_stats"],
        "readonlyPaths": ["/proc/bus", "/proc/sys"],
        "mountLabel": "system_u:object_r:svirt_sandbox_file_t:s0:c715,c811",
        "intelRdt": {
            "closID": "guaranteed_group",
            "schemata": ["L3:0=7f0;1=1f", "MB:0=20;1=70"],
            "l3CacheSchema": "L3:0=7f0;1=1f",
            "memBwSchema": "MB:0=20;1=70",
            "enableMonitoring": True,
        },
        "memoryPolicy": {"mode": "MPOL_INTERLEAVE", "nodes": "0-3", "flags": ["MPOL_F_STATIC_NODES"]},
        "personality": {"domain": "LINUX32", "flags": []},
        "timeOffsets": {"monotonic": {"secs": 172800, "nanosecs": 0}, "boottime": {"secs": 604800, "nanosecs": 0}},
    },
}

RUNC_FEATURES = {
    "ociVersionMin": "1.0.0",
    "ociVersionMax": "1.3.0",
    "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
    "mountOptions": ["async", "bind", "ro", "rw", "idmap", "ridmap"],
    "linux": {
        "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
        "capabilities": ["CAP_CHOWN", "CAP_SYS_ADMIN"],
        "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": True, "rdma": True},
        "seccomp": {
            "enabled": True,
            "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO"],
            "operators": ["SCMP_CMP_EQ", "SCMP_CMP_MASKED_EQ"],
            "archs": ["SCMP_ARCH_X86_64"],
            "knownFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"],
            "supportedFlags": ["SECCOMP_FILTER_FLAG_LOG"],
        },
        "apparmor": {"enabled": True},
        "selinux": {"enabled": True},
        "intelRdt": {"enabled": True, "schemata": True, "monitoring": True},
        "memoryPolicy": {"modes": ["MPOL_DEFAULT", "MPOL_BIND"], "flags": ["MPOL_F_STATIC_NODES"]},
        "mountExtensions": {"idmap": {"enabled": True}},
        "netDevices": {"enabled": True},
    },
    "annotations": {"io.github.seccomp.libseccomp.version": "2.5.4"},
    "potentiallyUnsafeConfigAnnotations": ["bundle", "org.systemd.property."],
}


def error_of(fn, doc, *args):
    with pytest.raises(ConfigError) as info:
        fn(doc, *args)
    err = info.value
    assert "\n" not in err.message and len(err.message) <= 200, err.message
    return err


def mutated(base, mutate):
    doc = copy.deepcopy(base)
    mutate(doc)
    return doc


# --------------------------------------------------------------------------- schema files


def test_schema_files_present_and_well_formed():
    from jsonschema import Draft202012Validator

    d = schemas_dir()
    for name in SCHEMA_FILES:
        doc = json.loads((d / name).read_text())
        assert doc["$id"] == SCHEMA_BASE_URI + name
        assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(doc)
        text = json.dumps(doc)
        assert '"definitions"' not in text and "#/definitions" not in text  # 2020-12: "$defs" only
    assert (d / "__init__.py").is_file()  # a regular package in `pip install .`


def _refs(node):
    if isinstance(node, dict):
        for k, val in node.items():
            if k == "$ref":
                yield val
            else:
                yield from _refs(val)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_every_ref_resolves_offline():
    registry = schema_registry()
    count = 0
    for name in SCHEMA_FILES:
        resolver = registry.resolver(base_uri=SCHEMA_BASE_URI + name)
        for ref in _refs(load_schema(name)):
            assert not ref.startswith(("http:", "https:")), ref
            resolved = resolver.lookup(ref)
            assert isinstance(resolved.contents, dict) and resolved.contents, ref
            count += 1
    assert count > 100


def test_unknown_ref_is_not_fetched():
    import referencing.exceptions

    resolver = schema_registry().resolver(base_uri=SCHEMA_BASE_URI + "defs.json")
    with pytest.raises(referencing.exceptions.Unresolvable):
        resolver.lookup("config-windows.json")


def test_schema_dir_found_through_import_system():
    from importlib.util import find_spec

    spec = find_spec("pyrunc.schemas")
    assert spec is not None
    locations = [spec.origin.rsplit("/", 1)[0]] if spec.origin else []
    locations += list(spec.submodule_search_locations or ())
    assert str(schemas_dir()) in locations


def test_validate_does_not_import_jsonschema_at_import_time():
    code = "import sys, pyrunc.spec.validate, pyrunc.spec.defaults; print('jsonschema' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- valid documents


@pytest.mark.parametrize("rootless", [False, True])
@pytest.mark.parametrize("cgroup_ns", [False, True])
def test_default_spec_validates(rootless, cgroup_ns):
    validate_config(default_spec(rootless, cgroup_ns=cgroup_ns))


@pytest.mark.parametrize("doc", [MINIMAL, MINIMAL_FOR_START, FULL_LINUX], ids=["minimal", "for-start", "full"])
def test_valid_configs(doc):
    before = copy.deepcopy(doc)
    validate_config(doc)
    assert doc == before  # never modified


def test_pids_limit_is_optional_as_in_runtime_spec_1_3():
    # config-linux.md 1.3 made limit OPTIONAL (the 1.3 schema file still says required)
    validate_config(mutated(FULL_LINUX, lambda c: c["linux"]["resources"]["pids"].pop("limit")))


def test_unknown_fields_and_other_platforms_are_accepted():
    doc = mutated(MINIMAL, lambda c: c.update(futureField={"x": 1}, windows={}, vm={}, solaris={}, zos={}))
    validate_config(doc)


@pytest.mark.parametrize(
    "version", ["1.0.0", "1.0.1", "1.0.2-dev", "1.0.0-rc5", "1.1.0-rc.1", "1.2.1", "1.3.0", "1.3.0+dev", "1.3.12"]
)
def test_oci_version_accepted(version):
    validate_config(dict(MINIMAL, ociVersion=version))


@pytest.mark.parametrize("version", ["2.0.0", "0.5.0-dev", "0.9.9", "1.4.0", "10.0.0"])
def test_oci_version_out_of_range(version):
    err = error_of(validate_config, dict(MINIMAL, ociVersion=version))
    assert err.where == "ociVersion"
    assert err.message == f"unsupported ociVersion {version!r}: pyrunc supports 1.0.0 to 1.3.x"


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "", "1.0.0.0", "01.0.0"])
def test_oci_version_malformed(version):
    err = error_of(validate_config, dict(MINIMAL, ociVersion=version))
    assert err.where == "ociVersion"
    assert "not a semantic version" in err.message


def test_oci_version_checked_before_the_rest():
    # a 2.x document may be laid out differently: the version is what to report
    err = error_of(validate_config, {"ociVersion": "2.0.0", "mounts": "whatever"})
    assert err.where == "ociVersion"


# --------------------------------------------------------------------------- schema errors


BAD = [
    # (mutation on FULL_LINUX, where, message fragment)
    (lambda c: c.pop("ociVersion"), "ociVersion", "required field is missing"),
    (lambda c: c.update(ociVersion=1), "ociVersion", "1 is not of type 'string'"),
    (lambda c: c["root"].update(readonly="rw"), "root.readonly", "'rw' is not of type 'boolean'"),
    (lambda c: c["root"].pop("path"), "root.path", "required field is missing"),
    (lambda c: c["mounts"][2].update(destination=5), "mounts[2].destination", "5 is not of type 'string'"),
    (lambda c: c["mounts"][1].pop("destination"), "mounts[1].destination", "required field is missing"),
    (lambda c: c["mounts"][0].update(options="ro"), "mounts[0].options", "'ro' is not of type 'array'"),
    (
        lambda c: c["mounts"][2]["uidMappings"][0].update(size=-1),
        "mounts[2].uidMappings[0].size",
        "-1 is less than the minimum of 0",
    ),
    (
        lambda c: c["process"]["capabilities"]["bounding"].append(7),
        "process.capabilities.bounding[3]",
        "7 is not of type 'string'",
    ),
    (lambda c: c["process"].pop("cwd"), "process.cwd", "required field is missing"),
    (lambda c: c["process"]["user"].update(uid=-1), "process.user.uid", "less than the minimum of 0"),
    (lambda c: c["process"]["user"].update(uid=2**32), "process.user.uid", "greater than the maximum"),
    (lambda c: c["process"]["user"].update(uid=1.0), "process.user.uid", "1.0 is not of type 'integer'"),
    (lambda c: c["process"]["user"].update(gid=True), "process.user.gid", "true is not of type 'integer'"),
    (lambda c: c["process"].update(terminal="yes"), "process.terminal", "'yes' is not of type 'boolean'"),
    (lambda c: c["process"].update(env="PATH=/bin"), "process.env", "is not of type 'array'"),
    (
        lambda c: c["process"]["rlimits"][1].update(type="NOFILE"),
        "process.rlimits[1].type",
        "'NOFILE' does not match",
    ),
    (lambda c: c["process"]["rlimits"][0].pop("soft"), "process.rlimits[0].soft", "required field is missing"),
    (
        lambda c: c["process"]["ioPriority"].update({"class": "IOPRIO_CLASS_FOO"}),
        "process.ioPriority.class",
        "'IOPRIO_CLASS_FOO' is not one of",
    ),
    (
        lambda c: c["process"]["scheduler"].update(policy="SCHED_WHATEVER"),
        "process.scheduler.policy",
        "is not one of",
    ),
    (
        lambda c: c["process"]["execCPUAffinity"].update(initial="a-b"),
        "process.execCPUAffinity.initial",
        "does not match",
    ),
    (lambda c: c["linux"]["namespaces"][1].update(type="net"), "linux.namespaces[1].type", "'net' is not one of"),
    (lambda c: c["linux"]["namespaces"][2].pop("type"), "linux.namespaces[2].type", "required field is missing"),
    (
        lambda c: c["linux"]["sysctl"].update({"net.ipv4.ip_forward": 1}),
        'linux.sysctl["net.ipv4.ip_forward"]',
        "1 is not of type 'string'",
    ),
    (lambda c: c["linux"]["devices"][0].update(type="x"), "linux.devices[0].type", "does not match"),
    (lambda c: c["linux"]["devices"][1].update(fileMode=4096), "linux.devices[1].fileMode", "maximum of 511"),
    (
        lambda c: c["linux"]["resources"]["hugepageLimits"][0].update(pageSize="64kB"),
        "linux.resources.hugepageLimits[0].pageSize",
        "does not match",
    ),
    (
        lambda c: c["linux"]["resources"]["rdma"]["mlx5_1"].update(hcaHandles="x"),
        "linux.resources.rdma.mlx5_1.hcaHandles",
        "is not of type 'integer'",
    ),
    (
        lambda c: c["linux"]["resources"]["blockIO"]["weightDevice"][0].pop("minor"),
        "linux.resources.blockIO.weightDevice[0].minor",
        "required field is missing",
    ),
    (lambda c: c["linux"]["resources"]["pids"].update(limit="8"), "linux.resources.pids.limit", "not of type"),
    (lambda c: c["linux"]["netDevices"]["eth0"].update(name=23), "linux.netDevices.eth0.name", "not of type"),
    (lambda c: c["linux"].update(rootfsPropagation="rshared"), "linux.rootfsPropagation", "is not one of"),
    (lambda c: c["linux"]["seccomp"].pop("defaultAction"), "linux.seccomp.defaultAction", "required field"),
    (
        lambda c: c["linux"]["seccomp"]["flags"].append("SECCOMP_FILTER_FLAG_BOGUS"),
        "linux.seccomp.flags[2]",
        "is not one of",
    ),
    (lambda c: c["linux"]["seccomp"]["syscalls"][0].update(names=[]), "linux.seccomp.syscalls[0].names", "empty"),
    (
        lambda c: c["linux"]["seccomp"]["syscalls"][1]["args"][0].update(op="EQ"),
        "linux.seccomp.syscalls[1].args[0].op",
        "'EQ' is not one of",
    ),
    (
        lambda c: c["linux"]["seccomp"]["architectures"].append("SCMP_ARCH_Z80"),
        "linux.seccomp.architectures[2]",
        "is not one of",
    ),
    (lambda c: c["linux"]["intelRdt"].update(memBwSchema="L3:0=1"), "linux.intelRdt.memBwSchema", "does not match"),
    (lambda c: c["linux"]["memoryPolicy"].update(mode="MPOL_X"), "linux.memoryPolicy.mode", "is not one of"),
    (lambda c: c["linux"]["personality"].update(domain="LINUX64"), "linux.personality.domain", "is not one of"),
    (
        lambda c: c["linux"]["timeOffsets"]["monotonic"].update(nanosecs=-1),
        "linux.timeOffsets.monotonic.nanosecs",
        "less than the minimum",
    ),
    (lambda c: c["linux"]["uidMappings"][0].pop("hostID"), "linux.uidMappings[0].hostID", "required field"),
    (lambda c: c["hooks"]["prestart"][0].pop("path"), "hooks.prestart[0].path", "required field is missing"),
    (lambda c: c["hooks"]["poststart"][0].update(timeout=0), "hooks.poststart[0].timeout", "minimum of 1"),
    (lambda c: c["annotations"].update(x=1), "annotations.x", "1 is not of type 'string'"),
    (lambda c: c.update(hostname=["a"]), "hostname", 'is not of type'),
]


@pytest.mark.parametrize("mutate,where,fragment", BAD, ids=[b[1] + ":" + b[2][:20] for b in BAD])
def test_schema_errors_name_the_field(mutate, where, fragment):
    err = error_of(validate_config, mutated(FULL_LINUX, mutate))
    assert err.where == where
    assert fragment in err.message
    assert str(err) == f"{where}: {err.message}"


def test_huge_values_are_abbreviated():
    err = error_of(validate_config, dict(MINIMAL, mounts={"a": list(range(10000))}))
    assert err.where == "mounts"
    assert err.message.endswith("is not of type 'array'")
    assert len(err.message) < 100


def test_config_must_be_an_object():
    err = error_of(validate_config, [MINIMAL])
    assert "must be a JSON object" in err.message


def test_format_where():
    assert format_where(["mounts", 3, "destination"]) == "mounts[3].destination"
    assert format_where([]) == ""
    assert format_where(["args", 0], "process") == "process.args[0]"
    assert format_where(["sysctl", "kernel.shm_rmid_forced"], "linux") == 'linux.sysctl["kernel.shm_rmid_forced"]'
    assert format_where([0]) == "[0]"


# --------------------------------------------------------------------------- semantic errors


SEMANTIC = [
    (lambda c: c.pop("root"), "root", "root must be specified"),
    (lambda c: c["root"].update(path=""), "root.path", "must not be empty"),
    (lambda c: c["process"].update(cwd="tmp"), "process.cwd", "Cwd must be an absolute path"),
    (lambda c: c["process"].update(cwd=""), "process.cwd", "must not be empty"),
    (lambda c: c["process"].update(args=[]), "process.args", "args must not be empty"),
    (lambda c: c["process"].pop("args"), "process.args", "args must not be empty"),
    (lambda c: c["mounts"][1].update(destination=""), "mounts[1].destination", "must not be empty"),
    (lambda c: c["mounts"][1].update(source="a\0b"), "mounts[1].source", "NUL"),
    (lambda c: c["mounts"][1]["options"].append("x\0"), "mounts[1].options[2]", "NUL"),
    (
        lambda c: c["linux"]["namespaces"].append({"type": "pid"}),
        "linux.namespaces[8].type",
        'malformed spec file: duplicated ns "pid"',
    ),
    (
        lambda c: c["linux"]["namespaces"].insert(3, {"type": "network"}),
        "linux.namespaces[3].type",
        'malformed spec file: duplicated ns "network"',
    ),
    (lambda c: c["linux"]["sysctl"].update({"": "1"}), 'linux.sysctl[""]', "sysctl name must not be empty"),
    (
        lambda c: c["process"].update(scheduler={"policy": "SCHED_OTHER", "priority": 1}),
        "process.scheduler.priority",
        "SCHED_FIFO or SCHED_RR",
    ),
    (
        lambda c: c["process"].update(scheduler={"policy": "SCHED_BATCH", "nice": 20}),
        "process.scheduler.nice",
        "out of range",
    ),
    (
        lambda c: c["process"].update(scheduler={"policy": "SCHED_RR", "runtime": 5}),
        "process.scheduler.runtime",
        "SCHED_DEADLINE",
    ),
    (lambda c: c["process"]["ioPriority"].update(priority=8), "process.ioPriority.priority", "out of range 0..7"),
]


@pytest.mark.parametrize("mutate,where,fragment", SEMANTIC, ids=[s[1] + ":" + s[2][:20] for s in SEMANTIC])
def test_semantic_errors(mutate, where, fragment):
    err = error_of(validate_config, mutated(FULL_LINUX, mutate))
    assert err.where == where
    assert fragment in err.message


def test_process_is_optional_in_config():
    validate_config(MINIMAL)


def test_relative_mount_destination_is_accepted():
    # runtime-spec 1.2: on Linux a relative destination is relative to "/" (deprecated)
    validate_config(mutated(FULL_LINUX, lambda c: c["mounts"][2].update(destination="data")))


def test_null_time_offsets_read_as_absent():
    config = mutated(FULL_LINUX, lambda c: c["linux"].update(timeOffsets=None))
    validate_config(config)
    assert "timeOffsets" not in config["linux"]


def test_sched_deadline_fields_allowed():
    validate_config(
        mutated(
            FULL_LINUX,
            lambda c: c["process"].update(
                scheduler={"policy": "SCHED_DEADLINE", "runtime": 10, "deadline": 20, "period": 30}
            ),
        )
    )


# --------------------------------------------------------------------------- validate_process


def test_validate_process_valid():
    validate_process(copy.deepcopy(FULL_LINUX["process"]))
    validate_process({"cwd": "/", "args": ["ls"]}, where_prefix="")


@pytest.mark.parametrize(
    "proc,prefix,where,fragment",
    [
        ({"args": ["ls"]}, "process", "process.cwd", "required field is missing"),
        ({"args": ["ls"]}, "", "cwd", "required field is missing"),
        ({"cwd": "rel", "args": ["ls"]}, "", "cwd", "Cwd must be an absolute path"),
        ({"cwd": "/", "args": []}, "process", "process.args", "args must not be empty"),
        ({"cwd": "/"}, "", "args", "args must not be empty"),
        ({"cwd": "/", "args": ["ls", 1]}, "", "args[1]", "1 is not of type 'string'"),
        ({"cwd": "/", "args": ["ls"], "user": {"uid": "root"}}, "p", "p.user.uid", "not of type 'integer'"),
        (
            {"cwd": "/", "args": ["ls"], "capabilities": {"ambient": "CAP_KILL"}},
            "",
            "capabilities.ambient",
            "not of type 'array'",
        ),
        ({"cwd": "/", "args": ["ls"], "consoleSize": {"height": 1}}, "", "consoleSize.width", "required field"),
    ],
)
def test_validate_process_errors(proc, prefix, where, fragment):
    err = error_of(validate_process, proc, prefix)
    assert err.where == where
    assert fragment in err.message


def test_validate_process_not_an_object():
    err = error_of(validate_process, ["ls"], "")
    assert err.where == "(root)" and "JSON object" in err.message


# --------------------------------------------------------------------------- state / features


def test_state():
    state = {
        "ociVersion": "1.3.0",
        "id": "oci-container1",
        "status": "running",
        "pid": 4422,
        "bundle": "/containers/redis",
        "annotations": {"myKey": "myValue"},
    }
    validate_state(state)
    validate_state(dict(state, status="creating"))
    err = error_of(validate_state, dict(state, status="paused"))
    assert err.where == "status" and "is not one of" in err.message
    err = error_of(validate_state, {k: val for k, val in state.items() if k != "bundle"})
    assert err.where == "bundle"
    err = error_of(validate_state, dict(state, pid=-1))
    assert err.where == "pid"


def test_features():
    validate_features(RUNC_FEATURES)
    validate_features({"ociVersionMin": "1.0.0", "ociVersionMax": "1.3.0"})
    err = error_of(validate_features, {"ociVersionMin": "1.0.0"})
    assert err.where == "ociVersionMax" and err.message == "required field is missing"
    bad = mutated(RUNC_FEATURES, lambda f: f["linux"]["capabilities"].append("SYS_ADMIN"))
    assert error_of(validate_features, bad).where == "linux.capabilities[2]"
    bad = mutated(RUNC_FEATURES, lambda f: f["linux"]["memoryPolicy"]["modes"].append("MPOL_NOPE"))
    assert error_of(validate_features, bad).where == "linux.memoryPolicy.modes[2]"
    bad = mutated(RUNC_FEATURES, lambda f: f.update(ociVersionMax="latest"))
    assert error_of(validate_features, bad).where == "ociVersionMax"


# --------------------------------------------------------------------------- fast path hook


def test_fast_check_hook(monkeypatch):
    monkeypatch.setattr(v, "_fast_checks", {})
    calls = []

    def yes(doc):
        calls.append(doc)
        return True

    register_fast_check(v.CONFIG_SCHEMA, yes)
    doc = dict(MINIMAL, root={"path": "rootfs", "readonly": "rw"})  # schema-invalid
    validate_config(doc)  # the fast check said yes: the schema is not consulted again
    assert calls == [doc]

    register_fast_check(v.CONFIG_SCHEMA, lambda d: False)  # says no: the slow path explains
    err = error_of(validate_config, doc)
    assert err.where == "root.readonly"
    err = error_of(validate_config, dict(MINIMAL, mounts=[{"destination": ""}]))
    assert err.where == "mounts[0].destination"  # semantic checks still run

    register_fast_check(v.CONFIG_SCHEMA, None)
    assert v.CONFIG_SCHEMA not in v._fast_checks
