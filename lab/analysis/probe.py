"""Probe listeners: a fresh listener fitted to a frozen speaker's language on one split.

For a fixed speaker, min over listeners of the game loss is L_info (Rita et al. 2022), so a probe's
loss on a split is an upper bound of L_info there; L(actual listener) - L(probe) is then a lower
bound of L_adapt. `fit_listener` is also the "retrain the listener" phase of the reset control.

Early stopping (the rule of the authors' code): stop once the mean loss of the last `window` steps
is not below the mean of the `window` steps before it by more than `tolerance`, or after
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
from lab.agents import make_agents


class ListenerFit(NamedTuple):
    receiver: nnx.State
    receiver_opt: optax.OptState
    steps: jax.Array  # [] listener steps taken
    loss: jax.Array  # [] mean watched loss over the last `window` steps


class ProbeResult(NamedTuple):
    loss: jax.Array  # [] -mean log rho_probe(x|m), one sampled message per object of the split: >= L_info
    accuracy: jax.Array  # [] whole-object accuracy on the speaker's greedy messages
    steps: jax.Array  # [] listener steps until early stopping


def fresh_receiver(trainer, key: jax.Array) -> nnx.State:
    """Newly initialised listener parameters (the trainer's architecture)."""
    return nnx.state(make_agents(trainer.config, key)[1])


def fit_listener(trainer, sender_params, receiver_params, receiver_opt, env: games.EnvParams, key: jax.Array, hparams,
                 max_steps: int, window: int, tolerance: float, held_out: games.EnvParams | None = None) -> ListenerFit:
    """Train the listener alone on the frozen speaker's sampled messages until its loss stops improving.

    Targets are drawn from `env` (objects and probabilities), batches of `train.batch_size`;
    the stopping rule watches batches drawn from `held_out` when given. A `lax.while_loop`:
    under vmap each member stops on its own.
    """
    batch_size = trainer.config.train.batch_size
    optimizer = trainer.optimizer(learning_rate=hparams.receiver_lr)
    sender_params = jax.lax.stop_gradient(sender_params)

    def game_loss(receiver_params, batch, key):
        return -jnp.mean(trainer.play(sender_params, receiver_params, batch, key, hparams, "sample").log_rho)

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
        key, key_batch, key_play = jax.random.split(key, 3)
        batch = trainer.game.sample_batch(key_batch, env, batch_size)
        loss, grads = jax.value_and_grad(game_loss)(receiver_params, batch, key_play)
        updates, receiver_opt = optimizer.update(grads, receiver_opt, receiver_params)
        receiver_params = optax.apply_updates(receiver_params, updates)
        if held_out is not None:
            key, key_batch, key_play = jax.random.split(key, 3)
            loss = game_loss(receiver_params, trainer.game.sample_batch(key_batch, held_out, batch_size), key_play)
        losses = losses.at[i % (2 * window)].set(loss)
        return i + 1, receiver_params, receiver_opt, losses, key

    carry = (jnp.zeros((), jnp.int32), receiver_params, receiver_opt, jnp.zeros(2 * window), key)
    i, receiver_params, receiver_opt, losses, _ = jax.lax.while_loop(improving, step, carry)
    filled = jnp.minimum(i, window)
    last = losses[(i - 1 - jnp.arange(window)) % (2 * window)]
    loss = jnp.sum(jnp.where(jnp.arange(window) < filled, last, 0.0)) / jnp.maximum(filled, 1)
    return ListenerFit(receiver_params, receiver_opt, i, loss)


def probe(trainer, sender_params, split: str, key: jax.Array, hparams, max_steps: int | None = None) -> ProbeResult:
    """A fresh listener fitted to the frozen speaker on one split (uniform over its objects).

    Its loss is measured on one message per object sampled with `key` itself, the messages
    `Trainer.evaluate` and `decompose_agents` draw with the same key, so it compares directly
    with their `l_info`. Jit and vmap it (see `probe_population`).
    """
    t = trainer.config.train
    key_init, key_fit = jax.random.split(jax.random.fold_in(key, 1))
    episodes = trainer.eval_episodes[split]
    receiver_params = fresh_receiver(trainer, key_init)
    receiver_opt = trainer.optimizer(learning_rate=hparams.receiver_lr).init(receiver_params)
    env = trainer.game.default_params(episodes.target)  # uniform over the split
    fit = fit_listener(trainer, sender_params, receiver_params, receiver_opt, env, key_fit, hparams,
                       max_steps or t.listener_max_steps, t.listener_window, t.listener_tolerance)
    sampled = trainer.play(sender_params, fit.receiver, episodes, key, hparams, "sample")
    greedy = trainer.play(sender_params, fit.receiver, episodes, key, hparams, "greedy")
    return ProbeResult(loss=-jnp.mean(sampled.log_rho), accuracy=jnp.mean(greedy.correct), steps=fit.steps)


def probe_population(trainer, state, split: str, key: jax.Array, hparams=None, max_steps: int | None = None) -> ProbeResult:
    """`probe` for every seed of a trained population; leaves `[seeds]`."""
    from lab.train import hparams_from_config  # here: lab.train imports this package

    n_seeds = jax.tree.leaves(state.sender)[0].shape[0]
    hparams = hparams if hparams is not None else hparams_from_config(trainer.config, n_seeds)

    def one(sender_params, hparams):
        return probe(trainer, sender_params, split, key, hparams, max_steps)

    return jax.jit(jax.vmap(one))(state.sender, hparams)
