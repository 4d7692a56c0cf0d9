"""Fixtures for real containers under the systemd cgroup driver, inside a guest
booted with systemd as PID 1 (one guest for the whole suite):

    CGROUP2_VM_INIT=systemd ../shared/tools/cgroup2-vm -- \\
        env PYRUNC=$VENV/bin/pyrunc $VENV/bin/python -m pytest tests/systemd

* ``systemd_up`` (session): waits (bounded) for systemd and the system bus;
  every test here skips, with the reason, when there is none.
* ``sd_rootfs`` / ``sd_template`` (session): a busybox rootfs under the
  guest's /tmp, and `pyrunc spec`'s config.
* ``sd`` (per test): SdRuntime -- the CLI ($PYRUNC) with --systemd-cgroup and
  a private --root, bundles with a unique unit prefix, and at teardown
  `delete --force` of every container it made; the test fails if a state dir,
  a unit named with its prefix or the unit's cgroup is left.

sdlib.py has the systemd helpers (systemctl show, list-units, waits) for
other suites in the same guest.
"""
import copy
import json
import os
import secrets
import subprocess
import tempfile
from pathlib import Path

import pytest

import sdlib
from sdlib import systemd_up  # noqa: F401 (the fixture)
from guestlib import make_rootfs, pyrunc_path, run_cli, spec_template, wait_until


def pytest_report_header(config):
    return [f"systemd guest suite: layout {sdlib.layout()}, PID 1 "
            f"{'systemd' if sdlib.pid1_is_systemd() else 'not systemd'}"]


@pytest.fixture(scope="session")
def sd_rootfs(tmp_path_factory, systemd_up) -> str:
    return make_rootfs(tmp_path_factory.mktemp("rootfs") / "rootfs")


@pytest.fixture(scope="session")
def sd_template(tmp_path_factory, systemd_up) -> dict:
    return spec_template(tmp_path_factory.mktemp("spec"))


class SdRuntime:
    """The CLI with --systemd-cgroup; containers are units <prefix>-<id>.scope."""

    def __init__(self, tmp: Path, rootfs: str, template: dict):
        self.tmp, self.rootfs, self.template = tmp, rootfs, template
        self.root = str(tmp / "state")
        self.prefix = f"pyt{secrets.token_hex(3)}"
        self.ids: list[str] = []

    def new_id(self) -> str:
        self.ids.append(f"c{secrets.token_hex(4)}")
        return self.ids[-1]

    def unit(self, cid: str) -> str:
        return f"{self.prefix}-{cid}.scope"

    def bundle(self, resources=None, args=("sleep", "1000"), cgroups_path=None,
               annotations=None) -> Path:
        d = Path(tempfile.mkdtemp(dir=self.tmp, prefix="b-"))
        c = copy.deepcopy(self.template)
        c["root"]["path"] = self.rootfs
        c["process"]["terminal"] = False
        c["process"]["args"] = list(args)
        c["linux"]["resources"].update(resources or {})
        if cgroups_path is not None:
            c["linux"]["cgroupsPath"] = cgroups_path
        if annotations:
            c["annotations"] = dict(annotations)
        (d / "config.json").write_text(json.dumps(c))
        return d

    def __call__(self, *args, systemd: bool = True, timeout: float = 120
                 ) -> subprocess.CompletedProcess:
        argv = [pyrunc_path(), "--root", self.root] + (["--systemd-cgroup"] if systemd else [])
        res = run_cli(argv + list(args), timeout=timeout)
        res.args = args
        return res

    def ok(self, *args, **kw) -> subprocess.CompletedProcess:
        res = self(*args, **kw)
        assert res.returncode == 0, f"{args} -> {res.returncode}: {res.stderr}"
        return res

    def run_d(self, bundle: Path, cid: str | None = None, slice_: str = "") -> str:
        """run -d with cgroupsPath "<slice>:<prefix>:<id>" written into the bundle."""
        cid = cid or self.new_id()
        config = json.loads((bundle / "config.json").read_text())
        config["linux"].setdefault("cgroupsPath", f"{slice_}:{self.prefix}:{cid}")
        (bundle / "config.json").write_text(json.dumps(config))
        self.ok("run", "-d", "--bundle", bundle, cid)
        return cid

    def fails(self, bundle: Path, cid: str, *needles: str) -> str:
        """create must fail with one line containing needles and leave nothing."""
        res = self("create", "--bundle", bundle, cid)
        lines = res.stderr.strip().splitlines()
        assert res.returncode != 0 and len(lines) == 1, res.stderr
        for n in needles:
            assert n in lines[0], (n, lines[0])
        assert not os.path.exists(os.path.join(self.root, cid))
        return lines[0]

    def state_cgroup(self, cid: str) -> dict:
        with open(os.path.join(self.root, cid, "state.json")) as f:
            return json.load(f)["cgroup"]

    wait_until = staticmethod(wait_until)

    def leftovers(self) -> list[str]:
        left = []
        if os.path.isdir(self.root) and os.listdir(self.root):
            left.append(f"state: {os.listdir(self.root)}")
        units = sdlib.units(f"{self.prefix}-*")
        if units:
            left.append(f"units: {units}")
        for cid in self.ids:
            d = f"{sdlib.CGROUP_ROOT}/system.slice/{self.unit(cid)}"
            if os.path.exists(d):
                left.append(f"cgroup: {d}")
        return left

    def cleanup(self) -> list[str]:
        for cid in self.ids:
            self("delete", "--force", cid)
        left = self.leftovers()
        for unit in sdlib.units(f"{self.prefix}-*"):       # leave the next test a clean host
            sdlib.systemctl("stop", unit)
            sdlib.systemctl("reset-failed", unit)
        return left


@pytest.fixture
def sd(tmp_path, sd_rootfs, sd_template):
    rt = SdRuntime(tmp_path, sd_rootfs, sd_template)
    yield rt
    left = rt.cleanup()
    assert not left, f"left behind: {left}"
