#!/usr/bin/env python3
"""Benchmark pyrunc against runc (and crun, if installed) in the same run.

    sudo python3 bench/run.py [--runs N] [--pyrunc PATH] [--before PATH]

Stdlib only; run as root. Each round runs every runtime in turn (A B A B …),
each with its own --root under one temp dir, on two shared busybox bundles whose
process is /bin/true: `runc spec`'s bare config, and the same config shaped as
an engine sends it (podman's default seccomp profile, capabilities, masked and
read-only paths). One table per config. See bench/README.md for each row.
"""
import argparse
import ctypes
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAKE_ROOTFS = os.path.join(REPO, "examples", "bundles", "make-rootfs.sh")
PYRUNC_CANDIDATES = ("/usr/local/bin/pyrunc", "/opt/pyrunc/bin/pyrunc", "/opt/pyrunc-venv/bin/pyrunc")
# podman's defaults (package golang-github-containers-common on Debian)
PODMAN_SECCOMP = "/usr/share/containers/seccomp.json"
PODMAN_CONF = "/usr/share/containers/containers.conf"
# podman 4's masked and read-only paths (pkg/specgen), as `podman run` sends them
PODMAN_MASKED = ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                 "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                 "/sys/firmware", "/sys/fs/selinux", "/sys/dev/block"]
PODMAN_READONLY = ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                   "/proc/sysrq-trigger"]
CONFIGS = (("bare", "runc spec's config"),
           ("engine", "engine-shaped config: podman's seccomp profile, capabilities, masked paths"))

CLONE_NEWNS = 0x00020000
MS_REC, MS_PRIVATE = 0x4000, 1 << 18
MNT_DETACH = 2
PR_SET_CHILD_SUBREAPER = 36

# (key, label, single command?) in print order
ROWS = [
    ("run", "run /bin/true (end to end)", True),
    ("create", "create", True),
    ("start", "start", True),
    ("delete", "delete (stopped)", True),
    ("cycle", "create+start+delete (sum)", False),
    ("state", "state (created)", True),
    ("kill", "kill KILL (created)", True),
    ("delete_k", "delete (after kill)", True),
]

libc = ctypes.CDLL(None, use_errno=True)


class BenchError(Exception):
    pass


class Runtime:
    def __init__(self, name: str, binary: str, root: str, errlog: str, preexec=None):
        self.name, self.binary, self.root, self.preexec = name, binary, root, preexec
        self.errlog = open(errlog, "w+")
        self.ids: set[str] = set()   # containers that may exist: deleted at the end
        os.makedirs(root, mode=0o700)

    def argv(self, *args: str) -> list[str]:
        return [self.binary, "--root", self.root, *args]

    def timed(self, *args: str, out: bool = False) -> tuple[float, str]:
        """Run one command; return (wall ms, stdout). Any failure aborts the bench."""
        self.errlog.seek(0)
        self.errlog.truncate()
        t0 = time.perf_counter()
        proc = subprocess.run(self.argv(*args), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE if out else subprocess.DEVNULL,
                              stderr=self.errlog, preexec_fn=self.preexec)
        ms = (time.perf_counter() - t0) * 1000
        if proc.returncode != 0:
            self.errlog.seek(0)
            raise BenchError(f"{self.name} {' '.join(args)}: exit {proc.returncode}: "
                             f"{self.errlog.read().strip()}")
        return ms, (proc.stdout.decode() if out else "")

    def cleanup(self) -> list[str]:
        ids = set(self.ids)
        try:
            ids.update(e for e in os.listdir(self.root) if os.path.isdir(os.path.join(self.root, e)))
        except OSError:
            pass
        for cid in sorted(ids):
            try:
                subprocess.run(self.argv("delete", "--force", cid), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               preexec_fn=self.preexec, timeout=30)
            except subprocess.TimeoutExpired:
                pass
        self.ids.clear()
        try:
            return [f"{self.name}: state left for {e}" for e in os.listdir(self.root)]
        except OSError:
            return []


def find_pyrunc(path: str | None) -> str:
    if path:
        return os.path.abspath(path)
    for p in PYRUNC_CANDIDATES:
        if os.access(p, os.X_OK):
            return p
    found = shutil.which("pyrunc")
    if not found:
        sys.exit("pyrunc not found: run scripts/setup.sh or pass --pyrunc PATH")
    return found


def interpreter_of(script: str) -> list[str]:
    """The interpreter (and its flags) a console script runs with, from its shebang
    (or the `'''exec' "python" "$0"` trampoline pip writes for long paths)."""
    with open(os.path.realpath(script), "rb") as f:
        lines = f.read(4096).decode(errors="replace").splitlines()
    if not lines or not lines[0].startswith("#!"):
        sys.exit(f"{script}: no shebang")
    argv = lines[0][2:].split()
    if argv[0] in ("/bin/sh", "/bin/bash") and len(lines) > 1 and lines[1].startswith("'''exec'"):
        argv = [lines[1].split('"')[1]]
    if os.path.basename(argv[0]) == "env":
        argv = [shutil.which(argv[1]) or argv[1], *argv[2:]]
    return argv


def crun_preexec():
    """crun on a hybrid cgroup host: run it in a private mount namespace without the
    cgroup2 mount at /sys/fs/cgroup/unified (the in-process `unshare -m` +
    `umount /sys/fs/cgroup/unified`, without two extra execs per command)."""
    if libc.unshare(CLONE_NEWNS) != 0:
        os._exit(125)
    libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None)
    libc.umount2(b"/sys/fs/cgroup/unified", MNT_DETACH)


def reap_orphans() -> None:
    """We are a child subreaper: orphaned container inits come back to us."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)   # ours once its runtime command exited
            if done:
                return
        except ChildProcessError:
            if not os.path.exists(f"/proc/{pid}"):
                return
        time.sleep(0.0005)
    raise BenchError(f"container init {pid} still there after {timeout}s")


def make_bundle(tmp: str, runc: str | None, pyrunc: str, engine: bool = False) -> str:
    """A busybox bundle running /bin/true: `runc spec`'s config, or (engine) that
    config as podman would send it (see engine_shaped)."""
    bundle = os.path.join(tmp, "bundle-engine" if engine else "bundle")
    os.makedirs(bundle)
    subprocess.run(["sh", MAKE_ROOTFS, os.path.join(bundle, "rootfs")], check=True,
                   stdout=subprocess.DEVNULL)
    # the reference default config (runc spec; pyrunc spec without runc)
    subprocess.run([runc or pyrunc, "spec", "--bundle", bundle], check=True)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/true"]
    if engine:
        engine_shaped(config)
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
    return bundle


def engine_shaped(config: dict) -> None:
    """podman's defaults on a runc spec config: containers.conf's default
    capabilities (all sets but ambient), its seccomp profile converted as
    containers/common does for these capabilities and this architecture, its
    masked and read-only paths, and no noNewPrivileges (podman sets none)."""
    try:
        with open(PODMAN_CONF, "rb") as f:
            names = tomllib.load(f)["containers"]["default_capabilities"]
        with open(PODMAN_SECCOMP) as f:
            profile = json.load(f)
    except (OSError, KeyError) as e:
        sys.exit(f"engine-shaped config: {e} (apt-get install golang-github-containers-common)")
    caps = ["CAP_" + n.upper().removeprefix("CAP_") for n in names]
    config["process"]["capabilities"] = {k: list(caps) for k in
                                         ("bounding", "effective", "permitted")}
    config["process"].pop("noNewPrivileges", None)
    config["linux"]["seccomp"] = seccomp_for(profile, caps)
    config["linux"]["maskedPaths"] = list(PODMAN_MASKED)
    config["linux"]["readonlyPaths"] = list(PODMAN_READONLY)


def seccomp_for(profile: dict, caps: list[str]) -> dict:
    """A containers seccomp.json profile as an OCI linux.seccomp for these
    capabilities on this machine (the rules of containers/common's setupSeccomp:
    archMap for the native arch, includes/excludes by arch and capability)."""
    arch = {"x86_64": ("amd64", "SCMP_ARCH_X86_64"),
            "aarch64": ("arm64", "SCMP_ARCH_AARCH64")}[os.uname().machine]
    out = {"defaultAction": profile["defaultAction"], "architectures": [], "syscalls": []}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    for a in profile.get("archMap") or []:
        if a["architecture"] == arch[1]:
            out["architectures"] = [a["architecture"], *a.get("subArchitectures", [])]
    for call in profile["syscalls"]:
        inc, exc = call.get("includes") or {}, call.get("excludes") or {}
        if (arch[0] in (exc.get("arches") or []) or set(exc.get("caps") or []) & set(caps)
                or (inc.get("arches") and arch[0] not in inc["arches"])
                or not set(inc.get("caps") or []) <= set(caps)):
            continue
        rule = {"names": call["names"], "action": call["action"]}
        if call.get("args"):
            rule["args"] = [{k: a[k] for k in ("index", "value", "valueTwo", "op")}
                            for a in call["args"]]
        if call.get("errnoRet") is not None:
            rule["errnoRet"] = call["errnoRet"]
        out["syscalls"].append(rule)
    return out


def one_round(rt: Runtime, bundle: str, tag: str, res: dict) -> None:
    def rec(key: str, ms: float) -> None:
        res.setdefault((key, rt.name), []).append(ms)

    cid = f"{tag}-r"
    rt.ids.add(cid)
    rec("run", rt.timed("run", "--bundle", bundle, cid)[0])
    rt.ids.discard(cid)                       # run deletes what it made

    cid = f"{tag}-c"
    rt.ids.add(cid)
    t_create, _ = rt.timed("create", "--bundle", bundle, cid)
    t_state, out = rt.timed("state", cid, out=True)
    state = json.loads(out)
    if state.get("status") != "created":
        raise BenchError(f"{rt.name} state after create: {state.get('status')!r}")
    t_start, _ = rt.timed("start", cid)
    wait_gone(state["pid"])                   # /bin/true exits at once
    t_delete, _ = rt.timed("delete", cid)
    rt.ids.discard(cid)
    for key, ms in (("create", t_create), ("state", t_state), ("start", t_start),
                    ("delete", t_delete), ("cycle", t_create + t_start + t_delete)):
        rec(key, ms)

    cid = f"{tag}-k"
    rt.ids.add(cid)
    pid_file = os.path.join(os.path.dirname(rt.root), f"{rt.name}.pid")
    rt.timed("create", "--bundle", bundle, "--pid-file", pid_file, cid)
    with open(pid_file) as f:
        pid = int(f.read().strip())
    rec("kill", rt.timed("kill", cid, "KILL")[0])
    wait_gone(pid)
    rec("delete_k", rt.timed("delete", cid)[0])
    rt.ids.discard(cid)
    reap_orphans()


def time_floor(interp: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([*interp, "-c", "pass"], stdin=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - t0) * 1000


def first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
        return out.splitlines()[0] if out else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def cgroup_mode() -> str:
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return "v2 (unified)"
    if os.path.ismount("/sys/fs/cgroup/unified"):
        return "v1 + v2 at /sys/fs/cgroup/unified (hybrid)"
    return "v1"


def print_table(runtimes: list[Runtime], res: dict, floor: list[float], interp: list[str]) -> None:
    names = [rt.name for rt in runtimes]
    med = {k: statistics.median(v) for k, v in res.items()}
    fl = statistics.median(floor)
    ratios = [n for n in names if n.startswith("pyrunc")] if "runc" in names else []
    head = ["median ms", *names] + [f"{n}/runc" for n in ratios] + ["pyrunc-floor"]
    rows = []
    for key, label, single in ROWS:
        row = [label] + [f"{med[(key, n)]:.1f}" for n in names]
        row += [f"{med[(key, n)] / med[(key, 'runc')]:.2f}x" for n in ratios]
        row.append(f"{med[(key, 'pyrunc')] - fl:+.1f}" if single else "")
        rows.append(row)
    rows.append([f"floor: {' '.join([os.path.basename(interp[0]), *interp[1:]])} -c pass", f"{fl:.1f}"]
                + [""] * (len(head) - 2))
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                              for i, (c, w) in enumerate(zip(r, widths)))
    print(fmt(head))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(fmt(r))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="timed rounds (default 20)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    ap.add_argument("--pyrunc", help="pyrunc script (default: /usr/local/bin/pyrunc, "
                    "/opt/pyrunc/bin/pyrunc, /opt/pyrunc-venv/bin/pyrunc, PATH)")
    ap.add_argument("--before", help="a second pyrunc (e.g. an older install) timed in the "
                    "same rounds, as column pyrunc-before")
    ap.add_argument("--runc", default=shutil.which("runc"), help="runc binary (default: PATH)")
    ap.add_argument("--crun", default=shutil.which("crun"), help="crun binary (default: PATH, if any)")
    ap.add_argument("--no-crun", action="store_true", help="leave crun out even if installed")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/run.py: run as root")

    pyrunc = find_pyrunc(args.pyrunc)
    interp = interpreter_of(pyrunc)
    tmp = tempfile.mkdtemp(prefix="pyrunc-bench-")
    runtimes: list[Runtime] = []
    interrupted = False

    def on_signal(signum, _frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        bundles = {"bare": make_bundle(tmp, args.runc, pyrunc),
                   "engine": make_bundle(tmp, args.runc, pyrunc, engine=True)}
        runtimes.append(Runtime("pyrunc", pyrunc, os.path.join(tmp, "root-pyrunc"),
                                os.path.join(tmp, "pyrunc.err")))
        if args.before:
            runtimes.append(Runtime("pyrunc-before", os.path.abspath(args.before),
                                    os.path.join(tmp, "root-before"),
                                    os.path.join(tmp, "before.err")))
        if args.runc:
            runtimes.append(Runtime("runc", args.runc, os.path.join(tmp, "root-runc"),
                                    os.path.join(tmp, "runc.err")))
        if args.crun and not args.no_crun:
            pre = crun_preexec if os.path.ismount("/sys/fs/cgroup/unified") else None
            runtimes.append(Runtime("crun", args.crun, os.path.join(tmp, "root-crun"),
                                    os.path.join(tmp, "crun.err"), preexec=pre))
        print(f"pyrunc: {pyrunc} ({first_line([pyrunc, '--version'])}), interpreter {' '.join(interp)}")
        for rt in runtimes[1:]:
            print(f"{rt.name}: {rt.binary} ({first_line([rt.binary, '--version'])})")
        print(f"kernel {os.uname().release}, cgroup {cgroup_mode()}; {args.runs} rounds "
              f"(+{args.warmup} warm-up), order {' '.join(rt.name for rt in runtimes)} each round")
        res: dict = {name: {} for name, _ in CONFIGS}
        floor: list[float] = []
        tag0 = f"bench{os.getpid()}"
        for i in range(args.warmup + args.runs):
            for name, _ in CONFIGS:
                scratch = {} if i < args.warmup else res[name]
                for rt in runtimes:
                    if rt.name == "pyrunc" and name == "bare":
                        ms = time_floor(interp)
                        if i >= args.warmup:
                            floor.append(ms)
                    one_round(rt, bundles[name], f"{tag0}-{rt.name}-{name}-{i}", scratch)
            print(".", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        for name, title in CONFIGS:
            print(f"\n{title}")
            print_table(runtimes, res[name], floor, interp)
        return 0
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: cleaning up", file=sys.stderr)
        return 130
    except BenchError as e:
        print(f"\nbench failed: {e}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        problems = []
        for rt in runtimes:
            problems += rt.cleanup()
        reap_orphans()
        with open("/proc/self/mountinfo") as f:
            problems += [f"mount left: {line.split()[4]}" for line in f if tmp in line]
        if problems:
            print("left behind (kept " + tmp + "):\n  " + "\n  ".join(problems), file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
