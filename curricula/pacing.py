"""Hand-crafted curricula over a difficulty axis: competence-based pacing, baby steps, one-pass; their orders.

Competence-based curriculum (Platanios et al. 2019, ../shared/science/algorithms.md B2): at step
t, draw from the units whose CDF level d̄(x) <= c(t),

    c(t) = min(1, (t (1 - c0^p) / T + c0^p)^(1/p)),    p = 1 linear, p = 2 sqrt,

T = pace * train.steps the curriculum length, c0 the initial competence. The easiest level is
always in play (c0 below it would leave nothing to draw). Baby steps (Bengio et al. 2009,
Spitkovsky et al. 2010): the difficulty buckets 0..b(t) with b(t) = floor(t n / T) (cumulative);
one-pass: bucket b(t) alone.

Orders: `easy_first` (the curriculum), `hard_first` (the anti-curriculum: the same pacing over
the reversed difficulty) and `random` (Wu et al. 2021's control: the same pacing over a random
order of the units, drawn per run, so as many units are in play at every step as under
`easy_first`; any benefit it shares is due to the growing training set, not to the order).

Within the units in play, draws follow the axis's prior (the world's input distribution).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from curricula.base import Sampler, Stats, distribution_entropy
from games.difficulty import Axis, buckets, cdf_levels

ORDERS = ("easy_first", "hard_first", "random")
PACED = ("competence", "baby_steps", "one_pass")


def competence(step, total_steps, initial, power):
    """c(t) = min(1, (t (1 - c0^p) / T + c0^p)^(1/p)) (Platanios et al. 2019); p = 1 linear, p = 2 sqrt.

    >>> float(competence(50, 100, 0.01, 2.0))  # sqrt((50 (1 - 1e-4) / 100 + 1e-4))
    0.7071421
    """
    c0p = jnp.asarray(initial, jnp.float32) ** power
    t = jnp.asarray(step, jnp.float32)
    return jnp.minimum(1.0, (t * (1.0 - c0p) / total_steps + c0p) ** (1.0 / power))


def stage(step, total_steps, n_stages: int):
    """The bucket b(t) = min(n - 1, floor(t n / T)) a staged curriculum is at."""
    return jnp.minimum(n_stages - 1, jnp.floor(jnp.asarray(step, jnp.float32) * n_stages / total_steps)).astype(jnp.int32)


def order_levels(levels_easy: np.ndarray, levels_hard: np.ndarray, order: str, key: jax.Array) -> jax.Array:
    """The per-unit levels a curriculum paces over under `order`; `random` permutes the easy-first levels."""
    if order == "easy_first":
        return jnp.asarray(levels_easy)
    if order == "hard_first":
        return jnp.asarray(levels_hard)
    return jnp.asarray(levels_easy)[jax.random.permutation(key, len(levels_easy))]


def total_variation(p: jax.Array, q: jax.Array) -> jax.Array:
    return 0.5 * jnp.sum(jnp.abs(p - q))


def paced(axis: Axis, kind: str, order: str, train_steps: int, n_buckets: int = 4) -> Sampler:
    """A competence-based (`competence`), `baby_steps` or `one_pass` sampler over `axis`, in `order`.

    hp (the curriculum section's continuous fields): initial, power (competence), pace (all).
    State: the per-unit levels (CDF levels, or buckets), the distribution last played [n_units],
    and its statistics. Summary (prefixed `curriculum_`): competence (c(t), or the fraction of
    buckets reached), support (fraction of units in play), shift (total variation between
    consecutive steps' distributions: how fast the data mix moves), entropy, and for target axes
    `above`, the fraction of drawn examples outside what the pacing admits (0 by construction; a check).
    """
    prior = jnp.asarray(axis.prior, jnp.float32)
    if kind == "competence":
        easy, hard = cdf_levels(axis.scores, axis.prior), cdf_levels(-axis.scores, axis.prior)
        n_stages = 0
    else:
        easy = buckets(axis.scores, axis.prior, n_buckets)
        n_stages = int(easy.max()) + 1
        hard = n_stages - 1 - easy

    def reach(step, hp):
        """(admitted level, competence) at `step`: units with level <= admitted (competence) or in the stage."""
        length = hp["pace"] * train_steps
        if kind == "competence":
            c = competence(step, length, hp["initial"], hp["power"])
            return c, c
        b = stage(step, length, n_stages)
        return b, (b + 1) / n_stages

    def admitted(levels, step, hp) -> jax.Array:
        """`[n_units]` bool: the units in play at `step`."""
        level, _ = reach(step, hp)
        if kind == "competence":
            return levels <= jnp.maximum(level, jnp.min(levels))
        return levels <= level if kind == "baby_steps" else levels == level

    def distribution(levels, step, hp) -> jax.Array:
        weight = prior * admitted(levels, step, hp)
        return weight / jnp.sum(weight)

    def init(key):
        levels = order_levels(easy, hard, order, key)
        zero = jnp.zeros((), jnp.float32)
        return {"levels": levels, "q": prior, "started": jnp.zeros((), bool), "shift": zero, "competence": zero,
                "support": zero, "above": zero}

    def env(state, base, step, hp):
        return axis.env(base, distribution(state["levels"], step, hp))

    def update(state, stats: Stats, hp):
        levels = state["levels"]
        q = distribution(levels, stats.step, hp)
        shift = jnp.where(state["started"], total_variation(q, state["q"]), 0.0)
        inside = admitted(levels, stats.step, hp)
        above = 1.0 - jnp.mean(inside[stats.ids]) if axis.targets else jnp.zeros(())
        return {**state, "q": q, "started": jnp.ones((), bool), "shift": shift, "competence": reach(stats.step, hp)[1],
                "support": jnp.mean(inside), "above": above}

    def summary(state, hp):
        out = {"curriculum_competence": state["competence"], "curriculum_support": state["support"],
               "curriculum_shift": state["shift"], "curriculum_entropy": distribution_entropy(state["q"])}
        if axis.targets:
            out["curriculum_above"] = state["above"]
        return out

    return Sampler(init=init, env=env, update=update, summary=summary)
