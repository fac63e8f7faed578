"""Fit a receiver alone to a frozen sender's language: the listener reset's refit and the probe listeners.

Early stopping (the rule of Rita et al.'s code): stop once the mean loss of the last `window`
steps is not below the mean of the `window` steps before it by more than `tolerance`, or after
`max_steps`. The loss watched is that of a batch of held-out objects when `held_out` is given
(the reset control: the listener that generalizes best, as the authors stop on a validation
split), else the fitting batch's own loss (probes: a fit to the split, not a generalization test).
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
    loss: jax.Array  # [] mean watched loss over the last `window` steps


def fit_receiver(agents: Agents, game: games.LewisGame, sender_params, receiver_params, receiver_opt, env: games.EnvParams,
                 key: jax.Array, batch_size: int, max_steps: int, window: int, tolerance: float,
                 held_out: games.EnvParams | None = None) -> ReceiverFit:
    """Train the receiver alone on the frozen sender's sampled messages until its loss stops improving.

    Targets are drawn from `env`; `receiver_opt` is a state of `lab.core.optim.optimizer()`
    (its hyperparameters, the learning rate among them, come with it). A `lax.while_loop`: under
    vmap each member stops on its own.
    """
    sender = agents.sender(jax.lax.stop_gradient(sender_params))
    update = optimizer().update

    def game_loss(receiver_params, env, key):
        key_batch, key_speak = jax.random.split(key)
        episodes = game.sample_batch(key_batch, env, batch_size)
        message = sender.sample(episodes.target, key_speak)
        return -jnp.mean(rollout(agents.receiver(receiver_params), episodes, message, game).log_rho)

    def window_means(i, losses):  # (last window, the window before); `losses` is a ring of 2 * window
        last = losses[(i - 1 - jnp.arange(window)) % (2 * window)]
        before = losses[(i - 1 - window - jnp.arange(window)) % (2 * window)]
        return jnp.mean(last), jnp.mean(before)

    def improving(carry):
        i, _, _, losses, _ = carry
        last, before = window_means(i, losses)
        stalled = (i >= 2 * window) & (last > before - tolerance)
        return (i < max_steps) & ~stalled

    def step(carry):
        i, receiver_params, receiver_opt, losses, key = carry
        key, key_fit, key_watch = jax.random.split(key, 3)
        loss, grads = jax.value_and_grad(game_loss)(receiver_params, env, key_fit)
        updates, receiver_opt = update(grads, receiver_opt, receiver_params)
        receiver_params = optax.apply_updates(receiver_params, updates)
        if held_out is not None:
            loss = game_loss(receiver_params, held_out, key_watch)
        losses = losses.at[i % (2 * window)].set(loss)
        return i + 1, receiver_params, receiver_opt, losses, key

    carry = (jnp.zeros((), jnp.int32), receiver_params, receiver_opt, jnp.zeros(2 * window), key)
    i, receiver_params, receiver_opt, losses, _ = jax.lax.while_loop(improving, step, carry)
    filled = jnp.minimum(i, window)
    last = losses[(i - 1 - jnp.arange(window)) % (2 * window)]
    loss = jnp.sum(jnp.where(jnp.arange(window) < filled, last, 0.0)) / jnp.maximum(filled, 1)
    return ReceiverFit(receiver_params, receiver_opt, i, loss)
