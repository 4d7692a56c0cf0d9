# The only reason this file exists: setuptools reads cffi_modules from setup().
from setuptools import setup

setup(cffi_modules=["_native/build.py:ffibuilder"])
