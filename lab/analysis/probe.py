"""Probe listeners: a fresh receiver fitted to a frozen sender's language, then measured.

For a fixed speaker, min over listeners of the game loss is L_info (Rita et al. 2022), so a
probe's loss on the split it was fitted to is an upper bound of L_info there, and
L(actual listener) - L(probe) a lower bound of L_adapt. Fitted on the train objects and measured
on the test objects, a probe tells how well the speaker's *language* generalizes, free of the
co-adaptation of the pair that learned it (how Rita et al. measure generalization).

The fit is `lab.core.refit.fit_receiver`: early-stopped on the validation split when the world holds
one out (the *validation-stopped* probe), else on the fitting batches' own loss. Every split measured
is scored per attribute and whole object where the fit stopped, and the first measured split other
than the fitted one also at its best over the fit (what the authors' external listener reports; an
optimistic number, since it picks the step by the test score itself).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

import games
from lab.core.agents import Agents
from lab.core.evaluate import members
from lab.core.optim import adam_init, learning_rates
from lab.core.refit import ReceiverFit, attribute_accuracy, fit_receiver
from lab.core.rollout import rollout
from lab.core.spec import Spec


class ProbeResult(NamedTuple):
    loss: jax.Array  # [] -mean log rho_probe(x|m), one message per object sampled with the probe's key
    accuracy: jax.Array  # [] whole-object accuracy on the sender's greedy messages
    attribute_accuracy: jax.Array  # [] per-attribute accuracy on them
    steps: jax.Array  # [] receiver steps until early stopping
    best_accuracy: jax.Array  # [] the best whole-object accuracy over the fit (the scored split; NaN elsewhere)
    best_attribute_accuracy: jax.Array  # [] the best per-attribute accuracy over the fit (idem)


class ProbeFit(NamedTuple):
    """How a probe is fitted: the refit's rule and knobs (`lab.interventions` section's refit_* fields)."""

    batch_size: int
    max_steps: int
    patience: int
    tolerance: float


def fit_probe(agents: Agents, game: games.LewisGame, sender_params, fit_objects: jax.Array, key: jax.Array, hp_train: dict,
              how: ProbeFit, watch: games.EnvState | None = None, score: games.EnvState | None = None) -> ReceiverFit:
    """A fresh receiver (drawn from `key`) fitted to the frozen sender on `fit_objects [n, K]` (uniform), early-stopped
    on `watch` (episodes) when given, scored on `score` along the way: the probe `probe` measures."""
    key_init, key_fit = jax.random.split(jax.random.fold_in(key, 1))
    receiver = agents.init_receiver(key_init)
    _, lr = learning_rates(hp_train)
    return fit_receiver(agents, game, sender_params, receiver, adam_init(receiver, lr, hp_train), game.default_params(fit_objects),
                        key_fit, how.batch_size, how.max_steps, how.patience, how.tolerance, watch, score=score)


def probe(agents: Agents, game: games.LewisGame, sender_params, fit_objects: jax.Array, measure: dict[str, games.EnvState],
          key: jax.Array, hp_train: dict, how: ProbeFit, watch: games.EnvState | None = None,
          scored: str | None = None) -> dict[str, ProbeResult]:
    """Fit a fresh receiver to the frozen sender on `fit_objects [n, K]` (uniform), then measure it on each of `measure`.

    `measure[name]` are episodes (every object of a split once, with its candidates); `scored` names the one of them
    whose accuracy is also tracked over the fit. Messages are sampled with `key` itself, the messages the trainer's
    evaluation and `decompose_agents` draw with the same key, so a probe's loss compares directly with their `l_info`.
    Jit and vmap it.
    """
    fit = fit_probe(agents, game, sender_params, fit_objects, key, hp_train, how, watch, None if scored is None else measure[scored])
    sender, fitted = agents.sender(sender_params), agents.receiver(fit.receiver)
    out = {}
    for name, episodes in measure.items():
        sampled = rollout(fitted, episodes, sender.sample_each(episodes.target, key), game)
        greedy = rollout(fitted, episodes, sender.greedy(episodes.target), game)
        best = fit.best_score if name == scored else jnp.full(2, jnp.nan)
        out[name] = ProbeResult(loss=-jnp.mean(sampled.log_rho), accuracy=jnp.mean(greedy.correct),
                                attribute_accuracy=attribute_accuracy(greedy), steps=fit.steps,
                                best_accuracy=best[0], best_attribute_accuracy=best[1])
    return out


def probe_population(spec: Spec, senders, fit_split: str, key: jax.Array, hparams, measure_splits=None,
                     max_steps: int | None = None) -> dict[str, ProbeResult]:
    """`probe` for every run and sender of trained populations `senders: [runs, P, ...]`.

    Fitted on the objects of `fit_split` ("train" or "test"), early-stopped on the validation split when the world
    holds one out, measured on each of `measure_splits` (default: the fitted split; the first other one is also scored
    over the fit); `key` one for all runs or `[runs]`; `hparams` the runs' (for the receiver's learning rate and Adam
    settings, `[runs]` leaves). Leaves `[runs, P]`, or `[runs]` for runs of a lone sender.
    """
    c = spec.config
    i = c.interventions
    names = measure_splits or (fit_split,)
    measure = {name: spec.split_episodes(name) for name in names}
    watch = spec.split_episodes("validation") if "validation" in spec.split_objects else None
    scored = next((name for name in names if name != fit_split), None)
    fit_objects = jnp.asarray(spec.split_objects[fit_split])
    how = ProbeFit(c.train.batch_size, max_steps or i.refit_max_steps, i.refit_patience, i.refit_tolerance)

    def run(senders, key, hparams):
        return members(lambda s: probe(spec.agents, spec.game, s, fit_objects, measure, key, hparams["train"], how, watch,
                                       scored), senders)

    out = jax.jit(jax.vmap(run, in_axes=(0, 0 if key.ndim else None, 0)))(senders, key, hparams)
    lone = jax.tree.leaves(senders)[0].shape[1] == 1
    return jax.tree.map(lambda v: v[:, 0], out) if lone else out
