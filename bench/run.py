#!/usr/bin/env python3
"""Benchmark pyrunc against runc (and crun, if installed) in the same run.

    sudo python3 bench/run.py [--runs N] [--pyrunc PATH]

Stdlib only; run as root. Each round runs every runtime in turn (A B A B …),
each with its own --root under one temp dir, on one shared busybox bundle whose
process is /bin/true. See bench/README.md for what each row means.
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

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAKE_ROOTFS = os.path.join(REPO, "examples", "bundles", "make-rootfs.sh")
PYRUNC_CANDIDATES = ("/usr/local/bin/pyrunc", "/opt/pyrunc/bin/pyrunc", "/opt/pyrunc-venv/bin/pyrunc")

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


def make_bundle(tmp: str, runc: str | None, pyrunc: str) -> str:
    bundle = os.path.join(tmp, "bundle")
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
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
    return bundle


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
    has_runc = "runc" in names
    head = ["median ms", *names] + (["pyrunc/runc"] if has_runc else []) + ["pyrunc-floor"]
    rows = []
    for key, label, single in ROWS:
        row = [label] + [f"{med[(key, n)]:.1f}" for n in names]
        if has_runc:
            row.append(f"{med[(key, 'pyrunc')] / med[(key, 'runc')]:.2f}x")
        row.append(f"{med[(key, 'pyrunc')] - fl:+.1f}" if single else "")
        rows.append(row)
    rows.append([f"floor: {os.path.basename(interp[0])} -c pass", f"{fl:.1f}"]
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
        bundle = make_bundle(tmp, args.runc, pyrunc)
        runtimes.append(Runtime("pyrunc", pyrunc, os.path.join(tmp, "root-pyrunc"),
                                os.path.join(tmp, "pyrunc.err")))
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
        res: dict = {}
        floor: list[float] = []
        tag0 = f"bench{os.getpid()}"
        for i in range(args.warmup + args.runs):
            scratch = {} if i < args.warmup else res
            for rt in runtimes:
                if rt.name == "pyrunc":
                    ms = time_floor(interp)
                    if i >= args.warmup:
                        floor.append(ms)
                one_round(rt, bundle, f"{tag0}-{rt.name}-{i}", scratch)
            print(".", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        print_table(runtimes, res, floor, interp)
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
