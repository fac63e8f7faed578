"""Groups of objects: which subpopulation each object of a world belongs to, `groups: [n_objects]` int in 0..G-1.

Worst-group evaluation and Group DRO need them, even under ERM, so they are a property of the
world (the `game.groups` field) rather than of an objective:

* `by_attribute`: one group per value of one attribute (colour 0, colour 1, ...);
* `by_frequency`: bins of equal size by training frequency, bin 0 the most frequent. Under a Zipf
  input distribution the last bin holds the rare meanings. Objects never drawn in training (the
  test split) have frequency 0 and fall in the rarest bin;
* `given`: any other grouping, an array from the user (`make_trainer(config, groups=...)`), checked
  by `check`.

Every group must have at least one train object: a group with no examples cannot be trained on,
reweighted or evaluated, so it is an error (`ConfigError`, naming the field).

    >>> import games
    >>> world = games.make_world(2, 3, split="none", distribution="zipf", seed=0)
    >>> by_attribute(world.objects, 0).tolist()
    [0, 0, 0, 1, 1, 1, 2, 2, 2]
    >>> sorted(np.bincount(by_frequency(world, 3)).tolist())
    [3, 3, 3]
"""

from __future__ import annotations

import numpy as np

from games.fields import ConfigError
from games.world import World

GROUPINGS = ("none", "attribute", "frequency", "given")


def by_attribute(objects: np.ndarray, attribute: int) -> np.ndarray:
    """`[n]`: the value of `attribute` of each object `[n, K]`."""
    return np.asarray(objects)[:, attribute].astype(np.int32)


def by_frequency(world: World, n_bins: int) -> np.ndarray:
    """`[n_objects]`: equal-size bins of the train objects ranked by training probability (0 = most frequent).

    Ties (a uniform distribution) are broken by position; objects outside train are in bin n_bins - 1.
    """
    ranks = np.empty(len(world.train), np.int64)
    ranks[np.argsort(-np.asarray(world.train_probs), kind="stable")] = np.arange(len(world.train))
    groups = np.full(len(world.objects), n_bins - 1, np.int32)
    groups[world.train] = ranks * n_bins // len(world.train)
    return groups


def check(groups, world: World, field: str = "groups") -> np.ndarray:
    """`groups` as int32 `[n_objects]`, numbered 0..G-1 with a train object in each, or a one-line ConfigError."""
    groups = np.asarray(groups)
    n = len(world.objects)
    if groups.shape != (n,) or not np.issubdtype(groups.dtype, np.integer):
        raise ConfigError(f"{field}: expected one integer group per object of the world, shape ({n},); "
                          f"got dtype {groups.dtype}, shape {groups.shape}")
    if groups.min() < 0:
        raise ConfigError(f"{field}: group {int(groups.min())} is negative; groups are numbered 0..G-1")
    counts = np.bincount(groups[world.train], minlength=int(groups.max()) + 1)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise ConfigError(f"{field}: group {int(empty[0])} has no train objects (groups {empty.tolist()} are empty); "
                          f"every group 0..{len(counts) - 1} needs at least one")
    return groups.astype(np.int32)


def groups_of(world: World, config, given=None) -> np.ndarray | None:
    """The groups a `GameConfig` asks for (None: one group), checked against the world; `given` ones win."""
    if given is not None:
        return check(given, world)
    if config.groups == "given":
        raise ConfigError("game.groups='given': the groups must be passed from Python, make_trainer(config, groups=...); "
                          "from the command line use attribute or frequency")
    if config.groups == "none":
        return None
    if config.groups == "attribute":
        groups = by_attribute(world.attributes, config.group_attribute)
        missing = sorted(set(range(world.n_values)) - set(groups[world.train].tolist()))
        if missing:
            raise ConfigError(f"game.group_attribute={config.group_attribute}: value {missing[0]} of that attribute "
                              f"occurs in no train object, so its group would have no examples "
                              f"(missing values {missing}); choose another attribute or world")
        return groups
    return check(by_frequency(world, config.frequency_bins), world, "game.frequency_bins")
