"""The systemd manager (org.freedesktop.systemd1) over D-Bus, through jeepney
(a maintained pure-Python D-Bus library: the marshalling, authentication and
bus protocol are its; only the systemd calls are ours). Imported only on the
systemd path. Every call has a bound: CALL_TIMEOUT per reply, JOB_TIMEOUT for
a start/stop job (runc's 30 s).

    Systemd.connect(user=False) -> Systemd     system bus as root; the session
        bus of the user's systemd instance when rootless ($DBUS_SESSION_BUS_ADDRESS,
        else $XDG_RUNTIME_DIR/bus, as runc). SystemdUnavailable ("systemd is not
        running: ...") when there is none.
"""
from __future__ import annotations

import os
import time

from jeepney import DBusAddress, HeaderFields, MatchRule, MessageType, new_method_call
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import DBusConnection, DBusConnectionBase, prep_socket
from jeepney.io.common import MessageFilters

from ..common import CgroupError

CALL_TIMEOUT = 10.0       # seconds for one reply
CONNECT_TIMEOUT = 2.0     # seconds to connect and authenticate
JOB_TIMEOUT = 30.0        # seconds for a start/stop job (runc)
SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"

MANAGER = DBusAddress("/org/freedesktop/systemd1", bus_name="org.freedesktop.systemd1",
                      interface="org.freedesktop.systemd1.Manager")
BUS = DBusAddress("/org/freedesktop/DBus", bus_name="org.freedesktop.DBus",
                  interface="org.freedesktop.DBus")
PROPERTIES = "org.freedesktop.DBus.Properties"


class SystemdError(CgroupError):
    """systemd refused or failed a request; .name is the D-Bus error name."""

    def __init__(self, message: str, name: str = ""):
        super().__init__(message)
        self.name = name


class SystemdUnavailable(CgroupError):
    """No systemd to talk to: the one-line "systemd is not running: ..." error."""

    def __init__(self, why: str):
        super().__init__(f"systemd is not running: {why}")


def booted_with_systemd() -> bool:
    """sd_booted(3): /run/systemd/system is a directory."""
    return os.path.isdir("/run/systemd/system")


def bus_address(user: bool) -> str:
    if not user:
        return os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or SYSTEM_BUS
    address = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    if address:
        return address
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and os.path.exists(os.path.join(runtime_dir, "bus")):
        return "unix:path=" + os.path.join(runtime_dir, "bus")
    raise SystemdUnavailable("no session bus for the user's systemd instance "
                             "($DBUS_SESSION_BUS_ADDRESS and $XDG_RUNTIME_DIR/bus are not set)")


def _socket_path(address: str) -> str:
    for part in address.split(";"):
        transport, _, info = part.partition(":")
        kv = dict(x.split("=", 1) for x in info.split(",") if "=" in x)
        if transport == "unix" and "path" in kv:
            return kv["path"]
        if transport == "unix" and "abstract" in kv:
            return "\0" + kv["abstract"]
    raise SystemdUnavailable(f"unsupported D-Bus address {address!r} (want unix:path=...)")


class _Connection(DBusConnection):
    """jeepney's blocking connection with a bounded Hello (its own waits forever)."""

    def __init__(self, sock):
        DBusConnectionBase.__init__(self, sock)
        self._filters = MessageFilters()
        reply = self.send_and_get_reply(message_bus.Hello(), timeout=CALL_TIMEOUT)
        self.unique_name = _body(reply, "Hello")[0]


def _body(reply, what: str):
    if reply.header.message_type == MessageType.error:
        name = reply.header.fields.get(HeaderFields.error_name, "")
        detail = reply.body[0] if reply.body else name
        raise SystemdError(f"{what}: {detail}", name)
    return reply.body


class Systemd:
    """One connection to a systemd manager (system, or the user's)."""

    def __init__(self, conn: _Connection, user: bool):
        self.conn = conn
        self.user = user
        self._version: int | None = None
        self._job_signals: MatchRule | None = None

    @classmethod
    def connect(cls, user: bool = False) -> "Systemd":
        if not user and not booted_with_systemd():
            raise SystemdUnavailable("/run/systemd/system does not exist (this host was not "
                                     "booted with systemd; run without --systemd-cgroup)")
        address = bus_address(user)
        try:
            sock = prep_socket(_socket_path(address), timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as e:
            raise SystemdUnavailable(f"cannot connect to the {'session' if user else 'system'} "
                                     f"bus at {address}: {e}") from None
        try:
            conn = _Connection(sock)
        except (OSError, TimeoutError, SystemdError) as e:
            sock.close()
            raise SystemdUnavailable(f"no answer on the bus at {address}: {e}") from None
        self = cls(conn, user)
        try:
            self.version()
        except (TimeoutError, SystemdError) as e:
            self.close()
            raise SystemdUnavailable(f"no systemd manager on the bus at {address}: {e}") from None
        return self

    def close(self) -> None:
        self.conn.close()

    # --- plumbing ----------------------------------------------------------------
    def call(self, method: str, signature: str | None = None, body: tuple = (),
             address: DBusAddress = MANAGER):
        msg = new_method_call(address, method, signature, body)
        try:
            reply = self.conn.send_and_get_reply(msg, timeout=CALL_TIMEOUT)
        except TimeoutError:
            raise SystemdError(f"{method}: no reply from systemd in {CALL_TIMEOUT:g} s") from None
        except OSError as e:
            raise SystemdError(f"{method}: {e}") from None
        return _body(reply, method)

    def manager_property(self, name: str):
        props = DBusAddress(MANAGER.object_path, bus_name=MANAGER.bus_name, interface=PROPERTIES)
        return self.call("Get", "ss", (MANAGER.interface, name), props)[0][1]

    def version(self) -> int:
        """systemd's version number ("252.30-1~deb12u2" -> 252), -1 if unknown."""
        if self._version is None:
            text = str(self.manager_property("Version")).lstrip('"v')
            digits = ""
            for ch in text:
                if not ch.isdigit():
                    break
                digits += ch
            self._version = int(digits) if digits else -1
        return self._version

    def control_group(self) -> str:
        """The manager's own cgroup (a user manager's "/user.slice/.../user@UID.service")."""
        return str(self.manager_property("ControlGroup"))

    # --- units -----------------------------------------------------------------
    def _run_job(self, method: str, signature: str, body: tuple, unit: str) -> str:
        """Call a method that queues a job; wait (bounded) for its JobRemoved
        signal; returns the job result ("done", "failed", "canceled", ...)."""
        rule = self._job_signals
        if rule is None:        # once per connection: a second Subscribe is an error
            rule = MatchRule(type="signal", interface=MANAGER.interface, member="JobRemoved",
                             path=MANAGER.object_path)
            self.call("AddMatch", "s", (rule.serialise(),), BUS)
            self.call("Subscribe")
            self._job_signals = rule
        with self.conn.filter(rule, bufsize=64) as signals:
            job = self.call(method, signature, body)[0]
            end = time.monotonic() + JOB_TIMEOUT
            while True:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    raise SystemdError(f"timed out after {JOB_TIMEOUT:g} s waiting for systemd "
                                       f"to {method[:-4].lower()} {unit}")
                try:
                    signal = self.conn.recv_until_filtered(signals, timeout=remaining)
                except TimeoutError:
                    continue
                _id, path, _unit, result = signal.body
                if path == job:
                    return result

    def start_transient_unit(self, unit: str, properties: list) -> None:
        """StartTransientUnit(unit, "replace", properties) and wait for its job.
        A leftover failed unit of that name is reset and the start retried once
        (runc); a live one is a SystemdError named ...UnitExists."""
        for attempt in (1, 2):
            try:
                result = self._run_job("StartTransientUnit", "ssa(sv)a(sa(sv))",
                                       (unit, "replace", properties, []), unit)
                break
            except SystemdError as e:
                if not e.name.endswith(".UnitExists"):
                    raise
                if attempt == 2:
                    raise SystemdError(f"systemd unit {unit} already exists", e.name) from None
                self.reset_failed(unit)
        if result != "done":
            self.reset_failed(unit)
            raise SystemdError(f"error creating systemd unit {unit}: job {result}")

    def stop_unit(self, unit: str) -> None:
        """StopUnit and wait; a unit that is not loaded is already stopped. Then
        reset-failed, so a failed unit does not stay listed."""
        try:
            self._run_job("StopUnit", "ss", (unit, "replace"), unit)
        except SystemdError as e:
            if not e.name.endswith(".NoSuchUnit"):
                raise
        self.reset_failed(unit)

    def reset_failed(self, unit: str) -> None:
        try:
            self.call("ResetFailedUnit", "s", (unit,))
        except SystemdError as e:
            if not e.name.endswith(".NoSuchUnit"):
                raise

    def set_unit_properties(self, unit: str, properties: list, runtime: bool = True) -> None:
        if properties:
            self.call("SetUnitProperties", "sba(sv)", (unit, runtime, properties))

    def attach_processes(self, unit: str, subcgroup: str, pids: list[int]) -> None:
        """AttachProcessesToUnit: move pids into the unit's cgroup (or its
        sub-cgroup), as systemd would (runc's AddPid)."""
        self.call("AttachProcessesToUnit", "ssau", (unit, subcgroup, pids))

    def unit_loaded(self, unit: str) -> bool:
        try:
            self.call("GetUnit", "s", (unit,))
            return True
        except SystemdError as e:
            if e.name.endswith(".NoSuchUnit"):
                return False
            raise
