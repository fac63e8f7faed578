"""Object spaces: K attributes with V values each; an object is an int array `[K]`."""

from __future__ import annotations

import numpy as np

# Above this many objects, sampling distinct objects by drawing codes beats listing V^K.
_ENUMERATE_LIMIT = 10_000_000


def n_possible(n_attributes: int, n_values: int) -> int:
    """|V^K|, the number of distinct objects."""
    return int(n_values) ** int(n_attributes)


def decode(codes: np.ndarray, n_attributes: int, n_values: int) -> np.ndarray:
    """Integer codes in [0, V^K) -> objects `[n, K]` (attribute 0 is the most significant digit)."""
    codes = np.asarray(codes, dtype=np.int64)
    powers = n_values ** np.arange(n_attributes - 1, -1, -1, dtype=np.int64)
    return ((codes[:, None] // powers[None, :]) % n_values).astype(np.int32)


def encode(objects: np.ndarray, n_values: int) -> np.ndarray:
    """Objects `[n, K]` -> integer codes `[n]`, the inverse of `decode`."""
    objects = np.asarray(objects, dtype=np.int64)
    n_attributes = objects.shape[-1]
    powers = n_values ** np.arange(n_attributes - 1, -1, -1, dtype=np.int64)
    return objects @ powers


def all_objects(n_attributes: int, n_values: int) -> np.ndarray:
    """Every object of the space, in lexicographic order: `[V^K, K]`."""
    return decode(np.arange(n_possible(n_attributes, n_values)), n_attributes, n_values)


def sample_objects(n_attributes: int, n_values: int, n_objects: int, seed: int) -> np.ndarray:
    """`n_objects` distinct objects drawn uniformly from V^K, sorted: `[n_objects, K]`."""
    total = n_possible(n_attributes, n_values)
    if n_objects > total:
        raise ValueError(f"n_objects={n_objects} exceeds V^K={total} distinct objects")
    rng = np.random.default_rng(seed)
    if total <= _ENUMERATE_LIMIT:
        codes = rng.choice(total, size=n_objects, replace=False)
    else:
        codes = np.unique(rng.integers(0, total, size=2 * n_objects, dtype=np.int64))
        while codes.size < n_objects:
            more = rng.integers(0, total, size=n_objects, dtype=np.int64)
            codes = np.unique(np.concatenate([codes, more]))
        codes = rng.permutation(codes)[:n_objects]
    return decode(np.sort(codes), n_attributes, n_values)


def object_set(n_attributes: int, n_values: int, n_objects: int = 0, seed: int = 0) -> np.ndarray:
    """All V^K objects when `n_objects` is 0, else that many distinct sampled ones."""
    if n_objects == 0:
        return all_objects(n_attributes, n_values)
    return sample_objects(n_attributes, n_values, n_objects, seed)
