"""pyrunc.state: ids, timestamps, atomic writes, process liveness, StateDir."""
import json
import os
import re
import stat
import time
from datetime import datetime, timezone

import pytest

from pyrunc.container import state as st
from pyrunc.errors import ContainerExists, ContainerNotFound, InvalidContainerID, PyruncError


@pytest.mark.parametrize("cid", ["a", "abc", "A-b_c.d+e", "0", "x" * 200, "a..b", "-a", ".a",
                                 "sha256.0123456789abcdef"])
def test_valid_ids(cid):
    st.check_id(cid)


@pytest.mark.parametrize("cid", ["", ".", "..", "../x", "a/b", "/abs", "a b", "a\nb", "a:b",
                                 "a\x00b", "é", "a*", "a\\b", "~a"])
def test_invalid_ids(cid):
    with pytest.raises(InvalidContainerID) as exc:
        st.check_id(cid)
    assert "invalid container ID format" in str(exc.value)


def test_statedir_rejects_invalid_id(tmp_path):
    with pytest.raises(InvalidContainerID):
        st.StateDir(str(tmp_path), "../escape")
    assert os.listdir(tmp_path) == []


RFC3339_NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def test_now_rfc3339():
    before = datetime.now(timezone.utc)
    text = st.now_rfc3339()
    after = datetime.now(timezone.utc)
    assert RFC3339_NANO.match(text), text
    # Go's RFC3339Nano trims trailing zeros of the fraction
    m = re.search(r"\.(\d+)Z$", text)
    if m:
        assert not m.group(1).endswith("0"), text
    base, _, frac = text[:-1].partition(".")
    parsed = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    parsed = parsed.replace(microsecond=int((frac or "0").ljust(9, "0")[:6]))
    assert before.replace(microsecond=0) <= parsed <= after


def test_now_rfc3339_is_fractional_most_of_the_time():
    stamps = [st.now_rfc3339() for _ in range(5)]
    assert any("." in s for s in stamps)


def test_write_atomic_creates_and_replaces(tmp_path):
    path = tmp_path / "f.json"
    st.write_atomic(str(path), "one")
    assert path.read_text() == "one"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644 & ~_umask()
    inode = os.stat(path).st_ino
    st.write_atomic(str(path), "two")
    assert path.read_text() == "two"
    assert os.stat(path).st_ino != inode, "not replaced by rename"
    assert os.listdir(tmp_path) == ["f.json"], "temporary file left"


def test_write_atomic_mode_and_no_newline(tmp_path):
    path = tmp_path / "pid"
    st.write_atomic(str(path), "123", mode=0o600)
    assert path.read_bytes() == b"123"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 & ~_umask()


def test_write_atomic_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    st.write_atomic("rel.pid", "42")
    assert (tmp_path / "rel.pid").read_text() == "42"
    assert os.listdir(tmp_path) == ["rel.pid"]


def test_write_atomic_missing_directory(tmp_path):
    # one line, worded as runc's pid file error: "open DIR/.f: no such file or directory"
    with pytest.raises(PyruncError) as exc:
        st.write_atomic(str(tmp_path / "no" / "such" / "f"), "x")
    assert str(exc.value).startswith(f"open {tmp_path}/no/such/.f")
    assert str(exc.value).endswith(": no such file or directory")


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def _stat_field22(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return int(data[data.rindex(b")") + 2:].split()[19])


def test_process_start_time_self():
    t = st.process_start_time(os.getpid())
    assert isinstance(t, int) and t > 0
    assert t == _stat_field22(os.getpid())
    assert st.process_start_time(os.getpid()) == t  # stable


def test_process_start_time_gone():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    assert st.process_start_time(pid) is None


def test_process_start_time_zombie():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        deadline = time.monotonic() + 5
        while True:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
            if data[data.rindex(b")") + 2:][:1] == b"Z":
                break
            assert time.monotonic() < deadline
            time.sleep(0.005)
        assert st.process_start_time(pid) is None
    finally:
        os.waitpid(pid, 0)


def test_process_start_time_odd_comm(tmp_path):
    """The command name may hold spaces and parentheses."""
    import subprocess
    import sys
    exe = tmp_path / "a b) (c"
    os.symlink(sys.executable, exe)
    proc = subprocess.Popen([str(exe), "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 5
        while b") (c" not in open(f"/proc/{proc.pid}/stat", "rb").read():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert st.process_start_time(proc.pid) == _stat_field22(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def test_container_state_init_alive():
    me = st.ContainerState(id="x", bundle="/b", rootfs="/b/rootfs", pid=os.getpid(),
                           init_start_time=st.process_start_time(os.getpid()))
    assert me.init_alive()
    me.init_start_time += 1  # a recycled pid
    assert not me.init_alive()
    assert not st.ContainerState(id="x", bundle="/b", rootfs="/r", pid=0).init_alive()


def test_statedir_create_load_remove(tmp_path):
    root = tmp_path / "root"
    sd = st.StateDir(str(root), "c1")
    assert not sd.exists()
    sd.create()
    try:
        assert sd.exists()
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o700 & ~_umask()
        assert stat.S_IMODE(os.stat(sd.path).st_mode) == 0o711 & ~_umask()
        with pytest.raises(ContainerNotFound):  # no state.json yet
            sd.load()
        state = st.ContainerState(id="c1", bundle="/b", rootfs="/b/rootfs", pid=123,
                                  init_start_time=456, created=st.now_rfc3339(),
                                  oci_version="1.3.0", annotations={"k": "v"}, config={"a": 1})
        sd.save(state)
        loaded = st.StateDir(str(root), "c1").load()
        assert loaded.to_json() == state.to_json()
        assert loaded.config == {"a": 1}
        assert _ids(str(root)) == ["c1"]
    finally:
        sd.unlock()
    sd.remove()
    assert not os.path.exists(sd.path)
    assert _ids(str(root)) == []
    sd.remove()  # idempotent


def test_statedir_duplicate(tmp_path):
    a = st.StateDir(str(tmp_path), "dup")
    a.create()
    a.unlock()
    b = st.StateDir(str(tmp_path), "dup")
    with pytest.raises(ContainerExists) as exc:
        b.create()
    assert "container with given ID already exists" in str(exc.value)
    assert os.path.isdir(a.path)
    a.remove()


def test_statedir_lock_is_exclusive(tmp_path):
    import fcntl
    sd = st.StateDir(str(tmp_path), "locked")
    sd.create()
    try:
        fd = os.open(sd.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    finally:
        sd.unlock()
    fd = os.open(sd.path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again
    finally:
        os.close(fd)
    sd.remove()


def test_statedir_lock_missing(tmp_path):
    with pytest.raises(ContainerNotFound):
        st.StateDir(str(tmp_path), "nope").lock()


def test_corrupt_state(tmp_path):
    sd = st.StateDir(str(tmp_path), "bad")
    sd.create()
    sd.unlock()
    with open(os.path.join(sd.path, st.STATE_FILE), "w") as f:
        f.write("{not json")
    with pytest.raises(Exception) as exc:
        sd.load()
    assert not isinstance(exc.value, ContainerNotFound)
    assert "bad" in str(exc.value)
    sd.remove()


def test_container_dirs(tmp_path):
    # runc 1.2+: `list` of a root that does not exist fails
    for bad, why in (("missing", "no such file or directory"), ("file", "not a directory")):
        (tmp_path / "file").write_text("")
        with pytest.raises(PyruncError) as exc:
            _ids(str(tmp_path / bad))
        assert str(exc.value) == f"open {tmp_path / bad}: {why}"
    (tmp_path / "file").unlink()
    for name in ("b", "a", "c"):
        (tmp_path / name).mkdir()
    (tmp_path / "file").write_text("")
    (tmp_path / "link").symlink_to(tmp_path / "a")  # not a container directory
    assert _ids(str(tmp_path)) == ["a", "b", "c"]


def test_default_root(monkeypatch):
    if os.geteuid() != 0:
        monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1234")
        assert st.default_root() == "/run/user/1234/pyrunc"
        return
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert st.default_root() == "/run/pyrunc"
    monkeypatch.setenv("XDG_RUNTIME_DIR", "")
    assert st.default_root() == "/run/pyrunc"
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/0")
    monkeypatch.setattr(st, "in_user_namespace", lambda: False)
    assert st.default_root() == "/run/pyrunc"  # root, not in a user namespace
    monkeypatch.setattr(st, "in_user_namespace", lambda: True)
    monkeypatch.setenv("USER", "root")
    assert st.default_root() == "/run/pyrunc"
    monkeypatch.delenv("USER")
    assert st.default_root() == "/run/user/0/pyrunc"


def _ids(root: str) -> list[str]:
    return [e.name for e in st.container_dirs(root)]


def _saved(tmp_path, **fields) -> st.StateDir:
    sd = st.StateDir(str(tmp_path), "c")
    sd.create()
    sd.save(st.ContainerState(id="c", bundle="/b", rootfs="/b/rootfs", **fields))
    sd.unlock()
    return sd


def test_config_is_kept_apart_and_read_on_first_use(tmp_path):
    sd = _saved(tmp_path, config={"process": {"args": ["sh"]}, "big": "x" * 10000})
    assert "config" not in json.loads((tmp_path / "c" / "state.json").read_text())
    assert json.loads((tmp_path / "c" / "config.json").read_text())["process"] == {"args": ["sh"]}
    loaded = sd.load()
    assert loaded._config is None  # `state`, `kill`, `list` never parse it
    assert loaded.config["process"] == {"args": ["sh"]}


def test_changed_config_is_saved_again(tmp_path):
    sd = _saved(tmp_path, config={"linux": {"resources": {}}})
    loaded = sd.load()
    loaded.config["linux"]["resources"]["pids"] = {"limit": 5}  # what `update` does
    sd.save(loaded)
    assert sd.load().config["linux"]["resources"] == {"pids": {"limit": 5}}


def test_state_with_the_config_inside_still_loads(tmp_path):
    # containers created before config.json existed keep working
    sd = _saved(tmp_path)
    doc = json.loads((tmp_path / "c" / "state.json").read_text())
    doc["config"] = {"hooks": {"poststop": []}}
    (tmp_path / "c" / "state.json").write_text(json.dumps(doc))
    assert sd.load().config == {"hooks": {"poststop": []}}


def test_missing_config_is_a_corrupt_state(tmp_path):
    sd = _saved(tmp_path, config={})
    os.unlink(tmp_path / "c" / "config.json")
    with pytest.raises(PyruncError, match="corrupt state for container c"):
        sd.load().config
