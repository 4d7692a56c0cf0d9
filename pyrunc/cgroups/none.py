"""No cgroup at all: what an unprivileged (rootless) caller gets when its
config asks for no resources, since it may not write to /sys/fs/cgroup
(runc's rootless mode does the same)."""


class NoCgroup:
    path = ""

    def check_new(self) -> None:
        pass

    def create(self) -> None:
        pass

    def to_dict(self) -> None:
        return None

    def intent(self) -> None:
        return None

    def add_process(self, pid: int) -> None:
        pass

    def apply_devices(self, rules) -> None:
        pass

    def apply_resources(self, spec=None, **_options) -> None:
        pass

    def apply_pending(self) -> None:
        pass

    def kill_all(self, sig: int = 9) -> None:
        pass

    def destroy(self) -> None:
        pass
