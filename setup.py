"""The one part of the build pyproject.toml cannot declare on every setuptools pip may pick:
the optional C extensions, the keyed column loops (envforge/db/keyed_c.c) and the binary COPY
row splitter (envforge/db/copyrows_c.c). Optional: when they do not compile (no C compiler),
the install still succeeds and envforge runs the same loops in Python
(envforge/db/keyed_loops.py) and copies every table in text COPY."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("envforge.db.keyed_c", sources=["envforge/db/keyed_c.c"],
                             depends=["envforge/db/keyed_c_blake2b.h"], optional=True),
                   # binary COPY rows (envforge/db/copy_binary.py); without it, text COPY
                   Extension("envforge.db.copyrows_c", sources=["envforge/db/copyrows_c.c"],
                             optional=True)])
