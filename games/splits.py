"""Deterministic train/test splits of an object set, and a validation split taken from train.

* `iid`: a seeded random partition.
* `compositional`: test objects are unseen combinations, and every value of every attribute
  still occurs in train (Chaabouni et al. 2020, "Compositionality and Generalization in Emergent
  Languages"), so a compositional language can name every test object.
* validation (`validation_split`): held out of train the same way (unseen combinations under a
  compositional split, a random part under iid), disjoint from both; what early stopping watches
  (the listener refit of Rita et al. 2022 stops on it) without touching test.
"""

from __future__ import annotations

import numpy as np

SPLIT_KINDS = ("compositional", "iid", "none")  # how a world is split (the splits themselves are named train, test)


def n_test_objects(n_objects: int, test_fraction: float) -> int:
    return int(round(n_objects * test_fraction))


def iid_split(n_objects: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted index arrays (train, test) of a random partition."""
    perm = np.random.default_rng(seed).permutation(n_objects)
    n_test = n_test_objects(n_objects, test_fraction)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def compositional_split(
    objects: np.ndarray, n_values: int, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted index arrays (train, test); every (attribute, value) pair of the set stays in train.

    Greedy in a seeded random order: an object moves to test only while each of its
    attribute values occurs at least twice in what remains of train.
    """
    objects = np.asarray(objects)
    n_objects, n_attributes = objects.shape
    if n_attributes < 2:
        raise ValueError("a compositional split needs n_attributes >= 2 (combinations of values)")
    test = _unseen_combinations(objects, np.arange(n_objects), n_test_objects(n_objects, test_fraction), n_values,
                                np.random.default_rng(seed), "test", "test_fraction")
    return np.setdiff1d(np.arange(n_objects), test), test


def _unseen_combinations(objects: np.ndarray, pool: np.ndarray, n_out: int, n_values: int, rng: np.random.Generator,
                         name: str, field: str) -> np.ndarray:
    """Sorted indices of `n_out` objects of `pool`, chosen greedily in a random order while each of their attribute
    values still occurs at least once in the rest of the pool."""
    n_attributes = objects.shape[1]
    counts = np.zeros((n_attributes, n_values), dtype=np.int64)
    np.add.at(counts, (np.arange(n_attributes)[None, :], objects[pool]), 1)
    attributes = np.arange(n_attributes)
    out = []
    for i in pool[rng.permutation(len(pool))]:
        if len(out) == n_out:
            break
        if np.all(counts[attributes, objects[i]] >= 2):
            counts[attributes, objects[i]] -= 1
            out.append(i)
    if len(out) < n_out:
        raise ValueError(
            f"impossible compositional split: only {len(out)} of {n_out} {name} objects can be held out "
            f"while every attribute value stays in train; lower {field}"
        )
    return np.sort(np.array(out, dtype=np.int64))


def validation_split(objects: np.ndarray, n_values: int, kind: str, train: np.ndarray, fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted index arrays (train, validation): `round(len(objects) * fraction)` objects held out of `train`, unseen
    combinations under a compositional split (every attribute value stays in what is left of train), a random part
    otherwise; deterministic in `seed` (a stream of its own: the test split does not move)."""
    n_validation = n_test_objects(len(objects), fraction)
    if n_validation == 0:
        return train, np.zeros(0, np.int64)
    rng = np.random.default_rng([seed, 1])
    if kind == "compositional":
        validation = _unseen_combinations(np.asarray(objects), np.asarray(train), n_validation, n_values, rng, "validation",
                                          "validation_fraction")
    else:
        validation = np.sort(rng.permutation(np.asarray(train))[:n_validation])
    return np.setdiff1d(train, validation), validation


def split(
    objects: np.ndarray, n_values: int, kind: str, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Dispatch on `kind` in SPLIT_KINDS; `none` trains and tests on the whole set."""
    if kind == "iid":
        return iid_split(len(objects), test_fraction, seed)
    if kind == "compositional":
        return compositional_split(objects, n_values, test_fraction, seed)
    if kind == "none":
        everything = np.arange(len(objects))
        return everything, everything
    raise ValueError(f"unknown split {kind!r}; allowed: {', '.join(SPLIT_KINDS)}")
