#!/bin/bash
# The whole test suite, as CI runs it (root, fresh Debian 12):
#   1. set up the machine (scripts/setup.sh: packages, /opt/pyrunc, example rootfs);
#   2. unit + integration tests on this host's cgroup layout;
#   3. the cgroup v2 tests inside a throwaway pure-v2 guest (../shared/tools/cgroup2-vm),
#      when this host is not v2 itself;
#   4. the systemd cgroup driver tests (tests/systemd) in a guest booted with systemd
#      (CGROUP2_VM_INIT=systemd), one guest for the suite;
#   5. the engines in their systemd configuration (tests/engines: podman, containerd with
#      CRI and ctr, dockerd) and AppArmor, in another such guest.
#   The summary says which layouts and drivers were tested.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
venv=${PYRUNC_VENV:-/opt/pyrunc}
export PYRUNC=$venv/bin/pyrunc
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then host_layout=v2; else host_layout="v1 (hybrid)"; fi
if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then host_init=systemd; else host_init="no systemd"; fi
echo "== host suite, cgroup $host_layout, PID 1: $host_init (drivers: cgroupfs; systemd only if PID 1 is systemd)"
$venv/bin/pytest -rfEs -p no:cacheprovider --ignore=tests/cgroup2 --ignore=tests/systemd --ignore=tests/engines tests
if [ "$host_init" = systemd ]; then
  echo "== systemd driver suite on this host (cgroup $host_layout)"
  $venv/bin/pytest -rfEs -p no:cacheprovider tests/systemd
fi
tested="cgroup $host_layout (host, cgroupfs driver)"
vm=${CGROUP2_VM:-../shared/tools/cgroup2-vm}
if [ ! -x "$vm" ]; then
  echo "== guest suites SKIPPED: no cgroup2-vm tool at $vm"
  echo "== layouts/drivers tested: $tested only"
  exit 0
fi
if [ "$host_layout" = v2 ]; then
  echo "== cgroup v2 suite, on this pure-v2 host"
  $venv/bin/pytest -rfEs -p no:cacheprovider tests/cgroup2
  tested="cgroup v2 (host, cgroupfs driver)"
else
  echo "== cgroup v2 suite, in a pure-v2 guest ($vm)"
  "$vm" env PYRUNC=$PYRUNC $venv/bin/pytest -rfEs -p no:cacheprovider tests/cgroup2
  tested="$tested, cgroup v2 (guest, cgroupfs driver)"
fi
echo "== systemd driver suite, in a guest booted with systemd (CGROUP2_VM_INIT=systemd: cgroup v2, systemd driver)"
start=$SECONDS
CGROUP2_VM_INIT=systemd "$vm" -- env PYRUNC=$PYRUNC $venv/bin/pytest -rfEs -p no:cacheprovider tests/systemd
echo "== systemd guest suite: $((SECONDS - start)) s"
tested="$tested, cgroup v2 + systemd (guest, systemd driver: system and user instance)"
echo "== engine suite, in a guest booted with systemd (cgroup v2, systemd driver, AppArmor):" \
     "podman --cgroup-manager systemd, containerd SystemdCgroup (CRI + ctr), dockerd native.cgroupdriver=systemd"
start=$SECONDS
CGROUP2_VM_INIT=systemd CGROUP2_VM_TIMEOUT=${ENGINES_VM_TIMEOUT:-1800} "$vm" -- \
  env PYRUNC=$PYRUNC $venv/bin/pytest -rfEs -p no:cacheprovider tests/engines
echo "== engine guest suite: $((SECONDS - start)) s"
tested="$tested, engines with the systemd driver + AppArmor (guest: podman, containerd CRI/ctr, dockerd)"
echo "== layouts/drivers tested: $tested; cgroup v1 + systemd driver: unit tests with a fake bus only"
