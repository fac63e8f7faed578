"""A world: the object set, its train/test split and the input distribution over train."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from games import distributions, objects, splits


@dataclass(frozen=True)
class World:
    n_attributes: int
    n_values: int
    objects: np.ndarray  # [n, K] every object of the world
    train: np.ndarray  # [n_train] indices into objects
    test: np.ndarray  # [n_test] indices into objects
    train_probs: np.ndarray  # [n_train] input distribution over the train objects

    @property
    def train_objects(self) -> np.ndarray:
        return self.objects[self.train]

    @property
    def test_objects(self) -> np.ndarray:
        return self.objects[self.test]


def make_world(
    n_attributes: int,
    n_values: int,
    n_objects: int = 0,
    split: str = "compositional",
    test_fraction: float = 0.2,
    distribution: str = "uniform",
    zipf_exponent: float = 1.0,
    seed: int = 0,
) -> World:
    """Objects (all V^K, or `n_objects` sampled), split by `split`, probs by `distribution`.

    Everything is deterministic in `seed`.
    """
    objs = objects.object_set(n_attributes, n_values, n_objects, seed)
    train, test = splits.split(objs, n_values, split, test_fraction, seed)
    probs = distributions.make(distribution, len(train), zipf_exponent, seed)
    return World(n_attributes, n_values, objs, train, test, probs)


def world_of(config) -> World:
    """The world a `GameConfig` describes."""
    return make_world(config.n_attributes, config.n_values, config.n_objects, config.split, config.test_fraction,
                      config.distribution, config.zipf_exponent, config.seed)
