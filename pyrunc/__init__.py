"""pyrunc: a runc-compatible OCI container runtime written in Python."""
__version__ = "0.1.0"
# the runtime-spec version pyrunc implements (state, features, `spec`, --version)
SPEC_VERSION = "1.3.0"

# Fault injection: the named points of create, run and exec at which the
# reliability tests stop the runtime (tests/tools/pyrunc_faults.py, a test-only
# entry point, sets the hook). The `pyrunc` command never does: a point then
# costs one call and one comparison, and nothing a container controls reaches it.
_fault_hook = None


def fault_point(name: str) -> None:
    if _fault_hook is not None:
        _fault_hook(name)
