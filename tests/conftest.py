"""Test-wide settings, applied before JAX starts.

* XLA compiles with its backend optimizations at level 1: the tests run tiny games for few
  steps, so compiling is most of their time; level 1 compiles about twice as fast as the
  default at about the same speed of the compiled steps (level 0 runs them 4x slower).
* pytest-xdist (`--dist loadgroup`) keeps each test module on one worker, so a module's fixtures
  compile once, except the notebooks: each notebook is a group of its own and they spread.
* The persistent compilation cache lives in one folder for the session, shared by the pytest-xdist
  workers: a program that two tests build (the same tiny config) is compiled once.
"""

import os
import tempfile
from pathlib import Path

if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=1").strip()
os.environ.setdefault("LAB_CACHE", str(Path(tempfile.gettempdir()) / f"lab-test-cache-{os.getuid()}"))

from lab.experiment import cache  # noqa: E402  (after the environment is set)

cache.enable()


def pytest_collection_modifyitems(items):
    import pytest

    for item in items:
        group = item.nodeid if "test_runs_in_small_mode" in item.nodeid else item.module.__name__
        item.add_marker(pytest.mark.xdist_group(group))
