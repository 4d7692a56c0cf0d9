"""pyrunc: a runc-compatible OCI container runtime written in Python."""
__version__ = "0.1.0"
# the runtime-spec version pyrunc implements (state, features, `spec`, --version)
SPEC_VERSION = "1.3.0"
