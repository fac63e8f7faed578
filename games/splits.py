"""Deterministic train/test splits of an object set.

* `iid`: a seeded random partition.
* `compositional`: test objects are unseen combinations, and every value of every attribute
  still occurs in train (Chaabouni et al. 2020, "Compositionality and Generalization in Emergent
  Languages"), so a compositional language can name every test object.
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
    n_test = n_test_objects(n_objects, test_fraction)
    if n_attributes < 2:
        raise ValueError("a compositional split needs n_attributes >= 2 (combinations of values)")
    counts = np.zeros((n_attributes, n_values), dtype=np.int64)
    np.add.at(counts, (np.arange(n_attributes)[None, :], objects), 1)
    attributes = np.arange(n_attributes)
    test = []
    for i in np.random.default_rng(seed).permutation(n_objects):
        if len(test) == n_test:
            break
        if np.all(counts[attributes, objects[i]] >= 2):
            counts[attributes, objects[i]] -= 1
            test.append(i)
    if len(test) < n_test:
        raise ValueError(
            f"impossible compositional split: only {len(test)} of {n_test} test objects can be held out "
            f"while every attribute value stays in train; lower test_fraction"
        )
    test = np.sort(np.array(test, dtype=np.int64))
    train = np.setdiff1d(np.arange(n_objects), test)
    return train, test


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
