"""linux.netDevices with veth pairs made by the test: moved, renamed, addresses
kept and up inside; the failure paths leave every device where it was."""
import json
import secrets
import subprocess

import pytest

pytestmark = pytest.mark.integration


def ip(*args, check=True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def link_exists(name: str) -> bool:
    return ip("link", "show", "dev", name, check=False).returncode == 0


def addresses(name: str) -> set[str]:
    out = json.loads(ip("-j", "addr", "show", "dev", name).stdout)[0]
    return {f"{a['local']}/{a['prefixlen']}" for a in out.get("addr_info", [])
            if a.get("scope") == "global"}


@pytest.fixture
def veth():
    """A veth pair (a moves, b stays) with permanent global v4/v6 addresses on
    a, plus one dynamic and one link-scope address that must not move."""
    tag = secrets.token_hex(3)
    a, b = f"s13a{tag}", f"s13b{tag}"
    ip("link", "add", a, "type", "veth", "peer", "name", b)
    ip("addr", "add", "10.213.7.1/24", "dev", a)
    ip("addr", "add", "fd00:213:7::1/64", "dev", a, "nodad")
    ip("addr", "add", "10.213.8.1/24", "dev", a, "valid_lft", "300", "preferred_lft", "300")
    ip("addr", "add", "10.213.9.1/24", "dev", a, "scope", "link")
    ip("link", "set", a, "up")
    yield a, b
    for name in (a, b):
        if link_exists(name):
            ip("link", "del", name, check=False)


INSIDE = "ip -o link show {n}; ip -o addr show dev {n}"


def run_inside(pyrunc, bundle, name: str) -> str:
    return pyrunc.run_ok(bundle.sh(INSIDE.format(n=name)))


def test_move_rename_keep_addresses_up(pyrunc, bundle, veth):
    a, b = veth
    bundle.linux["netDevices"] = {a: {"name": "eth1"}}
    bundle.args("sleep", "1000")
    cid = pyrunc.new_id()
    pyrunc.ok("run", "-d", "--bundle", bundle.path, cid, bundle=bundle)
    assert not link_exists(a) and link_exists(b)
    out = pyrunc.ok("exec", cid, "sh", "-c", INSIDE.format(n="eth1")).stdout
    assert "eth1" in out and "UP" in out.splitlines()[0]
    assert "10.213.7.1/24" in out and "fd00:213:7::1/64" in out
    assert "10.213.8.1" not in out   # dynamic: not moved
    assert "10.213.9.1" not in out   # link scope: not moved
    pyrunc.ok("delete", "--force", cid)
    # the spec: nothing moved back on delete; a veth dies with its namespace, peer and all
    assert pyrunc.wait_until(lambda: not link_exists(b))
    assert not link_exists(a)


def test_keep_host_name(pyrunc, bundle, veth):
    a, _ = veth
    bundle.linux["netDevices"] = {a: {}}
    out = run_inside(pyrunc, bundle, a)
    assert f": {a}@" in out and "10.213.7.1/24" in out


def test_name_template(pyrunc, bundle, veth):
    a, _ = veth
    bundle.linux["netDevices"] = {a: {"name": "net%d"}}
    out = run_inside(pyrunc, bundle, "net0")
    assert ": net0@" in out and "10.213.7.1/24" in out


def test_create_start_sees_devices_before_start(pyrunc, bundle, veth, tmp_path):
    """Moved at create, before the createRuntime hooks run."""
    a, _ = veth
    bundle.linux["netDevices"] = {a: {"name": "eth9"}}
    seen = tmp_path / "seen"
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": [
        "sh", "-c", f"pid=$(sed 's/.*\"pid\": *\\([0-9]*\\).*/\\1/'); "
                    f"nsenter -t $pid -n ip -o link show eth9 > {seen}"]}]}
    bundle.args("true")
    cid, _ = pyrunc.create(bundle)
    assert "eth9" in seen.read_text()
    pyrunc.ok("start", cid)


def host_side_intact(name: str, up: bool = True) -> None:
    assert link_exists(name)
    assert addresses(name) >= {"10.213.7.1/24", "fd00:213:7::1/64"}
    flags = json.loads(ip("-j", "link", "show", "dev", name).stdout)[0]["flags"]
    assert ("UP" in flags) is up


def test_absent_device(pyrunc, bundle):
    bundle.linux["netDevices"] = {"nosuchdev13": {}}
    pyrunc.one_line_error(pyrunc.run(bundle), "linux.netDevices.nosuchdev13", "no network device")


def test_name_taken_in_container(pyrunc, bundle, veth):
    a, _ = veth
    bundle.linux["netDevices"] = {a: {"name": "lo"}}
    pyrunc.one_line_error(pyrunc.run(bundle), f"linux.netDevices.{a}", "already exists")
    host_side_intact(a)


def test_failure_midway_moves_back(pyrunc, bundle, veth):
    """The second device cannot change namespaces (the host's lo): the first,
    already moved and renamed, comes back with its name, addresses and state."""
    a, _ = veth
    bundle.linux["netDevices"] = {a: {"name": "eth1"}, "lo": {"name": "lo2"}}
    pyrunc.one_line_error(pyrunc.run(bundle), "linux.netDevices.lo")
    host_side_intact(a)


def test_failure_after_move_moves_back(pyrunc, bundle, veth):
    """create fails later (a bad cwd, found by init): the device is not lost."""
    a, _ = veth
    bundle.linux["netDevices"] = {a: {"name": "eth1"}}
    bundle.process["cwd"] = "/no/such/dir"
    pyrunc.one_line_error(pyrunc.run(bundle), "process.cwd")
    host_side_intact(a)


def test_needs_own_network_namespace(pyrunc, bundle, veth):
    a, _ = veth
    bundle.remove_namespace("network")
    bundle.linux["netDevices"] = {a: {}}
    pyrunc.one_line_error(pyrunc.run(bundle), "linux.netDevices", "network namespace")
    host_side_intact(a)


@pytest.mark.parametrize("name", ["bad/name", "x" * 16, "two%d%d"])
def test_bad_names(pyrunc, bundle, veth, name):
    a, _ = veth
    bundle.linux["netDevices"] = {a: {"name": name}}
    pyrunc.one_line_error(pyrunc.run(bundle), f"linux.netDevices.{a}.name", "invalid")


def test_two_devices_one_name(pyrunc, bundle, veth):
    a, b = veth
    bundle.linux["netDevices"] = {a: {"name": "eth1"}, b: {"name": "eth1"}}
    pyrunc.one_line_error(pyrunc.run(bundle), f"linux.netDevices.{b}.name", "both")


def test_features(pyrunc):
    assert json.loads(pyrunc.ok("features").stdout)["linux"]["netDevices"] == {"enabled": True}
