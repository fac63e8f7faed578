"""Interventions: components that change the training state before an optimizer step; the `interventions` section.

* `reset_receivers` (the listener reset, Rita et al. 2022's control of co-adaptation; §2.1 of
  ../shared/science/lewis.md), switched by `reset` and tuned by the `reset_every` and `refit_*`
  fields: every `reset_every` steps (k) each receiver gets fresh weights and a fresh optimizer state
  and is refitted alone to the frozen sender it is paired with under `fixed` pairing (receiver j with
  sender j mod n_senders), until its loss on the world's validation split stops falling (the
  authors' rule, lab.core.refit; at most `refit_max_steps`), or for exactly `refit_steps` steps (the
  authors' fixed arms: an under- or over-trained listener); then k joint steps on the train objects.
  The listener learns in those joint steps too unless `train.receiver_p_step=0`.
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
    reset: bool = doc("the listener reset (Rita et al. 2022's control of co-adaptation): every reset_every steps each "
                      "receiver gets fresh weights and optimizer state and is refitted alone on its sender's frozen "
                      "messages, then trains jointly again", False)
    reset_every: int = doc("reset: joint steps between two refits (k)", 50, low=1)
    refit_steps: int = doc("reset: receiver-only steps of each refit; 0: until early stopping on the validation split "
                           "(refit_patience, at most refit_max_steps)", 0, low=0)
    refit_max_steps: int = doc("reset and probes: most receiver-only steps of an early-stopped refit", 1000, low=1)
    refit_patience: int = doc("reset and probes: an early-stopped refit stops, after 2 x refit_patience steps, once the "
                              "watched loss is not below the mean of the refit_patience steps before by refit_tolerance "
                              "(watched: the validation split, else the fitting batches)", 10, low=1)
    refit_tolerance: float = doc("reset and probes: improvement (nats) that counts as progress", 1e-4, low=0.0)
    ema: bool = doc("keep an exponential moving average of every agent's weights (state.components['ema'])", False)
    ema_rate: float = doc("ema: weight of the current parameters in each update", 0.01, low=0.0, high=1.0, low_open=True,
                          continuous=True)

    def validate(self, config) -> None:
        if self.reset and self.refit_steps == 0 and config.game.validation_fraction == 0:
            raise ConfigError("interventions.reset=true with refit_steps=0 stops each refit on the validation split, and "
                              "game.validation_fraction=0 holds none out; set game.validation_fraction (e.g. 0.1) or a "
                              "fixed interventions.refit_steps")


def reset_receivers(spec: Spec) -> Intervention:
    """Every `reset_every` steps: fresh receivers, each refitted on its sender's messages (module doc)."""
    c = spec.config
    i, population = c.interventions, c.population
    watch = spec.split_episodes("validation") if i.refit_steps == 0 else None
    max_steps = i.refit_steps or i.refit_max_steps
    partners = np.arange(population.n_receivers) % population.n_senders  # receiver j refits on sender j mod P

    def refit(own, train_state, key, step, hp):
        def one(key, receiver_opt, partner):
            key_init, key_fit = jax.random.split(key)
            receiver = spec.agents.init_receiver(key_init)
            fit = fit_receiver(spec.agents, spec.game, take(train_state.senders, partner), receiver, reinit(receiver, receiver_opt),
                               spec.train_env, key_fit, c.train.batch_size, max_steps, i.refit_patience, i.refit_tolerance,
                               watch, fixed=i.refit_steps > 0)
            return fit.receiver, fit.receiver_opt, fit.steps, fit.loss

        keys = jax.random.split(key, population.n_receivers)
        receivers, receiver_opt, steps, loss = jax.vmap(one)(keys, train_state.receiver_opt, jnp.asarray(partners))
        return ({"refit_steps": jnp.mean(steps), "refit_loss": jnp.mean(loss)},
                train_state.replace(receivers=receivers, receiver_opt=receiver_opt))

    return Intervention(init=lambda key, state: {"refit_steps": jnp.zeros(()), "refit_loss": jnp.zeros(())},
                        update=every(i.reset_every, refit), summary=lambda own, hp: own)


def ema() -> Intervention:
    """Exponential moving averages of the senders and receivers: `{"senders": [P, ...], "receivers": [Q, ...]}`."""

    def update(own, state, key, step, hp):
        mu = hp["ema_rate"]
        average = lambda slow, fast: (1.0 - mu) * slow + mu * fast  # noqa: E731
        return {"senders": jax.tree.map(average, own["senders"], state.senders),
                "receivers": jax.tree.map(average, own["receivers"], state.receivers)}, state

    return Intervention(init=lambda key, state: {"senders": state.senders, "receivers": state.receivers}, update=update)
