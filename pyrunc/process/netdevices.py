"""linux.netDevices: host network interfaces moved into the container's
network namespace (config-linux.md "Network Devices", runc's
devChangeNetNamespace).

Checked before fork (names, the devices exist on the host, the container has
its own network namespace, no two end up with one name); moved by the host
right after the init exists and before any hook runs: each device goes down,
moves and is renamed in one RTM_NEWLINK (a "%d" template lets the kernel pick
a free name), gets back its permanent global addresses (the kernel drops
addresses on a move) and goes up. If a move fails, the devices already moved
go back to the host with their names, addresses and state, so a failed
create leaves nothing half-moved; `delete` leaves them to the namespace's
end, as the spec requires (physical devices return to the host, virtual
ones are destroyed by the kernel). create journals each device as it was on
the host before it moves, so `delete --force` after a killed create gives it
back the same way (restore_recorded).

Netlink through pyroute2, imported only here and only when netDevices is set.
"""
import _socket
import os

from pyrunc import log, native
from pyrunc.errors import ConfigError, ContainerStartError
from pyrunc.lean.record import field, record

IFNAMSIZ = 16
IFF_UP = 0x1
IFA_F_PERMANENT = 0x80
RT_SCOPE_UNIVERSE = 0


@record
class NetDevice:
    host_name: str
    name: str            # in the container ("%d": a kernel template)


@record
class Moved:
    """A device in the container's namespace (its host record says how it was)."""
    device: NetDevice
    index: int           # in the container's namespace


@record
class NetDeviceMover:
    """What was moved, and the container's network namespace, held open until
    create ends: if init dies meanwhile the namespace (and the devices in it,
    which a failed create gives back) must not go with it. `recorded`: each
    device as it was on the host (see host_record), taken before it moves."""
    ns_fd: int
    moved: list = field(default_factory=list)
    recorded: list = field(default_factory=list)

    def close(self) -> None:
        if self.ns_fd >= 0:
            os.close(self.ns_fd)
            self.ns_fd = -1


def _valid_name(name) -> bool:
    """The kernel's dev_valid_name (runc checks the same)."""
    return (isinstance(name, str) and 0 < len(name.encode()) < IFNAMSIZ and name not in (".", "..")
            and not any(c in name for c in "/: \t\n") and "\0" not in name)


def parse_net_devices(devices: dict | None, network_private: bool) -> list[NetDevice]:
    if not devices:
        return []
    if not network_private:
        raise ConfigError("unable to move network devices without a network namespace",
                          "linux.netDevices")
    if os.geteuid() != 0:
        raise ConfigError("network devices are not supported for rootless containers",
                          "linux.netDevices")
    out, targets = [], {}
    for host_name, entry in devices.items():
        where = f"linux.netDevices.{host_name}"
        if not _valid_name(host_name):
            raise ConfigError(f"invalid network device name {host_name!r}", where)
        name = (entry or {}).get("name") or host_name
        if not _valid_name(name) or name.count("%") > (1 if "%d" in name else 0):
            raise ConfigError(f"invalid network device name {name!r}", f"{where}.name")
        if "%d" not in name:
            if name in targets:
                raise ConfigError(f"{targets[name]} and {host_name} would both be named {name!r} "
                                  f"in the container", f"{where}.name")
            targets[name] = host_name
        try:
            _socket.if_nametoindex(host_name)
        except OSError:
            raise ConfigError(f"no network device {host_name!r} on the host", where) from None
        out.append(NetDevice(host_name, name))
    return out


def move(devices: list[NetDevice], pid: int, before_move=None) -> NetDeviceMover:
    """Into /proc/<pid>/ns/net; on failure nothing stays moved.
    `before_move(mover)` is called once a device's host record is in
    mover.recorded, before the device changes (create journals it)."""
    from pyroute2 import IPRoute  # ~100 ms: only for containers with netDevices
    try:
        mover = NetDeviceMover(os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC))
    except OSError as e:
        raise ContainerStartError(f"cannot open the network namespace of pid {pid}: "
                                  f"{e.strerror}", "linux.netDevices") from None
    host_ns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with IPRoute() as host, _ipr_in(mover.ns_fd, host_ns, IPRoute) as inside:
            for d in devices:
                if "%d" not in d.name and inside.link_lookup(ifname=d.name):
                    raise ConfigError(f"a network device named {d.name!r} already exists in the "
                                      f"container", f"linux.netDevices.{d.host_name}")
            for d in devices:
                _move_one(host, inside, d, mover, before_move)
    except BaseException:
        restore(mover)
        mover.close()
        raise
    finally:
        os.close(host_ns)
    return mover


class _ipr_in:
    """An IPRoute whose netlink socket lives in another network namespace:
    the socket is made there (setns and back), then serves from here."""

    def __init__(self, ns_fd: int, back_fd: int, ipr_class):
        native.setns(ns_fd, native.CLONE_NEWNET)
        try:
            sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC, 0)
        finally:
            native.setns(back_fd, native.CLONE_NEWNET)
        fd = sock.detach()
        try:
            self.ipr = ipr_class(fileno=fd)  # owns the fd from now on
        except BaseException:
            os.close(fd)
            raise

    def __enter__(self):
        return self.ipr

    def __exit__(self, *exc):
        self.ipr.close()


def _netlink_error(e: Exception, what: str, where: str) -> ContainerStartError:
    err = getattr(e, "code", None) or getattr(e, "errno", None)
    reason = os.strerror(err) if isinstance(err, int) and err > 0 else str(e)
    return ContainerStartError(f"{what}: {reason}", where)


def _move_one(host, inside, d: NetDevice, mover: NetDeviceMover, before_move) -> None:
    where = f"linux.netDevices.{d.host_name}"
    found = host.link_lookup(ifname=d.host_name)
    if not found:
        raise ContainerStartError(f"no network device {d.host_name!r} on the host", where)
    index = found[0]
    try:
        (link,) = host.get_links(index)
        addresses = [(a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                     for a in host.get_addr(index=index)
                     if (a.get_attr("IFA_FLAGS") or a["flags"]) & IFA_F_PERMANENT
                     and a["scope"] == RT_SCOPE_UNIVERSE]
        mac = link.get_attr("IFLA_ADDRESS")
        mover.recorded.append(host_record(d, index, mac, addresses, bool(link["flags"] & IFF_UP)))
        if before_move is not None:
            before_move(mover)
        host.link("set", index=index, state="down")
        # rename and move in one request: no clash with names on either side
        host.link("set", index=index, ifname=d.name, net_ns_fd=mover.ns_fd)
    except Exception as e:
        raise _netlink_error(e, f"cannot move network device {d.host_name}", where) from None
    moved = Moved(d, _find_moved(inside, index, d.name, mac))
    mover.moved.append(moved)
    try:
        for address, prefixlen in addresses:
            inside.addr("add", index=moved.index, address=address, prefixlen=prefixlen)
        inside.link("set", index=moved.index, state="up")
    except Exception as e:
        raise _netlink_error(e, f"cannot set up network device {d.name} in the container",
                             where) from None


def _find_moved(inside, index: int, name: str, mac) -> int:
    """The device's index in the container (the kernel keeps it when free)."""
    for link in inside.get_links():
        if link["index"] == index or (link.get_attr("IFLA_ADDRESS") == mac and "%d" in name):
            return link["index"]
    return inside.link_lookup(ifname=name)[0]


def supported() -> bool:
    """netDevices work here: netlink through pyroute2, as root."""
    from importlib.util import find_spec
    return os.geteuid() == 0 and find_spec("pyroute2") is not None


def restore(mover: NetDeviceMover) -> None:
    """Back to the host, with their names, addresses and state (best effort,
    most recent first): what a failed create must not leave moved."""
    if not mover.recorded:
        return
    from pyroute2 import IPRoute
    host_ns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with IPRoute() as host:
            if mover.moved:
                with _ipr_in(mover.ns_fd, host_ns, IPRoute) as inside:
                    for m in reversed(mover.moved):
                        try:
                            inside.link("set", index=m.index, state="down")
                            inside.link("set", index=m.index, ifname=m.device.host_name,
                                        net_ns_fd=host_ns)
                        except Exception as e:  # noqa: BLE001 - report, go on with the others
                            log.warning(f"could not move network device {m.device.name} back "
                                        f"to the host as {m.device.host_name}: {e}")
            _fix_on_host(host, mover.recorded)
        mover.moved.clear()
        mover.recorded.clear()
    finally:
        os.close(host_ns)


# --- after a killed create (its journal) -------------------------------------------

def host_record(d: NetDevice, index: int, mac, addresses: list, was_up: bool) -> dict:
    """A device as it was on the host, as create's journal keeps it."""
    return {"host_name": d.host_name, "name": d.name, "index": index, "mac": mac,
            "addresses": [list(a) for a in addresses], "was_up": was_up}


def restore_recorded(records: list[dict], init_pid: int | None) -> None:
    """The devices a killed create journalled (init_pid: its init, if still
    alive). Those in the container's namespace go back as restore() brings
    them; once the namespace is gone the kernel has given physical devices
    back under their container names (virtual ones went with it): they get
    their names, addresses and state back too, as does a device taken down
    but never moved."""
    if not records:
        return
    mover = None
    if init_pid:
        try:
            mover = NetDeviceMover(os.open(f"/proc/{init_pid}/ns/net",
                                           os.O_RDONLY | os.O_CLOEXEC))
        except OSError:
            mover = None  # gone meanwhile: the host side below is all there is
    if mover is None:
        from pyroute2 import IPRoute
        with IPRoute() as host:
            _fix_on_host(host, records)
        return
    try:
        from pyroute2 import IPRoute
        host_ns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            with _ipr_in(mover.ns_fd, host_ns, IPRoute) as inside:
                links = inside.get_links()
        finally:
            os.close(host_ns)
        for r in records:
            for link in links:
                if link.get_attr("IFLA_ADDRESS") == r["mac"] and (
                        "%d" in r["name"] or link.get_attr("IFLA_IFNAME") == r["name"]):
                    mover.moved.append(Moved(NetDevice(r["host_name"], r["name"]),
                                             link["index"]))
                    break
        mover.recorded = list(records)
        restore(mover)
    finally:
        mover.close()


def _fix_on_host(host, records: list[dict]) -> None:
    """Each recorded device that is on the host: its name, addresses and state
    as they were (found by index and MAC address, else by MAC address)."""
    links = host.get_links()
    for r in records:
        found = [link for link in links if link.get_attr("IFLA_ADDRESS") == r["mac"]]
        link = next((x for x in found if x["index"] == r["index"]), None) or \
            (found[0] if len(found) == 1 else None)
        if link is None:
            continue  # still inside, or a virtual device gone with the namespace
        try:
            index = link["index"]
            if link.get_attr("IFLA_IFNAME") != r["host_name"]:
                host.link("set", index=index, state="down")
                host.link("set", index=index, ifname=r["host_name"])
            for address, prefixlen in r["addresses"]:
                try:
                    host.addr("add", index=index, address=address, prefixlen=prefixlen)
                except Exception as e:  # noqa: BLE001
                    if getattr(e, "code", None) != 17:  # EEXIST: still there
                        raise
            if r["was_up"]:
                host.link("set", index=index, state="up")
        except Exception as e:  # noqa: BLE001 - report, go on with the others
            log.warning(f"could not give network device {r['host_name']} back to the host: {e}")
