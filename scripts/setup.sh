#!/bin/bash
# setup.sh: install pyrunc on a Debian 12 machine, as root. Idempotent; a repeat
# run with nothing changed takes about a second.
#   1. apt packages the runtime, its build and its tests need (only missing ones)
#   2. venv /opt/pyrunc (system python3 >= 3.11), `pip install .[test]` of this
#      repo (a real install, rebuilt only when the sources changed)
#   3. /usr/local/bin/pyrunc -> /opt/pyrunc/bin/pyrunc
#   4. the example rootfs examples/bundles/busybox/rootfs (git-ignored)
# Needs the network only for apt and PyPI. env: PYRUNC_VENV (default /opt/pyrunc),
# PYRUNC_LINK (default /usr/local/bin/pyrunc; empty: no link, e.g. for a second
# checkout with its own venv).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${PYRUNC_VENV:-/opt/pyrunc}
LINK=${PYRUNC_LINK-/usr/local/bin/pyrunc}
ROOTFS=$REPO/examples/bundles/busybox/rootfs
export DEBIAN_FRONTEND=noninteractive

say() { echo "setup: $*"; }
die() { echo "setup: error: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root"
command -v dpkg-query >/dev/null || die "not a Debian system (no dpkg-query)"

# run a noisy command quietly; show its output only if it fails
quiet() {
  local log; log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then
    tail -n 40 "$log" >&2; rm -f "$log"; die "failed: $*"
  fi
  rm -f "$log"
}

# --- 1. apt packages -----------------------------------------------------------------
# musl-tools: musl-gcc builds the static waiting init (_native/init.c, see setup.py);
# golang-github-containers-common: podman's default seccomp profile and containers.conf,
# which bench/run.py's engine-shaped config is made from
PKGS=(ca-certificates python3 python3-venv python3-dev gcc libc6-dev libseccomp-dev musl-tools
      busybox-static runc iproute2 procps util-linux mount file golang-github-containers-common)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  quiet apt-get update -q
  quiet apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  say "apt packages: all ${#PKGS[@]} present"
fi

# the clients tests/clients drives pyrunc with (containerd 1.6, podman 4 + conmon,
# dockerd 20.10), and apparmor: its apparmor_parser is how dockerd and podman load their
# profiles where the kernel has AppArmor (the systemd guest of tests/engines, which sees
# this host's /). Their daemons must not start on install: the tests run private ones,
# so a temporary policy-rc.d refuses service starts during this apt-get only.
CLIENT_PKGS=(containerd podman conmon docker.io uidmap apparmor)
missing=()
for p in "${CLIENT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]} (client tests)"
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made_policy=1
  fi
  rc=0
  ( quiet apt-get update -q && quiet apt-get install -y -q --no-install-recommends "${missing[@]}" ) || rc=$?
  if [ -n "$made_policy" ]; then rm -f "$policy"; fi
  [ "$rc" -eq 0 ] || die "failed to install ${missing[*]}"
else
  say "client packages: all ${#CLIENT_PKGS[@]} present"
fi

# --- 2. venv + pyrunc -----------------------------------------------------------------
PY=python3
if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  PY=/usr/bin/python3   # not a pyenv shim: the venv must sit on the real interpreter
fi
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "$PY is older than 3.11"
base=$("$PY" -c 'import sys; print(sys.base_prefix, sys.version.split()[0])')
if ! [ -x "$VENV/bin/python" ] || [ "$("$VENV/bin/python" -c 'import sys; print(sys.base_prefix, sys.version.split()[0])' 2>/dev/null)" != "$base" ]; then
  say "venv $VENV ($("$PY" --version) at $(readlink -f "$(command -v "$PY")"))"
  quiet "$PY" -m venv --clear "$VENV"
fi

# install from a clean copy of the sources (keeps build/ and *.egg-info out of the
# work tree; stamps the commit into pyrunc/_build_info.py for `pyrunc --version`)
commit=unknown
if command -v git >/dev/null && git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
  commit=$(git -C "$REPO" -c safe.directory="$REPO" describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)
fi
SRC=(pyproject.toml setup.py README.md _native pyrunc schemas scripts/pyrunc)
srchash=$(cd "$REPO" && { echo "$commit $base"; find "${SRC[@]}" -type f ! -path '*/__pycache__/*' \
  ! -name '*.pyc' ! -name '*.so' ! -name '_build_info.py' -print0 | sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-16)
stamp=$VENV/.pyrunc-source
if [ "$(cat "$stamp" 2>/dev/null)" = "$srchash" ] && "$VENV/bin/pyrunc" --version >/dev/null 2>&1 \
   && "$VENV/bin/python" -c 'import pytest' 2>/dev/null; then
  say "pyrunc $commit already installed in $VENV"
else
  say "pip install .[test] into $VENV (commit $commit)"
  build=$(mktemp -d /tmp/pyrunc-build.XXXXXX)
  trap 'rm -rf "$build"' EXIT
  (cd "$REPO" && tar -cf - --exclude=__pycache__ --exclude='*.pyc' --exclude='*.so' \
     --exclude='_build_info.py' "${SRC[@]}") | tar -xf - -C "$build"
  printf 'COMMIT = "%s"\n' "$commit" > "$build/pyrunc/_build_info.py"
  pip=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input)
  quiet "${pip[@]}" wheel --no-deps -w "$build/dist" "$build"
  wheel=$(echo "$build"/dist/pyrunc-*.whl)
  quiet "${pip[@]}" install "$wheel[test]"                       # dependencies
  quiet "${pip[@]}" install --force-reinstall --no-deps "$wheel"  # this build, even if same version
  rm -rf "$build"; trap - EXIT
  echo "$srchash" > "$stamp"
fi
# The command starts its interpreter with -IS (no site, isolated; see scripts/pyrunc).
# pip writes the shebang without flags, so they are added here.
shebang=$(head -n1 "$VENV/bin/pyrunc")
case "$shebang" in
  "#!$VENV/bin/python"|"#!$VENV/bin/python3") sed -i "1s|.*|$shebang -IS|" "$VENV/bin/pyrunc" ;;
  "#!$VENV/bin/python -IS"|"#!$VENV/bin/python3 -IS") ;;
  *) die "unexpected shebang in $VENV/bin/pyrunc: $shebang" ;;
esac
env -i "$VENV/bin/pyrunc" --version >/dev/null || die "$VENV/bin/pyrunc --version fails in an empty environment"

# --- 3. /usr/local/bin/pyrunc ---------------------------------------------------------
if [ -n "$LINK" ] && [ "$(readlink "$LINK" 2>/dev/null)" != "$VENV/bin/pyrunc" ]; then
  ln -sfn "$VENV/bin/pyrunc" "$LINK"
  say "linked $LINK -> $VENV/bin/pyrunc"
fi

# --- 4. example rootfs ----------------------------------------------------------------
if [ -x "$ROOTFS/bin/busybox" ] && cmp -s /bin/busybox "$ROOTFS/bin/busybox"; then
  say "example rootfs ${ROOTFS#"$REPO"/} present"
else
  sh "$REPO/examples/bundles/make-rootfs.sh" "$ROOTFS"
  say "built example rootfs ${ROOTFS#"$REPO"/}"
fi
say "done: $(env -i "$VENV/bin/pyrunc" --version | head -n1)"
