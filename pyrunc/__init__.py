"""pyrunc: a runc-compatible OCI container runtime written in Python."""
__version__ = "0.1.0"
