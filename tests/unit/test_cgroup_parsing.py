"""The string checks of the cgroup layer, written without `re` (a fresh process
per command makes its import cost show): what they accept and refuse, pinned
to the regular expressions they replaced, except that a trailing newline and
non-ASCII digits are now refused. Also the namedtuple-free devices.Rule and
the cgroup modules' import graph."""
import copy
import pickle
import subprocess
import sys

import pytest

from pyrunc.cgroups import resolve_path
from pyrunc.cgroups import resources as res
from pyrunc.cgroups.devices import WILDCARD, Rule, parse_rules
from pyrunc.cgroups.paths import _is_systemd_form, parse_mountinfo
from pyrunc.lean.mountinfo import unescape as _unescape
from pyrunc.errors import ConfigError, NotSupportedError

W = "linux.resources"


# --- cpuset lists (linux.resources.cpu.cpus / mems) ---------------------------------------

@pytest.mark.parametrize("s", ["0", "7", "0-3", "0-3,5", "0,1,2", "1-2,4-7,9", "007",
                               "00-03", "3-1", "12345678901234567890"])
def test_cpu_list_accepts(s):
    assert res.is_cpu_list(s)


@pytest.mark.parametrize("s", ["", " ", "0 ", " 0", ",", "0,", ",0", "0,,1", "-", "0-",
                               "-3", "0--3", "1-2-3", "0-3,", "a", "0x1", "+1", "1.5",
                               # the old regex took the next five (trailing newline, \d):
                               "0-3\n", "0\n", "\u0663", "0-\u0663",  # ARABIC-INDIC THREE
                               "\uff11",            # FULLWIDTH DIGIT ONE (also a \d)
                               "\u00b2"])           # SUPERSCRIPT TWO: isdigit(), not \d
def test_cpu_list_refuses(s):
    assert not res.is_cpu_list(s)


def test_cpus_in_a_config():
    assert res.parse({"cpu": {"cpus": " 0-3,5 ", "mems": "0"}})["cpu"] == {"cpus": "0-3,5",
                                                                          "mems": "0"}
    assert res.parse({"cpu": {"cpus": ""}}) == {}
    # the syntax allows "3-1"; parse refuses it as a backwards range
    with pytest.raises(ConfigError, match="backwards") as e:
        res.parse({"cpu": {"cpus": "3-1"}})
    assert e.value.where == f"{W}.cpu.cpus"
    # the old \d also took non-ASCII digits, which the kernel refuses
    with pytest.raises(ConfigError) as e:
        res.parse({"cpu": {"mems": "\u0660-\u0661"}})
    assert e.value.where == f"{W}.cpu.mems"


# --- huge page sizes ---------------------------------------------------------------------

@pytest.mark.parametrize("s", ["2MB", "1GB", "64KB", "16GB", "1024KB", "10MB"])
def test_page_size_accepts(s):
    assert res.is_page_size(s)


@pytest.mark.parametrize("s", ["", "B", "MB", "0MB", "02MB", "2M", "2mb", "2Mb", "2TB",
                               "2 MB", " 2MB", "2MB ", "-2MB", "+2MB", "2MBB",
                               "2MB\n",             # the old regex took it
                               "\u0662MB", "\uff12MB"])
def test_page_size_refuses(s):
    assert not res.is_page_size(s)


def test_page_size_with_a_trailing_newline_is_a_config_error():
    # it used to pass and then break page_size_bytes() (KeyError) and the file name
    with pytest.raises(ConfigError) as e:
        res.parse({"hugepageLimits": [{"pageSize": "2MB\n", "limit": 1}]})
    assert e.value.where == f"{W}.hugepageLimits[0].pageSize"


# --- cgroup v2 file names (linux.resources.unified) ---------------------------------------

@pytest.mark.parametrize("s", ["memory.high", "cpu.max", "io.bfq.weight", "hugetlb.2MB.max",
                               "memory.swap.max", "a.b", "_.X", "cpu_x.Y_9", "a..", "a.b."])
def test_unified_key_accepts(s):
    assert res.is_unified_key(s)


@pytest.mark.parametrize("s", ["", ".", "memory", "memory.", ".high", "Memory.high",
                               "mem0.high", "memory-x.high", "memory.hi-gh", "memory.hi gh",
                               "memory.high\n",     # the old regex took it
                               "memory.high ", " memory.high",
                               "mem\u00f6ry.high", "memory.h\u00efgh", "memory.\u0661"])
def test_unified_key_refuses(s):
    assert not res.is_unified_key(s)


def test_unified_key_with_a_trailing_newline_is_a_config_error():
    with pytest.raises(ConfigError, match="CONTROLLER.PARAMETER") as e:
        res.parse({"unified": {"memory.high\n": "max"}})
    assert e.value.where == f"{W}.unified"


# --- network interface names (linux.resources.network.priorities) -------------------------

@pytest.mark.parametrize("s", ["eth0", "lo", "x", "a" * 15, "veth-1.2@x", "wl\u00e4n", "eth:0"])
def test_ifname_accepts(s):
    assert res.is_ifname(s)


@pytest.mark.parametrize("s", ["", "a" * 16, "a/b", "/", "eth 0", "\neth0", "eth0\t",
                               "eth0\n",            # the old regex took it
                               "eth\u00a00", "eth\u20030", "eth\x1c0"])
def test_ifname_refuses(s):
    assert not res.is_ifname(s)


def test_ifname_with_a_trailing_newline_is_a_config_error():
    with pytest.raises(ConfigError) as e:
        res.parse({"network": {"priorities": [{"name": "eth0\n", "priority": 1}]}}, W, "v1")
    assert e.value.where == f"{W}.network.priorities[0].name"


# --- /sys/kernel/mm/hugepages entries ----------------------------------------------------

@pytest.mark.parametrize("name, kb", [
    ("hugepages-2048kB", 2048),
    ("hugepages-1048576kB", 1 << 20),
    ("hugepages-64kB", 64),
    ("hugepages-02048kB", 2048),
    ("hugepages-kB", None),
    ("hugepages-2048KB", None),
    ("hugepages-2048kb", None),
    ("hugepages-2048", None),
    ("hugepages--1kB", None),
    ("hugepages-2 048kB", None),
    ("xhugepages-2048kB", None),
    ("hugepages-2048kBx", None),
    ("hugepages-2048kB\n", None),
    ("hugepages-\u0663kB", None),
    ("", None),
])
def test_hugepage_dir_kb(name, kb):
    assert res.hugepage_dir_kb(name) == kb


def test_host_page_sizes_skips_odd_names(tmp_path):
    for name in ("hugepages-2048kB", "hugepages-\u0663kB", "hugepages-kB", "hugepages-2048kB\n"):
        (tmp_path / name).mkdir()
    assert res.host_page_sizes(str(tmp_path)) == ["2MB"]


# --- systemd-style cgroupsPath -----------------------------------------------------------

@pytest.mark.parametrize("s, systemd", [
    ("system.slice:docker:abc", True),
    (":docker:abc", True),
    ("::abc", True),
    ("a:b:c\n", True),         # [^/:] took a newline too: no change here
    ("a:b:", False),
    ("a:b", False),
    ("abc", False),
    ("a:b:c:d", False),
    ("/a:b:c", False),
    ("a:b:c/d", False),
    ("", False),
])
def test_systemd_form(s, systemd):
    assert _is_systemd_form(s) is systemd


def test_systemd_form_is_not_supported_but_similar_paths_are_fine():
    with pytest.raises(NotSupportedError):
        resolve_path("system.slice:pyrunc:abc", "abc")
    assert resolve_path("/a:b:c/d", "x") == "/a:b:c/d"
    assert resolve_path("a:b", "x") == "a:b"


# --- mountinfo octal escapes -------------------------------------------------------------

@pytest.mark.parametrize("field, plain", [
    ("", ""),
    ("/sys/fs/cgroup", "/sys/fs/cgroup"),
    ("/my\\040odd", "/my odd"),
    ("/tab\\011and\\012nl", "/tab\tand\nnl"),
    ("/back\\134slash", "/back\\slash"),
    ("\\040\\040", "  "),
    ("/end\\040", "/end "),
    ("\\134040", "\\040"),     # one pass: an unescaped backslash does not start a new escape
    ("/short\\04", "/short\\04"),
    ("/not\\089octal", "/not\\089octal"),
    ("/trailing\\", "/trailing\\"),
    ("\\\\040", "\\ "),
    ("\\0401", " 1"),
    ("\\\u0660\u0664\u0660", "\\\u0660\u0664\u0660"),
])
def test_unescape(field, plain):
    assert _unescape(field) == plain


def test_mountinfo_with_escaped_mountpoint_and_root():
    text = ("42 31 0:39 /a\\040b /sys/fs/cgroup/my\\040odd rw - cgroup cgroup rw,name=odd\n"
            "43 31 0:40 / /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices\n")
    assert parse_mountinfo(text) == {"name=odd": ("/sys/fs/cgroup/my odd", "/a b"),
                                     "devices": ("/sys/fs/cgroup/devices", "/")}


# --- devices.Rule ------------------------------------------------------------------------

def test_rule_behaves_like_the_named_tuple_it_was():
    r = Rule(True, "c", 1, 3, "rwm")
    assert (r.allow, r.type, r.major, r.minor, r.access) == (True, "c", 1, 3, "rwm")
    assert r == Rule(allow=True, type="c", major=1, minor=3, access="rwm")
    assert r == (True, "c", 1, 3, "rwm") and r != Rule(False, "c", 1, 3, "rwm")
    assert hash(r) == hash((True, "c", 1, 3, "rwm")) and len({r, Rule(*r)}) == 1
    allow, kind, major, minor, access = r
    assert (allow, kind, major, minor, access) == tuple(r) and r[1] == "c" and len(r) == 5
    assert repr(r) == "Rule(allow=True, type='c', major=1, minor=3, access='rwm')"
    assert r.cgroup_string() == "c 1:3 rwm"
    assert Rule(False, "a", WILDCARD, WILDCARD, "rwm").cgroup_string() == "a *:* rwm"
    for twin in (copy.copy(r), copy.deepcopy(r), pickle.loads(pickle.dumps(r))):
        assert twin == r and type(twin) is Rule
    with pytest.raises(AttributeError):
        r.allow = False
    with pytest.raises(AttributeError):
        r.extra = 1
    with pytest.raises(TypeError):
        Rule(True, "c", 1, 3)


def test_parse_rules_gives_rules():
    rules = parse_rules([{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "mwr"}])
    assert rules == [Rule(True, "c", 1, 3, "rwm")] and type(rules[0]) is Rule


# --- import graph ------------------------------------------------------------------------

def test_cgroup_modules_do_not_import_heavy_stdlib_modules():
    # relative to what the interpreter had already (an editable install's
    # import hook loads re by itself)
    heavy = ("re", "enum", "signal", "collections", "functools", "copy", "json", "select")
    out = subprocess.run(
        [sys.executable, "-I", "-c",
         "import sys; base = set(sys.modules); "
         "import pyrunc.cgroups, pyrunc.cgroups.freezer, pyrunc.cgroups.none, "
         "pyrunc.cgroups.manager, pyrunc.cgroups.paths, pyrunc.cgroups.devices, "
         "pyrunc.cgroups.resources, pyrunc.cgroups.bpf, pyrunc.cgroups.stats; "
         f"print(' '.join(m for m in {heavy!r} if m in set(sys.modules) - base))"],
        capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
