"""Importing the lab changes nothing in the process: `lab.setup()` does (issue 33)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("games", "curricula", "lab")

IMPORT_ALL = """
import importlib, json, os, pkgutil
import gymnasium  # a dependency's own import sets PYGAME_HIDE_SUPPORT_PROMPT: before the snapshot
import jax

environ, config = dict(os.environ), dict(jax.config.values)
for package in ("games", "curricula", "lab"):
    for info in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
        importlib.import_module(info.name)
changed_env = sorted(k for k in set(environ) | set(os.environ) if environ.get(k) != os.environ.get(k))
changed_config = sorted(k for k, v in jax.config.values.items() if repr(config.get(k)) != repr(v))
jax.config.update("jax_num_cpu_devices", 2)  # raises once JAX has started: nothing computed at import
import lab
lab.setup()
print(json.dumps({"env": changed_env, "config": changed_config, "devices": jax.device_count(),
                  "threefry_partitionable": jax.config.jax_threefry_partitionable}))
"""


def test_importing_every_module_changes_no_setting_and_setup_does():
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "LAB_CPU_DEVICES")}
    done = subprocess.run([sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=dict(env, JAX_PLATFORMS="cpu"))
    assert done.returncode == 0, done.stderr
    import json

    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["env"] == [] and seen["config"] == [], seen
    assert seen["devices"] == 2 and seen["threefry_partitionable"] is False  # setup() chose them, after the imports


def test_no_module_imports_jax_internals():
    users = [str(path.relative_to(ROOT)) for package in (*PACKAGES, "tests", "benchmarks")
             for path in (ROOT / package).rglob("*.py") if "jax._src" in path.read_text()]
    assert users == [str(Path(__file__).relative_to(ROOT))], users  # this file names it, in the line above


# games <- curricula <- lab.core <- components <- analysis <- experiment <- report, cli (DESIGN.md)
LAYERS = [("games",), ("curricula",), ("lab.core",),
          ("lab.controls", "lab.interventions", "lab.curriculum", "lab.dro", "lab.merging", "lab.transmission"),
          ("lab.analysis",),
          ("lab.experiment",), ("lab.report", "lab.cli", "lab.play", "lab")]


def layer(module: str) -> int:
    """The layer of the longest name that `module` is or is inside of."""
    found = [(len(name), i) for i, names in enumerate(LAYERS) for name in names
             if module == name or module.startswith(name + ".")]
    return max(found)[1]


def is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_dependencies_point_one_way():
    """No module imports from a layer above its own (lab.merging imported lab.experiment: WARP's runner, checkpoints)."""
    import ast

    upward = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.module and not node.level:  # `from lab import dro`: lab.dro
                    names = [f"{node.module}.{a.name}" if is_module(f"{node.module}.{a.name}") else node.module
                             for a in node.names]
                upward += [f"{module} imports {name}" for name in names if name.split(".")[0] in PACKAGES
                           and layer(name) > layer(module)]
    assert upward == [], upward
