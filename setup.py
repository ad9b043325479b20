# The C kernels are compiled by cffi (see build.py); everything else is in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["build.py:ffibuilder"])
