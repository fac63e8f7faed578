"""Checkpoints: the final parameters of every run, in one `.npz` (no pickle).

Arrays are stored under their pytree path (`senders/encoder/kernel`, `receivers/...`) with the
leading axes `[runs, P]` (senders) and `[runs, Q]` (receivers) of a population of P senders and Q
receivers; loading rebuilds the agents from the run's config and checks every shape.

A file is checked against what it claims before any array is read (`inspect`: the zip's and each array's
headers): no pickled objects, sizes that agree with the headers and with the file, and, on loading, every
name, shape and dtype the config asks for. A damaged, truncated or foreign file is one line (ValueError), never
a traceback or a large allocation.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
from flax import nnx

from lab.core.agents import Receiver, Sender
from lab.core.spec import world_game_agents
from lab.merging import lineage
from lab.merging.lineage import Lineage
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


class Header(NamedTuple):
    shape: tuple[int, ...]
    dtype: np.dtype


# Arrays may claim at most this much more than the file holds: the lab writes them uncompressed, and parameters
# compress little; a few megabytes of zeros compressed can claim gigabytes.
MAX_EXPANSION = 4
SLACK_BYTES = 1 << 20
BROKEN = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, KeyError)


def _broken(path: Path, what: str) -> ValueError:
    return ValueError(f"checkpoint {str(path)!r} {what}; write it again (rerun the experiment)")


def inspect(path: str | Path) -> dict[str, Header]:
    """Every array's name, shape and dtype, from the headers alone; a ValueError (one line) for a file that is not a
    checkpoint the lab can read: not a zip, truncated, a pickled object, or sizes the file cannot hold."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no checkpoint {str(path)!r}")
    headers, claimed = {}, 0
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    raise _broken(path, f"holds {info.filename[:60]!r}, which is not an array")
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                    shape, _, dtype = read_header(member, max_header_size=10_000)
                    header_size = member.tell()
                if dtype.hasobject:
                    raise _broken(path, f"holds Python objects in {info.filename[:60]!r} (the lab reads no pickle)")
                size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize  # int64: a header can claim any shape
                if info.file_size != header_size + size:
                    raise _broken(path, f"is damaged: {info.filename[:60]!r} claims {size} bytes and holds "
                                        f"{info.file_size - header_size}")
                claimed += size
                headers[info.filename[:-len(".npy")]] = Header(tuple(shape), dtype)
    except BROKEN as error:
        if isinstance(error, ValueError) and str(error).startswith("checkpoint "):
            raise
        raise _broken(path, f"is not a readable checkpoint ({type(error).__name__}: {str(error)[:80]})") from None
    if claimed > MAX_EXPANSION * path.stat().st_size + SLACK_BYTES:
        raise _broken(path, f"claims {claimed / 2**30:.1f} GiB of arrays in {path.stat().st_size / 2**20:.1f} MiB")
    return headers


def read(path: str | Path, names=None) -> dict[str, np.ndarray]:
    """The arrays `names` (default: all) of a checkpoint, after `inspect`; a damaged one is a ValueError (one line)."""
    path = Path(path)
    headers = inspect(path)
    names = list(headers) if names is None else list(names)
    missing = [name for name in names if name not in headers]
    if missing:
        raise _broken(path, f"has no array {missing[0]!r}")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in names}
    except BROKEN as error:  # a bit flipped in the data: the zip's checksum
        raise _broken(path, f"is damaged ({type(error).__name__}: {str(error)[:80]})") from None


def _expected(prefix: str, template, runs: int) -> dict[str, Header]:
    leaves, _ = jax.tree_util.tree_flatten_with_path(template)
    return {prefix + jax.tree_util.keystr(path, simple=True, separator="/"): Header((runs, *leaf.shape), np.dtype(leaf.dtype))
            for path, leaf in leaves}


def _fill(prefix: str, template, arrays, index) -> nnx.State:
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    names = [prefix + jax.tree_util.keystr(path, simple=True, separator="/") for path, _ in leaves]
    return jax.tree_util.tree_unflatten(treedef, [arrays[name] if index is None else arrays[name][index] for name in names])


def load(path: str | Path, config, index: int | None = None):
    """(senders, receivers, seeds): `[runs, P, ...]`, `[runs, Q, ...]`, or run number `index`'s `[P, ...]`, `[Q, ...]`.

    Every array's name, shape and dtype is checked against the config before any is read."""
    path = Path(path)
    headers = inspect(path)
    seeds = headers.get("seeds")
    if seeds is None or len(seeds.shape) != 1 or seeds.dtype.kind not in "iu":
        raise _broken(path, "has no array 'seeds' of whole numbers")
    runs = seeds.shape[0]
    if index is not None and not 0 <= index < runs:
        raise ValueError(f"seed index {index} out of range: the checkpoint holds {runs} seeds")
    _, _, agents = world_game_agents(config.game, config.agents)
    key = jax.random.key(0)
    p = config.population
    stacked = lambda state, n: jax.tree.map(lambda leaf: jax.ShapeDtypeStruct((n, *leaf.shape), leaf.dtype), state)  # noqa: E731
    sender, receiver = stacked(jax.eval_shape(agents.init_sender, key), p.n_senders), stacked(jax.eval_shape(agents.init_receiver, key), p.n_receivers)
    expected = {**_expected("senders/", sender, runs), **_expected("receivers/", receiver, runs)}
    for name, header in expected.items():
        if name not in headers:
            raise ValueError(f"checkpoint has no array {name!r}; it was written for another agent configuration")
        if headers[name] != header:
            raise ValueError(f"checkpoint array {name!r} has shape {headers[name].shape} ({headers[name].dtype}), "
                             f"the config needs {header.shape} ({header.dtype})")
    arrays = read(path, ["seeds", *expected])
    return _fill("senders/", sender, arrays, index), _fill("receivers/", receiver, arrays, index), arrays["seeds"]


def lineages(path: str | Path) -> list[Lineage]:
    """Each run's lineage (lab.merging.lineage): the ancestor it was fine-tuned from, as its checkpoint records it."""
    recorded = (lineage.ANCESTOR, lineage.SOURCE) if lineage.ANCESTOR in inspect(path) else ()
    arrays = read(path, ["seeds", *recorded])
    return lineage.of(arrays, len(arrays["seeds"]))


def load_agents(path: str | Path, config, index: int = 0, sender: int = 0, receiver: int = 0) -> tuple[Sender, Receiver]:
    """The trained sender and receiver of one run, as NNX modules (members `sender`, `receiver` of a population);
    refused (ValueError) for a run that diverged (lab.experiment.divergence): its parameters are not numbers."""
    senders, receivers, _ = load(path, config, index)
    if "diverged_at" in inspect(path):
        step = int(read(path, ["diverged_at"])["diverged_at"][index])
        if step >= 0:
            raise ValueError(f"seed index {index} diverged at step {step}: its parameters are not finite; choose another")
    p = config.population
    for side, member, n in (("sender", sender, p.n_senders), ("receiver", receiver, p.n_receivers)):
        if not 0 <= member < n:
            raise ValueError(f"{side} {member} out of range: the run has {n} {side}s per seed")
    _, _, agents = world_game_agents(config.game, config.agents)
    pick = lambda tree, i: jax.tree.map(lambda leaf: leaf[i], tree)  # noqa: E731
    return agents.sender(pick(senders, sender)), agents.receiver(pick(receivers, receiver))
