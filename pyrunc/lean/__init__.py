"""Start-up stand-ins for standard-library modules whose import would cost
every runtime command milliseconds (json, dataclasses, socket, signal), and
plain-syscall reads of small files and /proc."""
