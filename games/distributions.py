"""Input distributions over an object set: `probs: [n]`, non-negative, summing to one.

Non-uniform worlds are what DRO and curricula act on; the trainer samples targets from a
distribution held in its loop state, which starts as one of these.
"""

from __future__ import annotations

import numpy as np

DISTRIBUTIONS = ("uniform", "zipf")


def uniform(n_objects: int) -> np.ndarray:
    return np.full(n_objects, 1.0 / n_objects, dtype=np.float32)


def zipf(n_objects: int, exponent: float, seed: int) -> np.ndarray:
    """p(object of rank r) ∝ r^-exponent, ranks a seeded permutation of the objects."""
    ranks = np.random.default_rng(seed).permutation(n_objects) + 1
    weights = ranks.astype(np.float64) ** -float(exponent)
    return (weights / weights.sum()).astype(np.float32)


def group_skew(objects: np.ndarray, attribute: int, weights) -> np.ndarray:
    """p(x) ∝ weights[x[attribute]]: whole groups (one value of one attribute) made rarer or commoner."""
    w = np.asarray(weights, dtype=np.float64)[np.asarray(objects)[:, attribute]]
    return (w / w.sum()).astype(np.float32)


def make(kind: str, n_objects: int, exponent: float = 1.0, seed: int = 0) -> np.ndarray:
    if kind == "uniform":
        return uniform(n_objects)
    if kind == "zipf":
        return zipf(n_objects, exponent, seed)
    raise ValueError(f"unknown distribution {kind!r}; allowed: {', '.join(DISTRIBUTIONS)}")
