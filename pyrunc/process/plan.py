"""Turn a validated config.json into an InitPlan: every value init will apply,
parsed and checked in the host *before* anything is forked, so bad input
fails with the config field named and nothing to clean up."""
import os
import stat

from pyrunc.lean.record import field, record

from pyrunc.errors import ConfigError, errno_text, quote
from pyrunc.process.attributes import Attributes, parse as parse_attributes
from pyrunc.process.namespaces import Namespaces, parse_namespaces
from pyrunc.rootfs.devices import parse_devices
from pyrunc.rootfs.mounts import parse_mount
from pyrunc.rootfs.setup import RootfsPlan, parse_propagation
from pyrunc.lean.procfs import in_user_namespace
from pyrunc.security import capabilities, identity, lsm, rlimits



@record
class ProcessPlan:
    args: list
    env: list
    add_home: bool                  # init appends HOME from the container's /etc/passwd
    cwd: str
    terminal: bool
    console_size: dict | None
    identity: object
    capabilities: object
    rlimits: list
    no_new_privileges: bool
    oom_score_adj: int | None
    apparmor_profile: str
    selinux_label: str
    attributes: Attributes = field(default_factory=Attributes)


@record
class InitPlan:
    container_id: str
    namespaces: Namespaces
    rootfs: RootfsPlan
    process: ProcessPlan
    seccomp: object | None
    hostname: str | None
    domainname: str | None
    sysctl: dict
    time_offsets: dict
    hooks: dict
    fifo_fd: int = -1
    lock_fd: int = -1     # create's journal (its lock): kept by the chain until init is placed
    preserve_fds: int = 0
    no_new_keyring: bool = False
    extra_fds: list = field(default_factory=list)   # fds init must keep (console socket…)
    hook_state: dict = field(default_factory=dict)  # state JSON for init's own hooks
    console_fd: int = -1                  # connected console socket (process.terminal)
    init_fd: int = -1                     # sealed memfd of the waiting init (waiter.py)
    console_ours: bool = False            # pyrunc itself receives it (foreground: no ONLCR)
    pidfd_fd: int = -1                    # connected --pidfd-socket: gets the process's pidfd
    net_devices: list = field(default_factory=list)  # linux.netDevices (moved by the host)
    intel_rdt: object = None              # linux.intelRdt: a resctrl.RdtPlan (host side)

    @property
    def needs_hooks_sync(self) -> bool:
        """Init stops before pivot_root for the host's hooks, and learns the
        state JSON its own (createContainer, startContainer) hooks get."""
        return any(self.hooks.get(k) for k in
                   ("createRuntime", "createContainer", "startContainer"))


_IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


def check_sysctls(sysctl: dict, ns: Namespaces) -> dict:
    """runc's rule: a sysctl may only be set in a namespace the container owns."""
    for key in sysctl:
        where = f"linux.sysctl.{key}"
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            needed = "ipc"
        elif key.startswith("net."):
            needed = "network"
        elif key in ("kernel.domainname", "kernel.hostname"):
            needed = "uts"
        else:
            raise ConfigError(f"sysctl {quote(key)} is not in a separate kernel namespace", where)
        if not ns.is_private(needed):  # runc's words
            raise ConfigError(f"sysctl {quote(key)} is not allowed in the hosts {needed} namespace"
                              if needed == "ipc" else
                              f"sysctl {quote(key)} not allowed in host {needed} namespace", where)
        if key == "kernel.hostname":
            raise ConfigError(f'sysctl {quote(key)} is not allowed as it conflicts with the OCI '
                              '"hostname" field', where)
        if not os.path.exists("/proc/sys/" + key.replace(".", "/")):
            raise ConfigError(f"sysctl {key!r} does not exist on this kernel", where)
    return dict(sysctl)


def prepare_env(env: list | None, where: str) -> tuple[list, bool]:
    """runc 1.5's prepareEnv, checked before anything is forked: every entry is
    NAME=VALUE; of several with one name the last wins, at its own place; an
    empty HOME is dropped. Returns (env, whether init must add HOME from the
    container's /etc/passwd): it does unless a non-empty HOME is set, and
    not at all when process.env is absent (runc's nil environment)."""
    if env is None:
        return [], False
    seen, out, home_set = set(), [], False
    for i in range(len(env) - 1, -1, -1):
        entry = env[i]
        key, eq, value = entry.partition("=")
        if not eq:
            raise ConfigError("invalid environment variable: missing '='", f"{where}[{i}]")
        if not key:
            raise ConfigError("invalid environment variable: name cannot be empty", f"{where}[{i}]")
        if key in seen:
            continue
        seen.add(key)
        if "\0" in entry:
            raise ConfigError(f"invalid environment variable {quote(key)}: contains nul byte "
                              "(\\x00)", f"{where}[{i}]")
        if key == "HOME":
            if not value:
                continue
            home_set = True
        out.append(entry)
    out.reverse()
    return out, not home_set


def build_process_plan(proc: dict, where: str = "process", linux: dict | None = None,
                       config_process: dict | None = None) -> ProcessPlan:
    """`config_process`: for an exec'd process, the config's own process
    (whose scheduler, ioPriority and execCPUAffinity it inherits)."""
    env, add_home = prepare_env(proc.get("env"), f"{where}.env")
    return ProcessPlan(
        args=list(proc.get("args") or []),
        env=env,
        add_home=add_home,
        cwd=proc.get("cwd") or "/",
        terminal=bool(proc.get("terminal")),
        console_size=proc.get("consoleSize"),
        identity=identity.parse_user(proc.get("user") or {}, f"{where}.user"),
        capabilities=capabilities.parse_capabilities(proc.get("capabilities"),
                                                     f"{where}.capabilities"),
        rlimits=rlimits.parse_rlimits(proc.get("rlimits"), f"{where}.rlimits"),
        no_new_privileges=bool(proc.get("noNewPrivileges")),
        oom_score_adj=proc.get("oomScoreAdj"),
        apparmor_profile=lsm.check_apparmor(proc.get("apparmorProfile"), f"{where}.apparmorProfile"),
        selinux_label=lsm.check_selinux(proc.get("selinuxLabel"), f"{where}.selinuxLabel"),
        attributes=parse_attributes(proc, linux or {}, where, exec_=config_process is not None,
                                    defaults=config_process),
    )


def build_exec_plan(container_id: str, config: dict, process: dict, join: dict,
                    preserve_fds: int = 0) -> InitPlan:
    """A process joining a running container: its namespaces (by path), the
    container's seccomp profile, and the attributes of `process`."""
    linux = config.get("linux") or {}
    return InitPlan(
        container_id=container_id,
        namespaces=Namespaces(new=set(), join=join),
        rootfs=None,
        process=build_process_plan(process, linux=linux,
                                   config_process=config.get("process") or {}),
        seccomp=compile_seccomp(linux.get("seccomp")),
        hostname=None, domainname=None, sysctl={}, time_offsets={}, hooks={},
        preserve_fds=preserve_fds,
    )


def build_plan(container_id: str, config: dict, bundle: str, *, no_pivot: bool = False,
               no_new_keyring: bool = False, preserve_fds: int = 0) -> InitPlan:
    linux = config.get("linux") or {}
    ns = parse_namespaces(linux.get("namespaces"), linux)
    readonly_root = bool((config.get("root") or {}).get("readonly"))
    if not ns.is_private("mount"):
        for key in ("maskedPaths", "readonlyPaths"):
            if linux.get(key):
                raise ConfigError("unable to restrict paths without a private mount namespace",
                                  f"linux.{key}")
        if readonly_root:  # runc leaves the root as it is (it would be the host's mount)
            from pyrunc import log
            log.warning("root.readonly is ignored: the container has no mount namespace of its own")
            readonly_root = False
    for key, ns_type in (("hostname", "uts"), ("domainname", "uts")):
        if config.get(key) and not ns.is_private(ns_type):
            raise ConfigError(f"unable to set {key} without a private UTS namespace", key)
    if linux.get("timeOffsets") is not None:  # {} too, as runc
        if "time" in ns.join:  # runc's words
            raise ConfigError("time namespace enabled, but both namespace path and time offsets "
                              "specified -- you may only provide one", "linux.timeOffsets")
        if not ns.has_new("time"):
            raise ConfigError("time namespace offsets specified, but time namespace isn't "
                              "enabled in the config", "linux.timeOffsets")

    root = config.get("root") or {}
    rootfs = root.get("path") or ""
    if not os.path.isabs(rootfs):
        rootfs = os.path.join(bundle, rootfs)
    rootfs_as_given = os.path.abspath(rootfs)  # mount destinations may spell this out
    try:
        if not stat.S_ISDIR(os.stat(rootfs).st_mode):
            raise ConfigError(f"invalid rootfs: {rootfs} is not a directory", "root.path")
    except OSError as e:
        raise ConfigError(f"invalid rootfs: stat {rootfs}: {errno_text(e.errno)}",
                          "root.path") from None
    rootfs = os.path.realpath(rootfs)

    mounts = [parse_mount(i, m, bundle, rootfs_as_given)
              for i, m in enumerate(config.get("mounts") or [])]
    for m in mounts:
        if m.idmap is not None:
            from pyrunc.rootfs import idmap  # parse_mount imported it already
            idmap.check_userns(m, ns)
    mount_label = lsm.check_selinux(linux.get("mountLabel"), "linux.mountLabel")
    if mount_label:
        for m in mounts:
            if not m.is_bind:  # labels of bind mounts come from their source
                m.data = ",".join(filter(None, [m.data, f'context="{mount_label}"']))
    rootfs_plan = RootfsPlan(
        rootfs=rootfs,
        readonly=readonly_root,
        propagation=parse_propagation(linux.get("rootfsPropagation")),
        mounts=mounts,
        devices=parse_devices(linux.get("devices")),
        masked_paths=list(linux.get("maskedPaths") or []),
        readonly_paths=list(linux.get("readonlyPaths") or []),
        no_pivot=no_pivot,
        private_mount_ns=ns.is_private("mount"),
        bind_devices=ns.is_private("user") or in_user_namespace(),  # mknod is refused there
        host_sources=os.geteuid() == 0,  # as runc: a rootless host cannot help
    )
    proc = config.get("process") or {}
    process = build_process_plan(proc, linux=linux)
    if "process" in config and not process.args:
        raise ConfigError("args must not be empty", "process.args")
    return InitPlan(
        container_id=container_id,
        namespaces=ns,
        rootfs=rootfs_plan,
        process=process,
        seccomp=compile_seccomp(linux.get("seccomp")),
        hostname=config.get("hostname"),
        domainname=config.get("domainname"),
        sysctl=check_sysctls(linux.get("sysctl") or {}, ns),
        time_offsets=dict(linux.get("timeOffsets") or {}),
        hooks=dict(config.get("hooks") or {}),
        preserve_fds=preserve_fds,
        no_new_keyring=no_new_keyring,
        net_devices=_net_devices(linux.get("netDevices"), ns),
        intel_rdt=_rdt_plan(linux.get("intelRdt"), container_id),
    )


# The modules of optional sections (seccomp, netDevices, intelRdt) are imported
# only for a config that has them: about 0.8 ms of every create that has none
# (per-module import times measured in fresh interpreters).

def compile_seccomp(cfg: dict | None):
    """linux.seccomp -> a seccomp.SeccompPlan (None without a profile)."""
    if cfg is None:
        return None
    from pyrunc.security import seccomp
    return seccomp.compile_seccomp(cfg)


def _net_devices(cfg: dict | None, ns: Namespaces) -> list:
    if not cfg:
        return []
    from pyrunc.process.netdevices import parse_net_devices
    return parse_net_devices(cfg, ns.is_private("network"))


def _rdt_plan(cfg: dict | None, container_id: str):
    if cfg is None:
        return None
    from pyrunc.cgroups import resctrl
    return resctrl.parse(cfg, container_id)
