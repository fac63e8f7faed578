"""Test-wide settings, applied before JAX starts.

* `lab.setup()`, as the commands call it: XLA's quicker CPU settings (lab.experiment.cache.quick_compiles; the
  tests run tiny games for few steps, so compiling is most of their time), one CPU device per core, the lab's
  random keys, the compilation cache.
* pytest-xdist (`--dist loadgroup`) keeps each test module on one worker, so a module's fixtures
  compile once, except the notebooks: each notebook is a group of its own and they spread.
* The persistent compilation cache lives in one folder for the session, shared by the pytest-xdist
  workers and the commands the tests start: a program that two tests build is compiled once.
"""

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("LAB_CACHE", str(Path(tempfile.gettempdir()) / f"lab-test-cache-{os.getuid()}"))

import lab  # noqa: E402  (after the environment is set)

lab.setup()


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items):
    for item in items:
        group = item.nodeid if "test_runs_in_small_mode" in item.nodeid else item.module.__name__
        item.add_marker(pytest.mark.xdist_group(group))
