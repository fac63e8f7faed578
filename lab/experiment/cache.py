"""JAX's persistent compilation cache, on by default for `lab run`, `lab sweep`, the studies and the notebooks.

A config compiled once is not compiled again in a new process (a second `lab run`, a notebook
kernel restart): the compiled programs are kept in a folder, by default `~/.cache/lewis-lab/jax`.
Set `LAB_CACHE=/another/folder` to move it, or `LAB_CACHE=off` to turn it off.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

DEFAULT = Path.home() / ".cache" / "lewis-lab" / "jax"
OFF = ("off", "0", "false", "no", "none", "")


def folder() -> Path | None:
    """Where the cache lives under the current environment, or None when it is off."""
    value = os.environ.get("LAB_CACHE")
    if value is None:
        return DEFAULT
    return None if value.strip().lower() in OFF else Path(value).expanduser()


def enable() -> Path | None:
    """Turn the persistent cache on (idempotent); returns its folder, or None when `LAB_CACHE=off`."""
    path = folder()
    if path is None:
        return None
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
