"""The sampler slot of the trainer: which train objects a step draws (and, where a game has them, how hard).

A sampler is a named tuple of pure functions over its own state pytree, in the manner of optax's
`GradientTransformation`; the trainer carries the state in its scan:

    state = sampler.init(key)
    env = sampler.env(state, base, step, hp)        # games.EnvParams this step draws from
    ... the step plays games on targets drawn from env.probs ...
    w = sampler.weights(state, ids, step, hp)       # [B] per-example loss weights (1: none)
    ... and computes per-example Stats ...
    state = sampler.update(state, stats, hp)

`base` is the world's train set with its input distribution; `hp` is the sampler's continuous
hyperparameters (the `curriculum` config section's continuous fields, arrays under vmap);
`step` is the number of optimizer steps taken so far. A curriculum that reweights examples
instead of (or besides) choosing them returns its weights from `weights`; the trainer multiplies
them with the objective's, on the receiver's loss and the sender's REINFORCE term alike.
`identity()` is the default: the world's distribution, unchanged, every weight 1.

A sampler that needs randomness after `init` keeps its key in its state as raw key data
(`jax.random.key_data`, uint32), so that the state, like every other, converts to numpy.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

import games


class Stats(NamedTuple):
    """What one training step saw, per example `[N]` (the pairs of a population flattened)."""

    ids: jax.Array  # [N] int, index of the target among the train objects
    groups: jax.Array  # [N] int, the target's group (0 when the world has no groups)
    loss: jax.Array  # [N] -log rho(x|m), no gradient
    correct: jax.Array  # [N] bool
    weights: jax.Array  # [N] the weights the losses were taken with: objective x sampler (mean 1 unless a curriculum drifts)
    step: jax.Array  # [] int, the step these examples were played at


def no_summary(state, hp) -> dict:
    """The default `summary` of every component protocol: nothing logged."""
    return {}


def _unit_weights(state, ids, step, hp) -> jax.Array:
    return jnp.ones(ids.shape, jnp.float32)


class Sampler(NamedTuple):
    init: Callable[[jax.Array], Any]
    env: Callable[[Any, games.EnvParams, jax.Array, dict], games.EnvParams]
    update: Callable[[Any, Stats, dict], Any]
    weights: Callable[[Any, jax.Array, jax.Array, dict], jax.Array] = _unit_weights  # (state, ids [B], step, hp) -> [B]
    summary: Callable[[Any, dict], dict[str, jax.Array]] = no_summary  # scalars logged with the training statistics


def identity() -> Sampler:
    """No curriculum: targets drawn from the world's train distribution, unchanged."""
    return Sampler(init=lambda key: (), env=lambda state, base, step, hp: base, update=lambda state, stats, hp: state)


def distribution_entropy(probs: jax.Array) -> jax.Array:
    """Entropy (nats) of a sampling distribution `[n]`: a summary every sampler can log."""
    return -jnp.sum(jnp.where(probs > 0, probs * jnp.log(jnp.where(probs > 0, probs, 1.0)), 0.0))
