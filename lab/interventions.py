"""Interventions: components that change the training state before an optimizer step; the `interventions` section.

* `reset_receivers` (the reset control, Rita et al. 2022 §2.1 of ../shared/science/lewis.md):
  every `reset_every` steps each receiver gets fresh weights and optimizer state and is refitted
  alone to the frozen sender it is paired with under `fixed` pairing (receiver j with sender
  j mod n_senders), until its loss on held-out train objects stops improving (a fixed
  `listener_holdout` fraction, left out of the refit; at most `listener_max_steps`); then joint
  training resumes on all train objects.
* `ema` (weight averaging; merging and WARP anchors need it): slow copies of every agent,
  ema <- (1 - ema_rate) ema + ema_rate params before each step; `state.components["ema"]` holds them.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from games.fields import ConfigError, doc
from lab.core.components import Intervention, every
from lab.core.optim import reinit
from lab.core.population import take
from lab.core.refit import fit_receiver
from lab.core.spec import Spec


@dataclass(frozen=True)
class InterventionsConfig:
    reset_every: int = doc("reset control: steps between receiver resets", 250, low=1)
    listener_max_steps: int = doc("reset control and probes: most receiver-only steps when refitting a receiver", 500, low=1)
    listener_window: int = doc("reset control and probes: refitting stops when the mean loss of the last window steps "
                               "is not below that of the window before by listener_tolerance", 20, low=1)
    listener_tolerance: float = doc("reset control and probes: improvement (nats) that counts as progress", 1e-3, low=0.0)
    listener_holdout: float = doc("reset control: fraction of the train objects left out of the receiver's refit, whose "
                                  "loss decides when it stops (0: stop on the refit's own loss)", 0.1, low=0.0, high=1.0,
                                  high_open=True)
    ema: bool = doc("keep an exponential moving average of every agent's weights (state.components['ema'])", False)
    ema_rate: float = doc("ema: weight of the current parameters in each update", 0.01, low=0.0, high=1.0, low_open=True,
                          continuous=True)

    def validate(self, config) -> None:
        n_train = config.game.n_train
        held = round(n_train * self.listener_holdout)
        if config.train.control == "reset" and self.listener_holdout > 0 and not 1 <= held < n_train:
            raise ConfigError(f"interventions.listener_holdout={self.listener_holdout}: holds out {held} of {n_train} "
                              f"train objects; it must leave at least one on each side (or be 0)")


def held_out_mask(n_train: int, fraction: float, seed: int) -> np.ndarray:
    """`[n_train]` bool: the train objects a refit leaves out and watches, fixed by the world's seed."""
    held_out = np.zeros(n_train, bool)
    held_out[np.random.default_rng(seed).permutation(n_train)[: round(n_train * fraction)]] = True
    return held_out


def reset_receivers(spec: Spec) -> Intervention:
    """Every `reset_every` steps: fresh receivers, each refitted to early stopping on its sender's messages."""
    c = spec.config
    i, population = c.interventions, c.population
    held_out = held_out_mask(len(spec.world.train), i.listener_holdout, c.game.seed)
    env = spec.train_env
    watch = None
    if held_out.any():
        fit_probs = jnp.where(held_out, 0.0, env.probs)
        watch = env.replace(probs=jnp.asarray(held_out / held_out.sum(), jnp.float32))
        env = env.replace(probs=fit_probs / jnp.sum(fit_probs))
    partners = np.arange(population.n_receivers) % population.n_senders  # receiver j refits on sender j mod P

    def refit(own, train_state, key, step, hp):
        def one(key, receiver_opt, partner):
            key_init, key_fit = jax.random.split(key)
            receiver = spec.agents.init_receiver(key_init)
            fit = fit_receiver(spec.agents, spec.game, take(train_state.senders, partner), receiver, reinit(receiver, receiver_opt),
                               env, key_fit, c.train.batch_size, i.listener_max_steps, i.listener_window,
                               i.listener_tolerance, watch)
            return fit.receiver, fit.receiver_opt, fit.steps

        keys = jax.random.split(key, population.n_receivers)
        receivers, receiver_opt, steps = jax.vmap(one)(keys, train_state.receiver_opt, jnp.asarray(partners))
        return {"refit_steps": jnp.mean(steps)}, train_state.replace(receivers=receivers, receiver_opt=receiver_opt)

    return Intervention(init=lambda key, state: {"refit_steps": jnp.zeros(())}, update=every(i.reset_every, refit),
                        summary=lambda own, hp: own)


def ema() -> Intervention:
    """Exponential moving averages of the senders and receivers: `{"senders": [P, ...], "receivers": [Q, ...]}`."""

    def update(own, state, key, step, hp):
        mu = hp["ema_rate"]
        average = lambda slow, fast: (1.0 - mu) * slow + mu * fast  # noqa: E731
        return {"senders": jax.tree.map(average, own["senders"], state.senders),
                "receivers": jax.tree.map(average, own["receivers"], state.receivers)}, state

    return Intervention(init=lambda key, state: {"senders": state.senders, "receivers": state.receivers}, update=update)
