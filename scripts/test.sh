#!/bin/bash
# The whole test suite, as CI runs it (root, fresh Debian 12):
#   1. set up the machine (scripts/setup.sh: packages, /opt/pyrunc, example rootfs);
#   2. unit + integration tests on this host's cgroup layout;
#   3. the cgroup v2 tests inside a throwaway pure-v2 guest (../shared/tools/cgroup2-vm),
#      when this host is not v2 itself. The summary says which layouts were tested.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
venv=${PYRUNC_VENV:-/opt/pyrunc}
export PYRUNC=$venv/bin/pyrunc
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then host_layout=v2; else host_layout="v1 (hybrid)"; fi
echo "== host suite, cgroup $host_layout"
$venv/bin/pytest -rfEs -p no:cacheprovider --ignore=tests/cgroup2 tests
if [ "$host_layout" = v2 ]; then
  echo "== layouts tested: cgroup v2 (host)"
  exit 0
fi
vm=${CGROUP2_VM:-../shared/tools/cgroup2-vm}
if [ ! -x "$vm" ]; then
  echo "== cgroup v2 suite SKIPPED: no cgroup2-vm tool at $vm"
  echo "== layouts tested: cgroup $host_layout only"
  exit 0
fi
echo "== cgroup v2 suite, in a pure-v2 guest ($vm)"
"$vm" env PYRUNC=$PYRUNC $venv/bin/pytest -rfEs -p no:cacheprovider tests/cgroup2
echo "== layouts tested: cgroup $host_layout (host) and cgroup v2 (guest)"
