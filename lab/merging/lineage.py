"""Lineage: which trained pair a run was fine-tuned from, recorded in its checkpoint, checked before a merge.

Weights of agents trained from independent random starts do not average: their languages are
symbol permutations of each other (../shared/science/algorithms.md §0; WARM's Remark 1: not even
from a shared random start). Merging is for agents fine-tuned from one trained ancestor, so every
fine-tuned run records a digest of its ancestor's parameters and where the ancestor came from:

    checkpoint.save(path, senders, receivers, seeds, extra=lineage.extra(lineages))   # lab.experiment.checkpoint
    checkpoint.lineages(path)                            # [Lineage per run]
    lineage.check_common([...], names=[...])             # warns (MergeWarning) unless one ancestor is shared

A run trained from scratch has `ancestor == ""`.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from typing import Sequence

import jax
import numpy as np

ANCESTOR, SOURCE = "lineage/ancestor", "lineage/source"


class MergeWarning(UserWarning):
    """A merge of agents that share no trained ancestor, or whose interpolation barrier is above the gate."""


@dataclass(frozen=True)
class Lineage:
    ancestor: str = ""  # digest of the ancestor's parameters (sender and receiver); "" when trained from scratch
    source: str = ""  # where the ancestor came from (a checkpoint path and run, a study step), for people


def digest(params) -> str:
    """16 hex digits of SHA-256 over every leaf's path, dtype, shape and bytes: equal iff the parameters are."""
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        array = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{jax.tree_util.keystr(path)}:{array.dtype}:{array.shape};".encode())
        h.update(array.tobytes())
    return h.hexdigest()[:16]


def fine_tuned_from(ancestor_params, source: str, n: int = 1) -> list[Lineage]:
    """The lineage of n runs started from `ancestor_params` (a `Pair`, or any pytree of the ancestor)."""
    return [Lineage(digest(ancestor_params), source)] * n


def extra(lineages: Sequence[Lineage]) -> dict[str, np.ndarray]:
    """Arrays `[runs]` of strings for `checkpoint.save(..., extra=...)` (stored without pickle)."""
    return {ANCESTOR: np.array([x.ancestor for x in lineages], dtype=str),
            SOURCE: np.array([x.source for x in lineages], dtype=str)}


def of(arrays: dict[str, np.ndarray], n: int) -> list[Lineage]:
    """Each of n runs' lineage from a checkpoint's arrays (lab.experiment.checkpoint.lineages reads them); the runs of
    a checkpoint written without one were trained from scratch."""
    if ANCESTOR not in arrays:
        return [Lineage()] * n
    return [Lineage(str(a), str(s)) for a, s in zip(arrays[ANCESTOR], arrays[SOURCE])]


def common_ancestor(lineages: Sequence[Lineage]) -> str | None:
    """The digest every lineage shares, or None when one was trained from scratch or two ancestors differ."""
    ancestors = {x.ancestor for x in lineages}
    return ancestors.pop() if len(ancestors) == 1 and "" not in ancestors else None


def check_common(lineages: Sequence[Lineage], names: Sequence[str] | None = None) -> bool:
    """True when the agents share one trained ancestor; otherwise warn (MergeWarning) and return False."""
    if common_ancestor(lineages) is not None:
        return True
    names = list(names) if names is not None else [f"agent {i}" for i in range(len(lineages))]
    described = ", ".join(f"{name}: {x.ancestor or 'from scratch'}" for name, x in zip(names, lineages))
    warnings.warn(f"merging agents without a common trained ancestor ({described}): independently trained agents "
                  f"speak symbol-permuted languages and their weights do not average; see the barrier", MergeWarning,
                  stacklevel=3)
    return False
