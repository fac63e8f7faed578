"""Test-wide settings, applied before JAX starts.

* XLA compiles with its backend optimizations at level 0: the tests run tiny games for few
  steps, so compiling is most of their time and level 0 compiles about twice as fast.
* The persistent compilation cache lives in one folder for the session, shared by the pytest-xdist
  workers: a program that two tests build (the same tiny config) is compiled once.
"""

import os
import tempfile
from pathlib import Path

if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
os.environ.setdefault("LAB_CACHE", str(Path(tempfile.gettempdir()) / f"lab-test-cache-{os.getuid()}"))

from lab.experiment import cache  # noqa: E402  (after the environment is set)

cache.enable()
