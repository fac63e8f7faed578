"""Fit a receiver alone to a frozen sender's language: the listener reset's refit and the probe listeners.

Early stopping, the rule of Rita et al.'s code (../shared/science/lewis.md §2.1): after each step,
the watched loss; stop once more than `2 * patience` steps are done and the latest watched loss is not
below the mean of the `patience` before it by more than `tolerance`, or after `max_steps`. The loss
watched is the receiver's on a *validation* split (every object of it once, its messages sampled with
one key for the whole fit, so the curve moves with the receiver only) when one is given: the listener
that generalizes best, as the authors stop on theirs. Without one it is the fitting batch's own loss
(a fit to the split, not a generalization test). With `fixed` the fit takes exactly `max_steps`
steps (the authors' `custom_steps` arms: a listener deliberately under- or over-trained).

Along the way the fit may score the receiver on other episodes (`score`, e.g. the test split's): its
accuracy on the sender's greedy messages, whole object and per attribute, where the fit stopped and the
best over the fit (what the authors' external listener reports).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

import games
from lab.core.agents import Agents
from lab.core.optim import optimizer
from lab.core.rollout import rollout


class ReceiverFit(NamedTuple):
    receiver: nnx.State
    receiver_opt: optax.OptState
    steps: jax.Array  # [] receiver steps taken
    loss: jax.Array  # [] the watched loss where it stopped
    losses: jax.Array  # [max_steps] the watched loss after each step (NaN after the last)
    score: jax.Array  # [2] (whole-object, per-attribute) accuracy on `score` where it stopped (NaN without `score`)
    best_score: jax.Array  # [2] the best of each over the fit (NaN without `score`)


def attribute_accuracy(played) -> jax.Array:
    """[] the share of attributes guessed right (NaN in a game whose guess has no attributes)."""
    if played.attribute_correct is None:
        return jnp.float32(jnp.nan)
    return jnp.mean(played.attribute_correct.astype(jnp.float32))


def should_stop(i: jax.Array, losses: jax.Array, patience: int, tolerance: float) -> jax.Array:
    """The rule after `i` steps, `losses[j]` the watched loss after step j + 1: stop once i > 2 patience and the latest
    is not below the mean of the `patience` before it by more than `tolerance`."""
    latest = losses[i - 1]
    before = jnp.mean(jax.lax.dynamic_slice(losses, (jnp.maximum(i - 1 - patience, 0),), (patience,)))
    return (i > 2 * patience) & (latest > before - tolerance)


def fit_receiver(agents: Agents, game: games.LewisGame, sender_params, receiver_params, receiver_opt, env: games.EnvParams,
                 key: jax.Array, batch_size: int, max_steps: int, patience: int, tolerance: float,
                 watch: games.EnvState | None = None, fixed: bool = False, score: games.EnvState | None = None) -> ReceiverFit:
    """Train the receiver alone on the frozen sender's sampled messages, targets drawn from `env`, until the rule stops
    it (module doc). `receiver_opt` is a state of `lab.core.optim.optimizer()` (its hyperparameters, the learning rate
    among them, come with it); `watch` and `score` are episodes (every object of a split once, with its candidates);
    `score` is scored by the receiver's accuracy on the sender's greedy messages. A `lax.while_loop`: under vmap each member
    stops on its own.
    """
    sender = agents.sender(jax.lax.stop_gradient(sender_params))
    update = optimizer().update
    key, key_watch = jax.random.split(key)
    watched = None if watch is None else (watch, sender.sample(watch.target, key_watch))  # one sample for the whole fit
    scored = None if score is None else (score, sender.greedy(score.target))

    def batch_loss(receiver_params, key):
        key_batch, key_speak = jax.random.split(key)
        episodes = game.sample_batch(key_batch, env, batch_size)
        message = sender.sample(episodes.target, key_speak)
        return -jnp.mean(rollout(agents.receiver(receiver_params), episodes, message, game).log_rho)

    def on(receiver_params, fixed_episodes):
        episodes, message = fixed_episodes
        return rollout(agents.receiver(receiver_params), episodes, message, game)

    def accuracy(receiver_params):  # [2] whole object, per attribute
        if scored is None:
            return jnp.full(2, jnp.nan)
        played = on(receiver_params, scored)
        return jnp.stack([jnp.mean(played.correct.astype(jnp.float32)), attribute_accuracy(played)])

    def going(carry):
        i, _, _, losses, _, _, _ = carry
        return (i < max_steps) & (fixed | ~should_stop(i, losses, patience, tolerance))

    def step(carry):
        i, receiver_params, receiver_opt, losses, best, _, key = carry
        key, key_fit = jax.random.split(key)
        loss, grads = jax.value_and_grad(batch_loss)(receiver_params, key_fit)
        updates, receiver_opt = update(grads, receiver_opt, receiver_params)
        receiver_params = optax.apply_updates(receiver_params, updates)
        if watched is not None:
            loss = -jnp.mean(on(receiver_params, watched).log_rho)
        now = accuracy(receiver_params)
        return (i + 1, receiver_params, receiver_opt, losses.at[i].set(loss), jnp.fmax(best, now), now, key)

    nan = jnp.full(2, jnp.nan)
    history = jnp.full(max(max_steps, patience + 1), jnp.nan)  # room for the rule's window however few the steps
    carry = (jnp.zeros((), jnp.int32), receiver_params, receiver_opt, history, nan, nan, key)
    i, receiver_params, receiver_opt, losses, best, now, _ = jax.lax.while_loop(going, step, carry)
    return ReceiverFit(receiver_params, receiver_opt, i, losses[jnp.maximum(i - 1, 0)], losses[:max_steps], now, best)
