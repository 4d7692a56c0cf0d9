"""pyrunc as a library: create, start, inspect, kill and delete a container.

    sudo /opt/pyrunc/bin/python examples/api_demo.py

Uses the busybox example rootfs (built by scripts/setup.sh) with its own state
root under /tmp, so it leaves nothing behind in /run/pyrunc.
"""
import json
import os
import signal
import tempfile
import time

from pyrunc.container import Container

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "bundles", "busybox")

with tempfile.TemporaryDirectory(prefix="pyrunc-api-demo-") as tmp:
    # a bundle: the example config, a long-running process, the shared rootfs
    with open(os.path.join(EXAMPLE, "config.json")) as f:
        config = json.load(f)
    config["root"]["path"] = os.path.join(EXAMPLE, "rootfs")
    config["process"]["args"] = ["sleep", "60"]
    bundle = os.path.join(tmp, "bundle")
    os.mkdir(bundle)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)

    c = Container.create(f"api-demo-{os.getpid()}", bundle, root=os.path.join(tmp, "state"))
    try:
        print("after create:", c.status())          # created: init waits for start
        c.start()
        print("after start: ", c.status())          # running: sleep 60 is pid 1 inside
        print(json.dumps(c.oci_state(), indent=2))   # what `pyrunc state` prints
        c.kill(signal.SIGKILL)
        deadline = time.monotonic() + 5
        while c.status() != "stopped" and time.monotonic() < deadline:
            time.sleep(0.01)
        print("after kill:  ", c.status())
    finally:
        c.delete(force=True)                        # cgroups, state dir, poststop hooks
    print("deleted")
