"""What callers (containerd shim, conmon, podman, dockerd) parse back: see
/work/shared/docs/runtime-cli-contract.md."""
import json
import os
import re
import secrets
import subprocess
from datetime import datetime

import pytest

pytestmark = pytest.mark.integration

STATE_KEYS = ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created",
              "annotations", "owner"]


def _parse_rfc3339(text: str) -> datetime:
    # Python < 3.11 fromisoformat takes neither "Z" nor nanoseconds
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
    assert m, text
    frac = (m.group(2) or ".0")[:7]
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(m.group(1) + frac + tz)


# --- pid file --------------------------------------------------------------------------

def test_pid_file_relative(pyrunc, bundle, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    cid, _ = pyrunc.create(bundle, "--pid-file", "init.pid", cwd=work)
    text = (work / "init.pid").read_text()
    assert re.fullmatch(r"[0-9]+", text), repr(text)
    assert int(text) == pyrunc.state(cid)["pid"]
    assert sorted(os.listdir(work)) == ["init.pid"], "temporary pid files left"


def test_pid_file_equals_forms(pyrunc, bundle, tmp_path):
    pid_file = tmp_path / "x.pid"
    cid, _ = pyrunc.create(bundle, f"--pid-file={pid_file}")
    assert int(pid_file.read_text()) == pyrunc.state(cid)["pid"]


def test_pid_file_absent_when_create_fails(pyrunc, bundle, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    bundle.args("nope")
    _, res = pyrunc.create(bundle, "--pid-file", str(work / "init.pid"), check=False)
    assert res.returncode != 0
    assert os.listdir(work) == []


# --- stream hygiene ----------------------------------------------------------------------

def test_success_prints_nothing(pyrunc, bundle):
    cid, res = pyrunc.create(bundle)
    assert (res.stdout, res.stderr) == ("", "")
    for args in (("start", cid), ("kill", cid, "KILL")):
        res = pyrunc(*args)
        assert (res.returncode, res.stdout, res.stderr) == (0, "", ""), args
    pyrunc.wait_status(cid, "stopped")
    res = pyrunc("delete", cid)
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


@pytest.mark.parametrize("command", [["state"], ["start"], ["kill"], ["delete"], ["kill", "-a"]])
def test_unknown_container_one_line_on_stderr(pyrunc, command):
    cid = pyrunc.new_id()
    res = pyrunc(*command, cid)
    assert res.returncode == 1
    pyrunc.one_line_error(res, "container does not exist")


def test_log_json(pyrunc, tmp_path):
    log = tmp_path / "log.json"
    cid = pyrunc.new_id()
    for _ in range(2):  # appended, never truncated
        res = pyrunc("--log", str(log), "--log-format", "json", "state", cid)
        assert res.returncode == 1
        assert res.stderr == "container does not exist\n"
        assert res.stdout == ""
    lines = log.read_text().splitlines()
    assert len(lines) == 2
    for line in lines:
        rec = json.loads(line)
        assert rec["level"] == "error"
        assert rec["msg"] == "container does not exist"
        assert pyrunc.RFC3339.match(rec["time"]), rec["time"]
        _parse_rfc3339(rec["time"])
    assert oct(os.stat(log).st_mode & 0o777) == oct(0o644)


def test_log_json_equals_form_and_success_is_silent(pyrunc, bundle, tmp_path):
    log = tmp_path / "log.json"
    flags = [f"--log={log}", "--log-format=json"]
    cid = pyrunc.new_id()
    res = pyrunc(*flags, "create", "--bundle", bundle.path, cid, bundle=bundle)
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    res = pyrunc(*flags, "delete", cid)
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    # every record that is there must be valid JSON with level/msg/time
    if log.exists():
        for line in log.read_text().splitlines():
            rec = json.loads(line)
            assert {"level", "msg", "time"} <= rec.keys()
            assert rec["level"] != "error"


def test_log_json_create_failure(pyrunc, bundle, tmp_path):
    log = tmp_path / "log.json"
    bundle.args("nope")
    cid = pyrunc.new_id()
    res = pyrunc("--log", str(log), "--log-format", "json", "create", "--bundle", bundle.path, cid,
                 bundle=bundle)
    assert res.returncode != 0
    line = pyrunc.one_line_error(res, 'exec: "nope": executable file not found in $PATH')
    records = [json.loads(x) for x in log.read_text().splitlines()]
    errors = [r for r in records if r["level"] == "error"]
    assert errors and errors[-1]["msg"] == line


# --- --debug and --log (runc's logrus records) ---------------------------------------------

TEXT_RECORD = re.compile(r'^time="(?P<time>[^"]+)" level=(?P<level>\w+) msg=(?P<msg>".*")$')


def _text_records(text: str) -> list[tuple[str, str]]:
    out = []
    for line in text.splitlines():
        m = TEXT_RECORD.match(line)
        assert m, f"not a logrus text record: {line!r}"
        assert RFC3339_SECONDS.match(m["time"]), line
        out.append((m["level"], json.loads(m["msg"])))
    return out


RFC3339_SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
# a step of each command, as pyrunc words it (runc shows its own steps)
DEBUG_STEPS = {
    "create": ["config ", "new namespaces ", "cgroup ", "mounting proc on /proc", "devices",
               "running createRuntime hook #0: /bin/true", "pivot_root into the rootfs",
               "masked", "init: ready; at start it execs /bin/sleep 1000", "created"],
    "start": ["releasing init"],
    "exec": ["joining the ", "exec: /bin/true", "runs ['true']"],
    "kill": ["signal 9 to init"],
    "delete": ["removing its cgroup", "state removed"],
}


def _lifecycle_with(pyrunc, bundle, *flags) -> dict:
    """create, start, exec, kill, delete with the global `flags`: {command: result}."""
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/true"}]}
    cid = pyrunc.new_id()
    out = {"create": pyrunc(*flags, "create", "--bundle", bundle.path, cid, bundle=bundle)}
    out["start"] = pyrunc(*flags, "start", cid)
    out["exec"] = pyrunc(*flags, "exec", cid, "true")
    out["kill"] = pyrunc(*flags, "kill", cid, "KILL")
    pyrunc.wait_status(cid, "stopped")
    out["delete"] = pyrunc(*flags, "delete", cid)
    for command, res in out.items():
        assert (res.returncode, res.stdout) == (0, ""), (command, res.stderr)
    return out


def _has_steps(command: str, messages: list[str]) -> None:
    for step in DEBUG_STEPS[command]:
        assert any(step in m for m in messages), (command, step, messages)


def test_debug_on_stderr(pyrunc, bundle):
    """--debug: one logrus text record per step of each command on stderr,
    the container's init's own steps included."""
    for command, res in _lifecycle_with(pyrunc, bundle, "--debug").items():
        records = _text_records(res.stderr)
        assert {level for level, _ in records} == {"debug"}, records
        _has_steps(command, [msg for _, msg in records])


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_debug_into_log_file(pyrunc, bundle, tmp_path, fmt):
    log = tmp_path / "debug.log"
    results = _lifecycle_with(pyrunc, bundle, "--debug", "--log", log, "--log-format", fmt)
    assert all(res.stderr == "" for res in results.values()), results
    lines = log.read_text()
    if fmt == "json":
        records = [json.loads(line) for line in lines.splitlines()]
        for rec in records:
            assert set(rec) == {"level", "msg", "time"} and rec["level"] == "debug", rec
            assert RFC3339_SECONDS.match(rec["time"]), rec
        messages = [rec["msg"] for rec in records]
    else:
        messages = [msg for _, msg in _text_records(lines)]
    for command in DEBUG_STEPS:
        _has_steps(command, messages)


@pytest.mark.parametrize("flags", [(), ("--debug",), ("--log-format", "json")])
def test_log_file_is_created_whenever_given(pyrunc, tmp_path, flags):
    """runc opens --log FILE as it starts, whether or not it logs anything."""
    log = tmp_path / "made.log"
    os.makedirs(pyrunc.root)
    res = pyrunc("--log", log, *flags, "list", "-q")
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    assert log.exists() and oct(os.stat(log).st_mode & 0o777) == oct(0o644)


def test_no_debug_no_records(pyrunc, bundle):
    for command, res in _lifecycle_with(pyrunc, bundle).items():
        assert res.stderr == "", (command, res.stderr)


# --- help in runc's layout -------------------------------------------------------------------

def _sections(text: str) -> list[str]:
    return [line[:-1] for line in text.splitlines() if line.isupper() and line.endswith(":")]


def test_help_layout(pyrunc):
    """runc's (urfave/cli's): NAME, USAGE, VERSION, COMMANDS, GLOBAL OPTIONS;
    -h, --help and `help` print the same; each entry indented by three, its
    text in one column."""
    res = pyrunc.ok("--help", root=None)
    assert res.stderr == ""
    text = res.stdout
    assert _sections(text) == ["NAME", "USAGE", "VERSION", "COMMANDS", "GLOBAL OPTIONS"], text
    assert text.startswith("NAME:\n   pyrunc - Open Container Initiative runtime\n")
    assert "USAGE:\n   pyrunc [global options] command [command options] [arguments...]\n" in text
    for other in (("-h",), ("help",), ("h",)):
        assert pyrunc.ok(*other, root=None).stdout == text, other
    commands = text.split("COMMANDS:\n")[1].split("\n\n")[0].splitlines()
    names = [line.split()[0].rstrip(",") for line in commands]
    for name in ("create", "delete", "exec", "kill", "list", "run", "spec", "start", "state",
                 "update", "pause", "resume", "ps", "events", "features", "help"):
        assert name in names, (name, commands)
    assert commands[-1].strip().split("  ")[0] == "help, h"
    column = {len(line) - len(line[3:].split("  ", 1)[1].lstrip()) for line in commands}
    assert len(column) == 1, commands  # one aligned column
    options = text.split("GLOBAL OPTIONS:\n")[1].splitlines()
    flags = [line.strip().split("  ")[0] for line in options if line.strip()]
    assert flags == ["--debug", "--log value", "--log-format value", "--root value",
                     "--systemd-cgroup", "--rootless value", "--help, -h", "--version, -v"], flags
    assert "--criu" not in text  # hidden, as runc hides it


@pytest.mark.parametrize("command", ["create", "run", "exec", "kill", "delete", "state", "start",
                                     "list", "ps", "update", "pause", "events", "spec", "features"])
def test_command_help_layout(pyrunc, command):
    text = pyrunc.ok(command, "--help").stdout
    sections = _sections(text)
    assert sections[:2] == ["NAME", "USAGE"], text
    assert "OPTIONS" not in sections or sections[-1] == "OPTIONS", text
    assert text.startswith(f"NAME:\n   pyrunc {command} - "), text
    assert f"USAGE:\n   pyrunc {command}" in text
    assert pyrunc.ok("help", command).stdout == text
    assert pyrunc.ok(command, "-h").stdout == text
    if command in ("create", "run", "exec", "kill", "delete", "state", "start"):
        assert "<container-id>" in text.split("USAGE:")[1].splitlines()[1], text


def test_help_of_create_lists_its_options_as_runc(pyrunc):
    text = pyrunc.ok("help", "create").stdout
    options = text.split("OPTIONS:\n")[1].splitlines()
    assert options[0].startswith("   --bundle value, -b value  "), options
    assert any(line.startswith("   --preserve-fds value ") and line.endswith("(default: 0)")
               for line in options), options
    assert any(line.startswith("   --no-pivot ") for line in options), options


def test_help_of_an_unknown_topic(pyrunc):
    """urfave/cli: "No help topic for 'foo'", exit status 3."""
    res = pyrunc("help", "foo")
    assert res.returncode == 3
    assert pyrunc.one_line_error(res) == "No help topic for 'foo'"


# --- flag syntax ------------------------------------------------------------------------

@pytest.mark.parametrize("form", ["-b", "--bundle", "--bundle=", "-bundle", "-bundle=", "cwd"])
def test_bundle_flag_forms(pyrunc, bundle, form):
    cid = pyrunc.new_id()
    if form == "cwd":
        flags, cwd = [], bundle.path
    elif form.endswith("="):
        flags, cwd = [form + bundle.path], None
    else:
        flags, cwd = [form, bundle.path], None
    res = pyrunc("create", *flags, cid, bundle=bundle, cwd=cwd)
    assert res.returncode == 0, res.stderr
    assert pyrunc.state(cid)["bundle"] == bundle.path


def test_single_dash_flags_after_a_valued_flag(pyrunc, bundle, tmp_path):
    """runc (and its urfave/cli parser) take `-bundle B -pid-file P ID`."""
    cid = pyrunc.new_id()
    pid_file = tmp_path / "p.pid"
    res = pyrunc("create", "-bundle", bundle.path, "-pid-file", str(pid_file), cid, bundle=bundle)
    assert res.returncode == 0, res.stderr
    assert int(pid_file.read_text()) == pyrunc.state(cid)["pid"]


@pytest.mark.parametrize("form", ["--root=", "-root", "-root="])
def test_root_flag_forms(pyrunc, bundle, tmp_path, form):
    other = str(tmp_path / "other-root")
    pyrunc.extra_roots.append(other)
    cid = pyrunc.new_id()
    flags = [form + other] if form.endswith("=") else [form, other]
    res = pyrunc(*flags, "create", "--bundle", bundle.path, cid, bundle=bundle, root=None)
    assert res.returncode == 0, res.stderr
    assert os.path.isdir(os.path.join(other, cid))
    assert pyrunc.state(cid, root=other)["status"] == "created"
    assert pyrunc("state", cid).returncode == 1  # not under the default test root


def test_unknown_flag_fails(pyrunc, bundle):
    cid = pyrunc.new_id()
    res = pyrunc("create", "--no-such-flag", "--bundle", bundle.path, cid, bundle=bundle)
    assert res.returncode != 0
    assert not os.path.exists(os.path.join(pyrunc.root, cid))


def test_kill_all_flag(pyrunc, bundle):
    cid, _ = pyrunc.create(bundle)
    pyrunc.ok("start", cid)
    res = pyrunc("kill", "--all", cid, "9")
    assert res.returncode == 0, res.stderr
    pyrunc.wait_status(cid, "stopped")


# --- ids --------------------------------------------------------------------------------

def test_duplicate_id(pyrunc, bundle):
    cid, _ = pyrunc.create(bundle)
    pid = pyrunc.state(cid)["pid"]
    other = pyrunc.bundle("other")
    _, res = pyrunc.create(other, cid=cid, check=False)
    pyrunc.one_line_error(res, "container with given ID already exists")
    st = pyrunc.state(cid)
    assert st["status"] == "created" and st["pid"] == pid and st["bundle"] == bundle.path


@pytest.mark.parametrize("pattern", ["../{r}", "a{r}/b", "..", ".", "{r} x", "{r}:x"])
def test_invalid_id(pyrunc, bundle, tmp_path, pattern):
    token = "inv" + secrets.token_hex(3)
    pyrunc.ids.append(token)  # the leftover check looks for cgroups named after it too
    cid = pattern.format(r=token)
    _, res = pyrunc.create(bundle, cid=cid, check=False)
    pyrunc.one_line_error(res, "invalid container ID format")
    assert not os.path.exists(pyrunc.root) or os.listdir(pyrunc.root) == []
    assert not any(token in name for name in os.listdir(tmp_path))


# --- state / list ----------------------------------------------------------------------

def test_state_fields(pyrunc, bundle):
    bundle.config["annotations"] = {"org.example.k": "v", "other": "x y"}
    cid, _ = pyrunc.create(bundle)
    st = pyrunc.state(cid)
    assert st["id"] == cid
    assert st["status"] == "created"
    assert isinstance(st["pid"], int) and st["pid"] > 0
    assert st["bundle"] == bundle.path
    assert st["rootfs"] == bundle.rootfs
    assert st["annotations"] == {"org.example.k": "v", "other": "x y"}
    assert st["owner"] == ""
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", st["ociVersion"])
    assert pyrunc.RFC3339_FRAC.match(st["created"]), st["created"]
    age = datetime.now().astimezone() - _parse_rfc3339(st["created"])
    assert abs(age.total_seconds()) < 30


def test_state_output_format_matches_runc(pyrunc, bundle):
    """runc: json.MarshalIndent(state, "", "  "), fields in spec order, no newline."""
    bundle.config["annotations"] = {"k": "v"}
    cid, _ = pyrunc.create(bundle)
    res = pyrunc.ok("state", cid)
    doc = json.loads(res.stdout)
    assert list(doc) == STATE_KEYS
    assert res.stdout == json.dumps(doc, indent=2)


def test_state_without_annotations_omits_them(pyrunc, bundle):
    bundle.config.pop("annotations", None)
    cid, _ = pyrunc.create(bundle)
    doc = pyrunc.state(cid)
    assert "annotations" not in doc
    assert list(doc) == [k for k in STATE_KEYS if k != "annotations"]


def test_state_of_stopped_container(pyrunc, bundle):
    cid, _ = pyrunc.create(bundle)
    pyrunc.ok("kill", cid, "KILL")
    st = pyrunc.wait_status(cid, "stopped")
    assert st["pid"] == 0


def test_list_empty(pyrunc):
    os.makedirs(pyrunc.root)
    res = pyrunc.ok("list", "--format", "json")
    assert res.stdout == "null\n"
    assert pyrunc.ok("list", "-q").stdout == ""
    table = pyrunc.ok("list").stdout
    assert table.split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]


def test_list(pyrunc, bundle):
    bundle.config["annotations"] = {"k": "v"}
    a, _ = pyrunc.create(bundle)
    other = pyrunc.bundle("other")
    other.config.pop("annotations", None)
    b, _ = pyrunc.create(other)
    pyrunc.ok("start", b)

    res = pyrunc.ok("list", "--format=json")
    assert res.stdout.endswith("\n") and res.stdout.count("\n") == 1
    assert ", " not in res.stdout and '": ' not in res.stdout, "not compact"
    items = {it["id"]: it for it in json.loads(res.stdout)}
    assert set(items) == {a, b}
    assert list(items[a]) == STATE_KEYS
    assert items[a]["annotations"] == {"k": "v"}
    assert items[a]["status"] == "created" and items[b]["status"] == "running"
    assert items[a]["owner"] == "root"
    assert items[a]["bundle"] == bundle.path and items[b]["bundle"] == other.path
    assert items[a]["pid"] == pyrunc.state(a)["pid"]
    assert pyrunc.RFC3339_FRAC.match(items[a]["created"])
    # runc: `annotations,omitempty`
    assert list(items[b]) == [k for k in STATE_KEYS if k != "annotations"]

    assert sorted(pyrunc.ok("list", "-q").stdout.split()) == sorted([a, b])
    assert sorted(pyrunc.ok("list", "--quiet").stdout.split()) == sorted([a, b])
    rows = [line.split() for line in pyrunc.ok("list").stdout.splitlines()]
    assert rows[0] == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    by_id = {r[0]: r for r in rows[1:]}
    assert by_id[a][2] == "created" and by_id[b][2] == "running"
    assert by_id[a][3] == bundle.path and by_id[a][5] == "root"


def test_list_skips_foreign_state_dirs(pyrunc, bundle):
    cid, _ = pyrunc.create(bundle)
    foreign = os.path.join(pyrunc.root, "foreign-" + secrets.token_hex(2))
    os.makedirs(foreign)
    try:
        res = pyrunc.ok("list", "--format", "json")
        assert [it["id"] for it in json.loads(res.stdout)] == [cid]
    finally:
        os.rmdir(foreign)


# --- spec / version / environment --------------------------------------------------------

def test_spec(pyrunc, tmp_path):
    work = tmp_path / "specdir"
    work.mkdir()
    res = pyrunc("spec", cwd=work, root=None)
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    text = (work / "config.json").read_text()
    assert text.splitlines()[1].startswith("\t"), "not tab-indented"
    spec = json.loads(text)
    assert spec["process"]["terminal"] is True
    assert spec["root"] == {"path": "rootfs", "readonly": True}

    res = pyrunc("spec", cwd=work, root=None)
    pyrunc.one_line_error(res, "File config.json exists. Remove it first")
    assert (work / "config.json").read_text() == text

    other = tmp_path / "other"
    other.mkdir()
    res = pyrunc("spec", "--bundle", str(other), root=None)
    assert res.returncode == 0, res.stderr
    assert json.loads((other / "config.json").read_text()) == spec


@pytest.mark.parametrize("flag", ["--version", "-v"])
def test_version(pyrunc, flag):
    res = pyrunc(flag, root=None)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert re.fullmatch(r"pyrunc version \S+", lines[0]), lines[0]
    assert any(re.fullmatch(r"commit: \S+.*", x) for x in lines), lines
    assert any(re.fullmatch(r"spec: \d+\.\d+\.\d+\S*", x) for x in lines), lines
    assert sum("version" in x for x in lines) == 1, "dockerd parses every line with 'version'"
    assert res.stderr == ""


def test_empty_environment(pyrunc, bundle):
    cid, _ = pyrunc.create(bundle)
    env = {}
    res = pyrunc("state", cid, env=env)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["id"] == cid
    res = pyrunc("list", "--format", "json", env={"XDG_RUNTIME_DIR": ""})
    assert res.returncode == 0, res.stderr
    assert [it["id"] for it in json.loads(res.stdout)] == [cid]
    # and through env(1), as podman's direct calls do
    res = subprocess.run(["env", "-i", pyrunc.binary, "--root", pyrunc.root, "state", cid],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    res = subprocess.run(["env", "-i", pyrunc.binary, "--root", pyrunc.root, "delete", "--force", cid],
                         capture_output=True, text=True, timeout=30)
    assert (res.returncode, res.stderr) == (0, "")


@pytest.mark.parametrize("what", ["missing", "file", "relative"])
def test_list_root_that_is_not_a_directory(pyrunc, tmp_path, what):
    """runc 1.2+: `list` of a root that does not exist fails (and makes nothing)."""
    root = {"missing": tmp_path / "no-root", "file": tmp_path / "a-file",
            "relative": "relative-root"}[what]
    (tmp_path / "a-file").write_text("")
    res = pyrunc("list", root=str(root), cwd=tmp_path)
    assert res.returncode == 1
    why = "not a directory" if what == "file" else "no such file or directory"
    assert pyrunc.one_line_error(res) == f"open {tmp_path / root}: {why}"
    assert not (tmp_path / "no-root").exists() and not (tmp_path / "relative-root").exists()
