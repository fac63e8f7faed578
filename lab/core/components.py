"""The slots of the training step, each a named tuple of pure functions over its own state (optax style).

* sampler (curricula.Sampler): which train objects a step draws, and how hard;
* objective: per-example weights (mean 1) from per-example losses and groups, applied to the
  receiver's loss and the sender's REINFORCE term alike (ERM: all 1; DRO in lab.dro);
* speaker estimator (lab.core.estimators): how the sender speaks while learning, and the surrogate;
* interventions: run before an optimizer step, they may change the whole training state (a
  listener reset and refit, an EMA of the weights, a new generation).

Every slot has an identity default, so the default run is every slot at its default and any
combination composes without a new class. The trainer carries each state in its scan; `hp` is
the continuous hyperparameters of the component's config section (arrays under vmap over runs).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from curricula.base import Sampler, Stats, identity
from lab.core.estimators import Estimator


def _no_summary(state, hp) -> dict:
    return {}


class Objective(NamedTuple):
    init: Callable[[jax.Array], Any]
    weights: Callable[[Any, jax.Array, jax.Array, jax.Array, dict], jax.Array]  # (state, loss [B], groups [B], ids [B], hp) -> [B]
    update: Callable[[Any, Stats, dict], Any]
    summary: Callable[[Any, dict], dict[str, jax.Array]] = _no_summary


def erm() -> Objective:
    """Empirical risk minimisation: every example weighs 1."""
    return Objective(init=lambda key: (), weights=lambda state, loss, groups, ids, hp: jnp.ones_like(loss),
                     update=lambda state, stats, hp: state)


class Intervention(NamedTuple):
    """`update(key, train_state, own_state, step, hp) -> (train_state, own_state)`, before each optimizer step.

    `step` is the number of optimizer steps taken so far, one number for every run of a population
    (not batched under vmap), so `lax.cond` on it stays a branch taken when due rather than a select.
    """

    init: Callable[[jax.Array, Any], Any]  # (key, train_state) -> own state
    update: Callable[[jax.Array, Any, Any, jax.Array, dict], tuple[Any, Any]]
    summary: Callable[[Any, dict], dict[str, jax.Array]] = _no_summary


def every(k: int, update: Callable) -> Callable:
    """An intervention update that runs only before steps k, 2k, 3k, ... (a branch, not a select)."""

    def due_update(key, train_state, state, step, hp):
        due = (step > 0) & (step % k == 0)
        return jax.lax.cond(due, lambda args: update(key, *args, step, hp), lambda args: args, (train_state, state))

    return due_update


class Components(NamedTuple):
    estimator: Estimator
    sampler: Sampler = identity()
    objective: Objective = erm()
    interventions: tuple[Intervention, ...] = ()
