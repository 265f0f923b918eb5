"""The one part of the build pyproject.toml cannot declare on every setuptools pip may pick:
the optional C extension of the keyed column loops (envforge/db/_keyed.c). Optional: when it
does not compile (no C compiler), the install still succeeds and envforge runs the same loops
in Python (envforge/db/keyed_loops.py)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("envforge.db._keyed", sources=["envforge/db/_keyed.c"],
                             depends=["envforge/db/_keyed_blake2b.h"], optional=True)])
