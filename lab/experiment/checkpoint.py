"""Checkpoints: the final parameters of every run of a population, in one `.npz` (no pickle).

Arrays are stored under their pytree path (`senders/encoder/kernel`, `receivers/...`) with the
leading axes `[runs, P]` (senders) and `[runs, Q]` (receivers) of a population of P senders and Q
receivers; loading rebuilds the agents from the run's config and checks every shape.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from flax import nnx

from lab.core.agents import Agents, Receiver, Sender
from lab.experiment.io import atomic_path

FILENAME = "checkpoint.npz"
SIDES = ("senders", "receivers")


def _flat(prefix: str, state) -> dict[str, np.ndarray]:
    leaves, _ = jax.tree_util.tree_flatten_with_path(state)
    return {prefix + jax.tree_util.keystr(path, simple=True, separator="/"): np.asarray(leaf) for path, leaf in leaves}


def save(path: str | Path, senders, receivers, seeds, extra: dict[str, np.ndarray] | None = None) -> None:
    """Write stacked parameters `[runs, P, ...]`, `[runs, Q, ...]` atomically; `extra` arrays are stored beside them."""
    arrays = {**_flat("senders/", senders), **_flat("receivers/", receivers), "seeds": np.asarray(seeds), **(extra or {})}
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


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


def read(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read checkpoint {str(path)!r}: {error}") from None


def load(path: str | Path, config, index: int | None = None):
    """(senders, receivers, seeds): `[runs, P, ...]`, `[runs, Q, ...]`, or run number `index`'s `[P, ...]`, `[Q, ...]`."""
    arrays = read(path)
    agents = Agents(config.game, config.agents)
    key = jax.random.key(0)
    p = config.population
    stacked = lambda state, n: jax.tree.map(lambda leaf: jax.ShapeDtypeStruct((n, *leaf.shape), leaf.dtype), state)  # noqa: E731
    seeds = arrays["seeds"]
    if index is not None and not 0 <= index < len(seeds):
        raise ValueError(f"seed index {index} out of range: the checkpoint holds {len(seeds)} seeds")
    senders = _fill("senders/", stacked(jax.eval_shape(agents.init_sender, key), p.n_senders), arrays, index)
    receivers = _fill("receivers/", stacked(jax.eval_shape(agents.init_receiver, key), p.n_receivers), arrays, index)
    return senders, receivers, seeds


def load_agents(path: str | Path, config, index: int = 0, sender: int = 0, receiver: int = 0) -> tuple[Sender, Receiver]:
    """The trained sender and receiver of one run, as NNX modules (members `sender`, `receiver` of a population)."""
    senders, receivers, _ = load(path, config, index)
    p = config.population
    for side, member, n in (("sender", sender, p.n_senders), ("receiver", receiver, p.n_receivers)):
        if not 0 <= member < n:
            raise ValueError(f"{side} {member} out of range: the run has {n} {side}s per seed")
    agents = Agents(config.game, config.agents)
    pick = lambda tree, i: jax.tree.map(lambda leaf: leaf[i], tree)  # noqa: E731
    return agents.sender(pick(senders, sender)), agents.receiver(pick(receivers, receiver))
