"""Churn: containers created, started, exec'd into, killed and deleted by
parallel workers, with random SIGKILLs of the runtime's commands in between
(at a random moment, or at a random named point through the fault-injection
entry point). After a killed command a worker goes on as an engine would
(`delete --force`); afterwards nothing may be left: no state dir, cgroup,
mount or process of any of the containers.

CI runs PYRUNC_CHURN_CONTAINERS containers (default 100) over 8 workers; the
long run (docs/reliability.md):

    PYRUNC_CHURN_CONTAINERS=500 PYRUNC=/opt/pyrunc/bin/pyrunc \\
        /opt/pyrunc/bin/pytest -q -s -p no:cacheprovider tests/integration/test_churn.py
"""
import os
import random
import subprocess
import tempfile
import threading
import time
from collections import Counter

import pytest

from faults import faulty, pids_of  # noqa: F401
from test_kill_points import KILL_POINTS

pytestmark = pytest.mark.integration

CONTAINERS = int(os.environ.get("PYRUNC_CHURN_CONTAINERS", "100"))
WORKERS = 8
KILL_RATE = 0.15  # of the commands: SIGKILLed somewhere


class Churn:
    def __init__(self, rt, bundle, seed: int):
        self.rt, self.bundle = rt, bundle
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.stats = Counter()
        self.failures: list[str] = []

    def command(self, *argv, cid: str, point_choices=()) -> int | None:
        """One pyrunc command; maybe SIGKILLed (then None)."""
        with self.lock:
            roll = self.rng.random()
            delay = self.rng.uniform(0.0, 0.12)
            point = self.rng.choice(point_choices) if point_choices else None
        env = dict(os.environ)
        how = None
        if roll < KILL_RATE / 2 and point:
            env["PYRUNC_FAULT"] = f"{point}=kill"
            how = "point"
        elif roll < KILL_RATE:
            how = "timer"
        # stderr to a file: a created container keeps its stdio, a pipe never ends
        with tempfile.TemporaryFile() as errf:
            proc = subprocess.Popen([self.rt.binary, "--root", self.rt.root, *argv],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=errf, env=env)
            if how == "timer":
                try:
                    proc.wait(timeout=delay)
                except subprocess.TimeoutExpired:
                    proc.kill()
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                self.fail(f"{argv[0]} {cid} hung")
                return None
            errf.seek(0)
            err = errf.read()
        if proc.returncode == -9:
            with self.lock:
                self.stats[f"killed {argv[0]} ({how})"] += 1
            return None
        if proc.returncode != 0 and how is None and err:
            lines = err.decode(errors="replace").splitlines()
            if len(lines) != 1 or "internal error" in lines[0]:
                self.fail(f"{argv[0]} {cid}: {err[:500]!r}")
        return proc.returncode

    def fail(self, what: str) -> None:
        with self.lock:
            self.failures.append(what)

    def lifecycle(self, cid: str) -> None:
        if self.command("create", "--bundle", self.bundle.path, cid, cid=cid,
                        point_choices=HOST_POINTS) != 0:
            self.force_delete(cid)
            return
        self.count("created")
        if self.command("start", cid, cid=cid) == 0:
            self.count("started")
            with self.lock:
                do_exec = self.rng.random() < 0.3
            if do_exec and self.command("exec", cid, "true", cid=cid,
                                        point_choices=EXEC_HOST_POINTS) == 0:
                self.count("exec'd")
        if self.command("kill", cid, "KILL", cid=cid) == 0:
            self.count("signalled")
        if self.command("delete", "--force", cid, cid=cid) == 0:
            self.count("deleted")
        else:
            self.force_delete(cid)

    def force_delete(self, cid: str) -> None:
        """What an engine does after a failed or killed command."""
        for _ in range(3):
            res = self.rt("delete", "--force", cid, timeout=60)
            if res.returncode == 0:
                self.count("recovered by delete --force")
                return
        self.fail(f"delete --force {cid}: {res.stderr}")

    def count(self, what: str) -> None:
        with self.lock:
            self.stats[what] += 1


# points in the command's own process (the others need the test's handshake, faultlib)
HOST_POINTS = [p for p in KILL_POINTS if p.startswith(("create:", "spawn:", "hooks.createRuntime"))]
EXEC_HOST_POINTS = ["spawn:forked", "spawn:pid"]


def test_churn(faulty, bundle):
    bundle.args("sleep", "1000")
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/true"}]}
    bundle.write()
    seed = int(os.environ.get("PYRUNC_CHURN_SEED", str(int(time.time()))))
    churn = Churn(faulty, bundle, seed)
    ids = [faulty.new_id(f"{i}") for i in range(CONTAINERS)]
    work = list(ids)
    work_lock = threading.Lock()

    def worker():
        while True:
            with work_lock:
                if not work:
                    return
                cid = work.pop()
            churn.lifecycle(cid)

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - started
    print(f"\nchurn (seed {seed}): {CONTAINERS} containers, {WORKERS} workers, {took:.1f} s: "
          + ", ".join(f"{k} {v}" for k, v in sorted(churn.stats.items())))
    assert churn.failures == []
    left = faulty.leftovers() + [f"process {pid}" for cid in ids for pid in pids_of(cid)]
    assert left == []
    killed = sum(v for k, v in churn.stats.items() if k.startswith("killed "))
    assert killed > 0 and churn.stats["created"] > CONTAINERS // 2
