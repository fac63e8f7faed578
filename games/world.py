"""A world: the referents a game is played on, their train/test split and the input distribution over train.

A referent is what the speaker talks about: an attribute-value object `[K]` (int) in the games
over object spaces, a given feature vector `[d]` (float) in `game.kind=features`. `attributes`
are integer attributes `[n, K]` of the referents when the world has them (the objects
themselves; a feature set's labels): the language metrics (topsim, posdis, bosdis), compositional
splits, attribute groups and the values axis read them. Each game kind makes its world
(games.registry.world_of).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from games import distributions, objects, splits


@dataclass(frozen=True)
class World:
    n_attributes: int  # K of `attributes` (0 without them)
    n_values: int  # values per attribute, 0..n_values-1 (0 without attributes)
    objects: np.ndarray  # [n, ...] every referent of the world: objects [n, K] int, or feature vectors [n, d] float32
    train: np.ndarray  # [n_train] indices into objects
    test: np.ndarray  # [n_test] indices into objects
    train_probs: np.ndarray  # [n_train] input distribution over the train objects
    attributes: np.ndarray | None = None  # [n, K] int attributes of the referents (the objects themselves), or None
    validation: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # [n_validation] held out of train

    @property
    def train_objects(self) -> np.ndarray:
        return self.objects[self.train]

    @property
    def validation_objects(self) -> np.ndarray:
        return self.objects[self.validation]

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
    validation_fraction: float = 0.0,
) -> World:
    """Objects (all V^K, or `n_objects` sampled), split by `split` (and a validation part held out of train), probs by
    `distribution` over what stays in train.

    Everything is deterministic in `seed`.
    """
    objs = objects.object_set(n_attributes, n_values, n_objects, seed)
    train, test = splits.split(objs, n_values, split, test_fraction, seed)
    train, validation = splits.validation_split(objs, n_values, split, train, validation_fraction, seed)
    probs = distributions.make(distribution, len(train), zipf_exponent, seed)
    return World(n_attributes, n_values, objs, train, test, probs, attributes=objs, validation=validation)


def attribute_world(config) -> World:
    """The world of attribute-value objects a `GameConfig` describes."""
    return make_world(config.n_attributes, config.n_values, config.n_objects, config.split, config.test_fraction,
                      config.distribution, config.zipf_exponent, config.seed, config.validation_fraction)
