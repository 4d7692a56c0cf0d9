"""Fixtures for real containers on a pure cgroup v2 host (inside cgroup2-vm):

    cd /work/main && CGROUP2_VM_BACKEND=uml /work/shared/tools/cgroup2-vm \\
        /opt/pyrunc-venv/bin/python -m pytest tests/cgroup2 -q

* ``v2_rootfs`` (session): a busybox rootfs built with
  examples/bundles/make-rootfs.sh under the guest's /tmp (tmpfs).
* ``v2rt`` (per test): runs the CLI ($PYRUNC, default the venv's) with a
  private --root, makes bundles, and at teardown force-deletes every container
  it made and fails the test if a state dir or a cgroup named after one of its
  ids is left (removing them so the next test starts clean).
"""
import copy
import json
import os
import secrets
import shutil
from pathlib import Path

import pytest

from guestlib import make_rootfs, pyrunc_path, run_cli, spec_template, wait_until

ROOT = "/sys/fs/cgroup"


@pytest.fixture(scope="session")
def v2_rootfs(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("rootfs") / "rootfs"
    make_rootfs(path)
    (path / "out").mkdir()
    return str(path)


@pytest.fixture(scope="session")
def v2_template(tmp_path_factory) -> dict:
    return spec_template(tmp_path_factory.mktemp("spec"))


class V2Runtime:
    def __init__(self, tmp: Path, rootfs: str, template: dict):
        self.tmp, self.rootfs, self.template = tmp, rootfs, template
        self.root = str(tmp / "state")
        self.ids: list[str] = []

    def new_id(self) -> str:
        self.ids.append(f"c2-{secrets.token_hex(4)}")
        return self.ids[-1]

    def bundle(self, resources=None, args=("sleep", "1000"), name=None) -> Path:
        d = self.tmp / (name or f"b-{len(self.ids)}-{secrets.token_hex(2)}")
        d.mkdir()
        c = copy.deepcopy(self.template)
        c["root"]["path"] = self.rootfs
        c["process"]["terminal"] = False
        c["process"]["args"] = list(args)
        c["linux"]["resources"].update(resources or {})
        (d / "config.json").write_text(json.dumps(c))
        return d

    def config(self, bundle: Path) -> dict:
        return json.loads((bundle / "config.json").read_text())

    def write_config(self, bundle: Path, config: dict) -> None:
        (bundle / "config.json").write_text(json.dumps(config))

    def __call__(self, *args, stdin: str | None = None, timeout: float = 120):
        res = run_cli([pyrunc_path(), "--root", self.root, *args], stdin, timeout)
        res.args = args
        return res

    def ok(self, *args, **kw):
        res = self(*args, **kw)
        assert res.returncode == 0, f"{args} -> {res.returncode}: {res.stderr}"
        return res

    def run_d(self, bundle: Path) -> str:
        cid = self.new_id()
        self.ok("run", "-d", "--bundle", bundle, cid)
        return cid

    def fails(self, bundle: Path, *needles: str) -> str:
        cid = self.new_id()
        res = self("create", "--bundle", bundle, cid)
        lines = res.stderr.splitlines()
        assert res.returncode != 0 and len(lines) == 1, res.stderr
        for n in needles:
            assert n in lines[0], (n, lines[0])
        assert not os.path.exists(os.path.join(self.root, cid))
        return lines[0]

    def state(self, cid: str) -> dict:
        return json.loads(self.ok("state", cid).stdout)

    def cgroup(self, cid: str) -> str:
        with open(os.path.join(self.root, cid, "state.json")) as f:
            return json.load(f)["cgroup"]["path"]

    def saved_resources(self, cid: str) -> dict:
        with open(os.path.join(self.root, cid, "config.json")) as f:
            return json.load(f)["linux"]["resources"]

    wait_until = staticmethod(wait_until)

    def cleanup(self) -> list[str]:
        for cid in self.ids:
            self("delete", "--force", cid)
        left = []
        if os.path.isdir(self.root) and os.listdir(self.root):
            left.append(f"state: {os.listdir(self.root)}")
            shutil.rmtree(self.root, ignore_errors=True)
        for dirpath, dirnames, _ in os.walk(ROOT):
            for d in dirnames:
                if any(i in d for i in self.ids):
                    left.append(os.path.join(dirpath, d))
        for d in sorted(left[1:] if left and left[0].startswith("state") else left,
                        key=len, reverse=True):
            if d.startswith(ROOT):
                try:
                    with open(os.path.join(d, "cgroup.kill"), "w") as f:
                        f.write("1")
                except OSError:
                    pass
                self.wait_until(lambda d=d: _rmdir(d), 3)
        return left


def _rmdir(path: str) -> bool:
    try:
        os.rmdir(path)
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


@pytest.fixture
def v2rt(tmp_path, v2_rootfs, v2_template):
    rt = V2Runtime(tmp_path, v2_rootfs, v2_template)
    yield rt
    left = rt.cleanup()
    assert not left, f"left behind: {left}"
