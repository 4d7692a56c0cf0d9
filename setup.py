"""setuptools reads cffi_modules from setup() (the shim, _native/build.py), and
builds the waiting init here: _native/init.c as a static program, installed as
pyrunc/_init (see pyrunc/process/waiter.py). It must run in any rootfs, so it
links nothing dynamically; musl keeps it at about 13 kB (glibc: 700 kB)."""
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildWithInit(build_py):
    def run(self):
        super().run()
        cc = shutil.which("musl-gcc")
        if cc is None:  # pyrunc still works: init then waits in the interpreter
            self.warn("musl-gcc not found (Debian: musl-tools): pyrunc/_init not built")
            return
        out = os.path.join(self.build_lib, "pyrunc", "_init")
        # the kernel's uapi headers (linux/seccomp.h) after musl's own
        subprocess.run([cc, "-static", "-Os", "-s", "-Wall", "-Werror",
                        "-idirafter", "/usr/include",
                        "-idirafter", f"/usr/include/{_multiarch()}",
                        "-o", out, os.path.join(HERE, "_native", "init.c")], check=True)


def _multiarch() -> str:
    try:
        return subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return os.uname().machine + "-linux-gnu"


setup(cffi_modules=["_native/build.py:ffibuilder"], cmdclass={"build_py": BuildWithInit})
