#!/bin/sh
# run-example.sh: run the busybox example bundle with pyrunc (as root); exits with
# the container's status. Builds the rootfs first if it is missing.
# env: PYRUNC (default: /usr/local/bin/pyrunc, else pyrunc on PATH)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bundle=$here/busybox
[ -x "$bundle/rootfs/bin/busybox" ] || sh "$here/make-rootfs.sh" "$bundle/rootfs"
pyrunc=${PYRUNC:-}
[ -n "$pyrunc" ] || { [ -x /usr/local/bin/pyrunc ] && pyrunc=/usr/local/bin/pyrunc; } \
  || pyrunc=$(command -v pyrunc) || { echo "pyrunc not found: run scripts/setup.sh" >&2; exit 127; }
id=busybox-example-$$-$(date +%s)
echo "+ $pyrunc run --bundle $bundle $id" >&2
rc=0
"$pyrunc" run --bundle "$bundle" "$id" </dev/null || rc=$?
"$pyrunc" delete --force "$id" >/dev/null 2>&1 || true   # in case run failed half-way
exit "$rc"
