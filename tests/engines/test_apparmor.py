"""process.apparmorProfile applied for real (a kernel with AppArmor: the systemd guest):
a profile loaded with apparmor_parser confines the container's process (its label, read
from inside, and a rule it enforces), `exec` takes the container's profile or
`--apparmor`, and a profile that is not loaded fails in one line, as runc's, leaving
nothing behind. `features` says pyrunc implements AppArmor."""
import json
import os
import secrets
import shutil

import pytest

import guestlib
import sdlib
from clientlib import pids_mentioning, run
from enginelib import apparmor_up, profile_of

pytestmark = pytest.mark.engines

NOT_LOADED = ("unable to start container process: error during container init: unable to "
              "apply apparmor profile: apparmor failed to apply profile: write ")


@pytest.fixture(scope="module")
def aa(engine_tmp, images, pyrunc_bin):
    """A bundle maker and a profile `pyrunc-test-<hex>` loaded for the module: everything
    allowed but writing /aa-denied (a path as the container sees it)."""
    if not apparmor_up():
        pytest.skip("the kernel has no AppArmor enabled here (run in the systemd guest)")
    if not shutil.which("apparmor_parser"):
        pytest.skip("apparmor_parser is missing (apt-get install apparmor: scripts/setup.sh)")
    d = engine_tmp / "apparmor"
    d.mkdir()
    rootfs = images["rootfs"]
    template = guestlib.spec_template(d)
    name = f"pyrunc-test-{secrets.token_hex(3)}"
    profile = d / "profile"
    profile.write_text(f"profile {name} flags=(attach_disconnected,mediate_deleted) {{\n"
                       "  file, capability, network, signal, ptrace, unix, mount, umount,\n"
                       "  pivot_root, dbus,\n  deny /aa-denied w,\n}\n")
    res = run(["apparmor_parser", "-r", profile], timeout=120)
    assert res.returncode == 0, res
    helper = AppArmorBundles(d, rootfs, template, name, pyrunc_bin)
    yield helper
    left = helper.cleanup()
    run(["apparmor_parser", "-R", profile], timeout=120)
    assert not left, left


class AppArmorBundles:
    def __init__(self, d, rootfs, template, profile, pyrunc):
        self.dir, self.rootfs, self.template = d, rootfs, template
        self.profile, self.pyrunc = profile, pyrunc
        self.root = d / "state"
        self.prefix = f"aa{secrets.token_hex(3)}"
        self.ids = []

    def bundle(self, args, profile=None):
        b = self.dir / f"b-{secrets.token_hex(4)}"
        b.mkdir()
        c = json.loads(json.dumps(self.template))
        c["root"] = {"path": str(self.rootfs), "readonly": False}
        c["process"].update(terminal=False, args=list(args))
        if profile:
            c["process"]["apparmorProfile"] = profile
        self.ids.append(f"c{secrets.token_hex(4)}")
        c["linux"]["cgroupsPath"] = f":{self.prefix}:{self.ids[-1]}"
        (b / "config.json").write_text(json.dumps(c))
        return b, self.ids[-1]

    def __call__(self, *args, timeout=120):
        return guestlib.run_cli([self.pyrunc, "--root", self.root, "--systemd-cgroup", *args],
                                timeout=timeout)

    def cleanup(self):
        for cid in self.ids:
            self("delete", "--force", cid)
        left = [f"state: {p}" for p in (self.root.iterdir() if self.root.is_dir() else ())]
        left += [f"unit: {u}" for u in sdlib.units(f"{self.prefix}-*")]
        return left


def test_profile_applied_and_enforced(aa):
    b, cid = aa.bundle(["sh", "-c", "cat /proc/self/attr/current; touch /tmp/ok && "
                        "echo allowed; touch /aa-denied"], profile=aa.profile)
    res = aa("run", "--bundle", b, cid)
    assert res.returncode == 1, res
    lines = res.stdout.splitlines()
    assert lines == [f"{aa.profile} (enforce)", "allowed"], res
    assert "Permission denied" in res.stderr, res


def test_exec_takes_the_containers_profile_or_apparmor(aa):
    b, cid = aa.bundle(["sleep", "1000"])
    res = aa("run", "-d", "--bundle", b, cid)
    assert res.returncode == 0, res
    try:
        res = aa("exec", cid, "cat", "/proc/self/attr/current")
        assert (res.returncode, profile_of(res.stdout)) == (0, "unconfined"), res
        res = aa("exec", "--apparmor", aa.profile, cid, "cat", "/proc/self/attr/current")
        assert (res.returncode, profile_of(res.stdout)) == (0, f"{aa.profile} (enforce)"), res
        res = aa("exec", "--apparmor", "pyrunc-not-loaded", cid, "true")
        lines = res.stderr.strip().splitlines()
        assert res.returncode != 0 and len(lines) == 1, res
        assert ("exec failed: unable to start container process: apparmor failed to apply "
                "profile: write ") in lines[0] and lines[0].endswith(
                    ": no such file or directory"), lines
    finally:
        aa("delete", "--force", cid)
    b, cid = aa.bundle(["sleep", "1000"], profile=aa.profile)
    assert aa("run", "-d", "--bundle", b, cid).returncode == 0
    try:
        res = aa("exec", cid, "cat", "/proc/self/attr/current")
        assert (res.returncode, profile_of(res.stdout)) == (0, f"{aa.profile} (enforce)"), res
    finally:
        aa("delete", "--force", cid)


def test_profile_not_loaded_fails_in_one_line_leaving_nothing(aa):
    b, cid = aa.bundle(["true"], profile="pyrunc-not-loaded")
    res = aa("create", "--bundle", b, cid)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1, res
    assert lines[0].startswith("pyrunc create failed: " + NOT_LOADED), lines
    assert lines[0].endswith(": no such file or directory"), lines
    assert not (aa.root / cid).exists()
    assert sdlib.units(f"{aa.prefix}-{cid}.scope") == []
    assert not pids_mentioning(str(b))
    runc = shutil.which("runc")  # Debian's runc 1.1.5: the same words
    if runc:
        res = run([runc, "--root", aa.dir / "runc-state", "--systemd-cgroup", "create", "--bundle", b, cid])
        assert res.returncode == 1 and NOT_LOADED in res.stderr, res
        run([runc, "--root", aa.dir / "runc-state", "--systemd-cgroup", "delete", "--force", cid])


def test_features_say_apparmor_is_implemented(aa):
    res = run([aa.pyrunc, "features"])
    assert res.returncode == 0, res
    assert json.loads(res.stdout)["linux"]["apparmor"] == {"enabled": True}
    assert os.path.exists("/sys/kernel/security/apparmor")  # and the host has it here
