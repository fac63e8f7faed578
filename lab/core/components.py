"""The slots of the training step, each a named tuple of pure functions over its own state (optax style).

* sampler (curricula.Sampler): which train objects a step draws, and how hard;
* objective: per-example weights (mean 1) from per-example losses and groups, applied to the
  receiver's loss and the sender's REINFORCE term alike (ERM: all 1; DRO in lab.dro);
* speaker estimator (lab.core.estimators): how the sender speaks while learning, and the surrogate;
* interventions: run before an optimizer step, they may change the whole training state (a
  listener reset and refit, an EMA of the weights, a new generation).

Every slot has an identity default, so the default run is every slot at its default and any
combination composes without a new class. The training state holds each component's state
under its name (`TrainState.components`, as optax's `named_chain` does): `estimator`, `sampler`,
`objective`, and each intervention under the name it is given in `Components.interventions`.
A component addresses another's state by that name, never by position.

One argument order for every function of every slot: the component's own state first, then what
it reads, then `key` and `step` where it needs them, and last `hp`, the continuous hyperparameters
of its config section (arrays under vmap over runs):

    init(key, *inputs) -> state
    fn(state, *inputs, [key], [step], hp)
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp

from curricula.base import Sampler, Stats, identity, no_summary


class Objective(NamedTuple):
    init: Callable[[jax.Array], Any]
    weights: Callable[[Any, jax.Array, jax.Array, jax.Array, dict], jax.Array]  # (state, loss [B], groups [B], ids [B], hp) -> [B]
    update: Callable[[Any, Stats, dict], Any]
    summary: Callable[[Any, dict], dict[str, jax.Array]] = no_summary


def erm() -> Objective:
    """Empirical risk minimisation: every example weighs 1."""
    return Objective(init=lambda key: (), weights=lambda state, loss, groups, ids, hp: jnp.ones_like(loss),
                     update=lambda state, stats, hp: state)


class Estimator(NamedTuple):
    """How the sender speaks while learning and the surrogate loss of a batch (lab.core.estimators).

    `reads` names the other components whose states its `loss` reads (`Context.components`): a
    reward that needs the EMA's senders declares "ema"; nothing else of the training state reaches it.
    """

    init: Callable[[jax.Array], Any]  # (key) -> state
    speak: Callable[..., Any]  # (state, sender, targets, key, step, hp) -> Message
    loss: Callable[..., tuple[jax.Array, dict]]  # (state, rollout, weights, context, hp) -> (loss, aux)
    update: Callable[[Any, dict, dict], Any]  # (state, the loss's aux averaged over pairs, hp)
    summary: Callable[[Any, dict], dict[str, jax.Array]] = no_summary
    reads: tuple[str, ...] = ()


class Intervention(NamedTuple):
    """`update(state, train_state, key, step, hp) -> (state, train_state)`, before each optimizer step.

    `step` is the number of optimizer steps taken so far, one number for every run of a population
    (not batched under vmap), so `lax.cond` on it stays a branch taken when due rather than a select.
    """

    init: Callable[[jax.Array, Any], Any]  # (key, train_state) -> own state
    update: Callable[[Any, Any, jax.Array, jax.Array, dict], tuple[Any, Any]]
    summary: Callable[[Any, dict], dict[str, jax.Array]] = no_summary


def every(k: int, update: Callable) -> Callable:
    """An intervention update that runs only before steps k, 2k, 3k, ... (a branch, not a select)."""

    def due_update(state, train_state, key, step, hp):
        due = (step > 0) & (step % k == 0)
        return jax.lax.cond(due, lambda args: update(*args, key, step, hp), lambda args: args, (state, train_state))

    return due_update


SLOTS = ("estimator", "sampler", "objective")  # the names of the slots' states; interventions bring their own


class Components(NamedTuple):
    estimator: Estimator
    sampler: Sampler = identity()
    objective: Objective = erm()
    interventions: Mapping[str, Intervention] = MappingProxyType({})  # {name: intervention}, applied in this order

    def check(self) -> "Components":
        """Itself, once every state has a name of its own and every name the estimator reads is a component's."""
        taken = set(SLOTS) & set(self.interventions)
        if taken:
            raise ValueError(f"interventions named {', '.join(sorted(taken))}: these names are the slots' own; "
                             f"choose others")
        unknown = set(self.estimator.reads) - set(SLOTS) - set(self.interventions)
        if unknown:
            raise ValueError(f"the estimator reads the state of {', '.join(sorted(unknown))}, which no component has; "
                             f"components: {', '.join((*SLOTS, *self.interventions))}")
        return self
