"""Named difficulty axes a curriculum can index: units, a difficulty score per unit, CDF levels and buckets.

An axis is a set of *units* a curriculum distributes its draws over, each with a difficulty
score (higher is harder) and a prior (how often the unit is played without a curriculum):

Each game kind names the axes it has and its default (`AXES`, `DEFAULT_AXIS` of its class,
games.registry); this module builds them:

* target axes, whose units are the train objects (the prior is the world's train distribution,
  and a distribution q over them becomes `EnvParams.probs`):
  - `values`: the values per attribute an object needs in play, max_k x_k + 1 (of its attributes).
    A curriculum that admits the lowest levels first plays a world that grows value by value;
  - `rarity`: -log p(x) under the world's (skewed: game.distribution=zipf) train distribution;
    rare objects are hard (Platanios et al. 2019's word rarity, for objects);
* episode axes of a referential game, whose units are levels (uniform prior; q becomes
  a per-episode distribution over levels in `EnvParams`):
  - `distractors`: d = 1..n_distractors distractors shown beside the target (`shown_probs`);
  - `similarity`: the distractors share at most s = 0..K-1 attributes with the target
    (`shared_probs`); s = K-1 is no cap.
  On an episode axis every level in play is played alike, so a curriculum that has admitted every
  level mixes easier variants of the game into its batches to the end; no curriculum plays the
  game as configured (the hardest level).

The CDF level of a unit is d̄(x) = sum of the prior over units no harder than x (Platanios et
al.'s CDF of the difficulty over the training data): competence c admits the units with d̄ <= c.
Buckets group the units by difficulty, ties kept together (`buckets`).

    >>> import games
    >>> world = games.make_world(2, 3, split="none")
    >>> axis = make_axis("values", world, games.GameConfig(n_attributes=2, n_values=3, split="none"))
    >>> axis.scores.tolist()
    [1.0, 2.0, 3.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0]
    >>> cdf_levels(axis.scores, axis.prior).round(2).tolist()
    [0.11, 0.44, 1.0, 0.44, 0.44, 1.0, 1.0, 1.0, 1.0]
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from games.lewis import EnvParams
from games.registry import game_class

TARGET_AXES = ("values", "rarity")
EPISODE_AXES = ("distractors", "similarity")
AXES = TARGET_AXES + EPISODE_AXES


class Axis(NamedTuple):
    name: str
    scores: np.ndarray  # [n_units] difficulty of each unit, higher is harder
    prior: np.ndarray  # [n_units] how often each unit is played without a curriculum (sums to 1)
    field: str  # the EnvParams field a distribution over the units goes to

    @property
    def n_units(self) -> int:
        return len(self.scores)

    @property
    def targets(self) -> bool:
        """Whether the units are the train objects (`Stats.ids` index them)."""
        return self.field == "probs"

    def env(self, base: EnvParams, q: jax.Array) -> EnvParams:
        """The game `base` with its draws over this axis's units distributed as `q [n_units]`."""
        return base.replace(**{self.field: q})


def values_in_play(objects: np.ndarray) -> np.ndarray:
    """`[n]` the number of values per attribute an object needs: max_k x_k + 1."""
    return np.asarray(objects).max(axis=-1).astype(np.float64) + 1.0


def rarity(probs: np.ndarray) -> np.ndarray:
    """`[n]` -log p(x): the surprisal of each object under the input distribution."""
    return -np.log(np.asarray(probs, np.float64))


def make_axis(name: str, world, game_config) -> Axis:
    """The axis `name` of the game `game_config` played in `world` (names: the `AXES` of its kind's class)."""
    axes = game_class(game_config.kind).AXES
    if name not in axes:
        raise ValueError(f"the {game_config.kind} game has no difficulty axis {name!r}; it has {', '.join(axes)}")
    prior = np.asarray(world.train_probs, np.float64)
    if name == "values":
        return Axis(name, values_in_play(world.attributes[world.train]), prior / prior.sum(), "probs")
    if name == "rarity":
        return Axis(name, rarity(prior / prior.sum()), prior / prior.sum(), "probs")
    n_levels = game_config.n_distractors if name == "distractors" else world.n_attributes
    levels = np.arange(1, n_levels + 1, dtype=np.float64)  # distractors shown, or the shared cap + 1
    return Axis(name, levels, np.full(n_levels, 1.0 / n_levels), "shown_probs" if name == "distractors" else "shared_probs")


def cdf_levels(scores: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """`[n]` d̄(x) = sum of `prior` over the units y with score(y) <= score(x): the fraction of the data no harder."""
    scores, prior = np.asarray(scores, np.float64), np.asarray(prior, np.float64)
    order = np.argsort(scores, kind="stable")
    mass = np.cumsum(prior[order]) / prior.sum()  # [n] mass up to each sorted unit
    last_tie = np.searchsorted(scores[order], scores, side="right") - 1  # the last sorted unit no harder than x
    return mass[last_tie].clip(0.0, 1.0)


def buckets(scores: np.ndarray, prior: np.ndarray, n: int) -> np.ndarray:
    """`[n_units]` bucket of each unit, 0 (easiest) .. n_buckets - 1, ties always together.

    At most `n` distinct scores: one bucket each (the values axis: one bucket per value added).
    More: equal-mass cuts of the CDF, bucket ceil(n d̄) - 1, empty ones dropped, so a tie heavier
    than 1/n leaves fewer than `n` buckets.
    """
    distinct, rank = np.unique(np.asarray(scores), return_inverse=True)
    if len(distinct) <= n:
        return rank.astype(np.int32)
    raw = np.ceil(cdf_levels(scores, prior) * n - 1e-9).astype(np.int64) - 1  # cdf in ((b-1)/n, b/n] -> bucket b-1
    return np.unique(raw, return_inverse=True)[1].astype(np.int32)
