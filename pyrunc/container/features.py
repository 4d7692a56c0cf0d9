"""`features`: what this pyrunc implements, as the runtime-spec features
document (features.md). Callers generate configs from it, so it advertises
only what works."""
from importlib.util import find_spec

from pyrunc import SPEC_VERSION, __version__
from pyrunc.cgroups import resctrl
from pyrunc.process import attributes, netdevices
from pyrunc.process.hooks import KINDS
from pyrunc.process.namespaces import FLAGS
from pyrunc.rootfs import mounts
from pyrunc.rootfs.idmap import supported as idmap_supported
from pyrunc.security import capabilities, lsm, seccomp

OCI_VERSION_MIN = "1.0.0"
# config.json annotations (or prefixes) that change what pyrunc does (runtime-spec
# 1.2 features.md): none yet; runc lists "bundle", "org.systemd.property." and
# "org.criu.config", which pyrunc does not interpret.
UNSAFE_ANNOTATIONS: list[str] = []
OCI_VERSION_MAX = SPEC_VERSION


def features() -> dict:
    mount_options = sorted(set(mounts.mount_option_names()))
    enabled = seccomp.seccomp_supported()
    # the systemd driver (system and user instances) needs only its D-Bus library
    systemd = find_spec("jeepney") is not None
    return {
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION_MAX,
        "hooks": list(KINDS),
        "mountOptions": mount_options,
        "linux": {
            "namespaces": sorted(FLAGS),
            "capabilities": capabilities.known_capabilities(),
            "cgroup": {"v1": True, "v2": True, "systemd": systemd, "systemdUser": systemd,
                       "rdma": False},
            "seccomp": {
                "enabled": enabled,
                "actions": seccomp.known_actions() if enabled else [],
                "operators": seccomp.known_operators() if enabled else [],
                "archs": seccomp.known_architectures() if enabled else [],
                "knownFlags": list(seccomp.FLAGS),
                "supportedFlags": seccomp.supported_flags(),
            },
            # whether pyrunc implements it, whatever the host has (features-linux.md)
            "apparmor": {"enabled": True},
            "selinux": {"enabled": lsm.selinux_enabled()},
            "intelRdt": resctrl.features(),
            "memoryPolicy": attributes.memory_policy_features(),
            "mountExtensions": {"idmap": {"enabled": idmap_supported()}},
            "netDevices": {"enabled": netdevices.supported()},
        },
        "potentiallyUnsafeConfigAnnotations": list(UNSAFE_ANNOTATIONS),
        "annotations": {
            "io.github.seccomp.libseccomp.version": seccomp.libseccomp_version(),
            "org.opencontainers.runc.checkpoint.enabled": "false",
            "io.github.pyrunc.version": __version__,
        },
    }
