"""Reading small files (state.json, /proc and cgroupfs entries) with plain
syscalls: open() builds a buffered text stack per file, a cost that shows
when `list` reads three files for each of hundreds of containers."""
import os


def read_small(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
