"""Checkpoints: the final parameters of every seed of a run, in one `.npz` (no pickle).

Arrays are stored under their pytree path (`sender/encoder/kernel`...) with a leading seed
axis; loading rebuilds the agents from the run's config and checks every shape.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from lab.agents import Receiver, Sender, make_agents
from lab.config import Config

FILENAME = "checkpoint.npz"


def _flat(prefix: str, state) -> dict[str, np.ndarray]:
    leaves, _ = jax.tree_util.tree_flatten_with_path(state)
    return {prefix + jax.tree_util.keystr(path, simple=True, separator="/"): np.asarray(leaf) for path, leaf in leaves}


def save(path: str | Path, sender_params, receiver_params, seeds) -> None:
    """Write stacked parameters `[n_seeds, ...]` atomically."""
    arrays = {**_flat("sender/", sender_params), **_flat("receiver/", receiver_params), "seeds": np.asarray(seeds)}
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _fill(prefix: str, template, arrays, index) -> nnx.State:
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    filled = []
    for path, leaf in leaves:
        name = prefix + jax.tree_util.keystr(path, simple=True, separator="/")
        if name not in arrays:
            raise ValueError(f"checkpoint has no array {name!r}; it was written for another agent configuration")
        value = arrays[name] if index is None else arrays[name][index]
        expected = leaf.shape if index is not None else (arrays[name].shape[0], *leaf.shape)
        if value.shape != expected:
            raise ValueError(f"checkpoint array {name!r} has shape {value.shape}, the config needs {expected}")
        filled.append(value)
    return jax.tree_util.tree_unflatten(treedef, filled)


def load(path: str | Path, config: Config, index: int | None = None):
    """(sender_params, receiver_params, seeds): stacked over seeds, or seed number `index` of the run."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read checkpoint {str(path)!r}: {error}") from None
    sender, receiver = make_agents(config, jax.random.key(0))
    receiver_template = nnx.state(receiver)
    if population(config):  # the listeners of a population-control run are stacked: [n_listeners, ...]
        n = config.train.n_listeners
        receiver_template = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct((n, *leaf.shape), leaf.dtype), receiver_template)
    seeds = arrays["seeds"]
    if index is not None and not 0 <= index < len(seeds):
        raise ValueError(f"seed index {index} out of range: the checkpoint holds {len(seeds)} seeds")
    return _fill("sender/", nnx.state(sender), arrays, index), _fill("receiver/", receiver_template, arrays, index), seeds


def population(config: Config) -> bool:
    return config.train.control == "population"


def load_agents(path: str | Path, config: Config, index: int = 0, listener: int = 0) -> tuple[Sender, Receiver]:
    """The trained sender and receiver of one seed, as NNX modules (listener number `listener` of a population-control run)."""
    sender_params, receiver_params, _ = load(path, config, index)
    if population(config):
        if not 0 <= listener < config.train.n_listeners:
            raise ValueError(f"listener {listener} out of range: the run has {config.train.n_listeners} listeners per seed")
        receiver_params = jax.tree.map(lambda leaf: leaf[listener], receiver_params)
    sender, receiver = make_agents(config, jax.random.key(0))
    nnx.update(sender, sender_params)
    nnx.update(receiver, receiver_params)
    return sender, receiver
