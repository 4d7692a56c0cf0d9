"""Package data: the OCI runtime-spec v1.3 JSON schemas (see pyrunc.spec.validate)."""
