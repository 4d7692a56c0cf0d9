#!/usr/bin/env python3
"""Scale benchmarks: pyrunc against runc, in the same run.

    sudo python3 bench/scale.py [--containers 200] [--workers 8] [--rounds 3] [--listed 500]
                                [--waiting 10] [--pyrunc PATH] [--before PATH]

1. throughput: N containers, each `run -d` of `sleep 30` then `delete --force`, spread over
   W worker threads (each command a fresh process, as under an engine); containers/s, the
   median of alternating rounds.
2. list: the time of `list --format json` with 1 container and with L (created, not started).
3. memory of created-but-not-started containers' inits (K of them at once): the mean PSS,
   which splits pages shared between processes (an interpreter's, a binary's) fairly, so
   it is what each waiting container costs; and the median RSS and anonymous RSS.
Everything runs under a private --root per runtime and is deleted at the end.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import find_pyrunc, make_bundle  # noqa: E402  (the shared bundle maker)


class Runtime:
    def __init__(self, name: str, binary: str, root: str):
        self.name, self.binary, self.root = name, binary, root

    def __call__(self, *args: str, check: bool = True, output: bool = False) -> str:
        """Run a command; its stdout if `output`. Containers inherit the runtime's
        stdio, so only commands that start none may write into a pipe."""
        with tempfile.TemporaryFile("w+") as err:
            res = subprocess.run([self.binary, "--root", self.root, *args],
                                 stdin=subprocess.DEVNULL, stderr=err, text=True,
                                 stdout=subprocess.PIPE if output else subprocess.DEVNULL)
            if check and res.returncode != 0:
                err.seek(0)
                raise RuntimeError(f"{self.name} {' '.join(args)}: {err.read().strip()}")
        return res.stdout or ""

    def clean(self) -> None:
        for cid in os.listdir(self.root) if os.path.isdir(self.root) else ():
            self("delete", "--force", cid, check=False)


def throughput(rt: Runtime, bundle: str, count: int, workers: int) -> float:
    def one(i: int) -> None:
        cid = f"s{i}"
        rt("run", "-d", "--bundle", bundle, cid)
        rt("delete", "--force", cid)

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(count)))
    return count / (time.perf_counter() - start)


def list_time(rt: Runtime, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        rt("list", "--format", "json", output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def list_scaling(rt: Runtime, bundle: str, many: int, workers: int) -> tuple[float, float]:
    rt("create", "--bundle", bundle, "l0")
    one = list_time(rt)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda i: rt("create", "--bundle", bundle, f"l{i}"), range(1, many)))
    return one, list_time(rt)


def _kb_fields(path: str) -> dict[str, int]:
    fields = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.partition(":")
            if value.split() and value.split()[0].isdigit():
                fields[key] = int(value.split()[0])
    return fields


def init_memory(rt: Runtime, bundle: str, count: int) -> tuple[int, int, int]:
    """(mean PSS, median RSS, median anonymous RSS) in kB of `count` waiting inits."""
    import json
    pss, rss, anon = [], [], []
    ids = [f"m{i}" for i in range(count)]
    try:
        for cid in ids:
            rt("create", "--bundle", bundle, cid)
        for cid in ids:
            pid = json.loads(rt("state", cid, output=True))["pid"]
            status = _kb_fields(f"/proc/{pid}/status")
            rss.append(status["VmRSS"])
            anon.append(status["RssAnon"])
            pss.append(_kb_fields(f"/proc/{pid}/smaps_rollup")["Pss"])
    finally:
        for cid in ids:
            rt("delete", "--force", cid, check=False)
    return round(statistics.mean(pss)), round(statistics.median(rss)), round(statistics.median(anon))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--containers", type=int, default=200)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--listed", type=int, default=500)
    ap.add_argument("--waiting", type=int, default=10, help="created containers for the memory row")
    ap.add_argument("--rounds", type=int, default=3, help="throughput rounds per runtime (median)")
    ap.add_argument("--pyrunc")
    ap.add_argument("--before", help="a second pyrunc (e.g. an older install), row pyrunc-before")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/scale.py must run as root", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="pyrunc-scale-")
    runc = shutil.which("runc")
    runtimes = [Runtime("pyrunc", find_pyrunc(args.pyrunc), os.path.join(tmp, "pyrunc"))]
    if args.before:
        runtimes.append(Runtime("pyrunc-before", os.path.abspath(args.before),
                                os.path.join(tmp, "before")))
    if runc:
        runtimes.append(Runtime("runc", runc, os.path.join(tmp, "runc")))
    try:
        bundle = make_bundle(tmp, runc, runtimes[0].binary)
        import json
        cfg_path = os.path.join(bundle, "config.json")
        with open(cfg_path) as f:
            cfg = json.load(f)
        cfg["process"]["args"] = ["sleep", "30"]
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        for rt in runtimes:
            os.makedirs(rt.root, mode=0o700)
        # throughput rounds alternate between the runtimes (A B A B), as bench/run.py does
        tputs: dict[str, list[float]] = {rt.name: [] for rt in runtimes}
        for _ in range(args.rounds):
            for rt in runtimes:
                tputs[rt.name].append(throughput(rt, bundle, args.containers, args.workers))
        rows = []
        for rt in runtimes:
            tput = statistics.median(tputs[rt.name])
            one, many = list_scaling(rt, bundle, args.listed, args.workers)
            rt.clean()
            pss, rss, anon = init_memory(rt, bundle, args.waiting)
            rows.append((rt.name, tput, one, many, pss, rss, anon))
            rt.clean()
        print(f"{args.containers} containers run -d + delete --force with {args.workers} workers; "
              f"list with 1 and {args.listed} containers; memory of {args.waiting} waiting inits")
        print(f"{'runtime':13} {'containers/s':>13} {'list 1 (ms)':>12} {'list N (ms)':>12} "
              f"{'N/1':>6} {'init PSS kB':>12} {'RSS kB':>8} {'anon kB':>8}")
        for name, tput, one, many, pss, rss, anon in rows:
            print(f"{name:13} {tput:13.1f} {one:12.1f} {many:12.1f} {many / one:6.2f} {pss:12} "
                  f"{rss:8} {anon:8}")
        return 0
    finally:
        for rt in runtimes:
            rt.clean()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
