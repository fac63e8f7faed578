"""Self-paced learning (Kumar et al. 2010): train on the examples whose loss is below a threshold that grows.

    min_{theta, v in [0,1]^n} sum_i v_i l_i - lambda sum_i v_i    =>    v_i = 1[l_i < lambda]

Here l_i is the loss the example had when last played (every train object is drawn from the
world's distribution, so the memory stays fresh), and the threshold grows with the curriculum's
pacing: lambda_t = c(t) * L_chance (c(t) the competence of curricula.pacing, L_chance the loss of
a listener guessing at random), every example admitted once c(t) = 1. The easiest example of a
batch always counts. The 0/1 weights are normalised to mean 1 per batch (curricula.weighting);
with `drift` their mean, the fraction selected, grows over training as a learning-rate warm-up.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from curricula.base import Sampler, Stats
from curricula.pacing import competence
from curricula.weighting import normalise


def self_paced(n_objects: int, chance_loss: float, train_steps: int) -> Sampler:
    """Self-paced weights over `n_objects` train objects. hp: initial, power, pace (the threshold's pacing), drift."""

    def threshold(step, hp):
        c = competence(step, hp["pace"] * train_steps, hp["initial"], hp["power"])
        return jnp.where(c < 1.0, c * chance_loss, jnp.inf)

    def selected(state, ids, step, hp) -> jax.Array:
        remembered = state["memory"][ids]  # [B]
        return (remembered <= jnp.maximum(threshold(step, hp), jnp.min(remembered))).astype(jnp.float32)

    def weights(state, ids, step, hp):
        return normalise(selected(state, ids, step, hp), hp["drift"])

    def update(state, stats: Stats, hp):
        chosen = selected(state, stats.ids, stats.step, hp)
        total = jnp.zeros(n_objects).at[stats.ids].add(stats.loss)
        count = jnp.zeros(n_objects).at[stats.ids].add(1.0)
        memory = jnp.where(count > 0, total / jnp.maximum(count, 1.0), state["memory"])  # duplicates averaged
        return {"memory": memory, "selected": jnp.mean(chosen), "weight_mean": jnp.mean(normalise(chosen, hp["drift"])),
                "threshold": jnp.minimum(threshold(stats.step, hp), chance_loss)}

    def init(key):
        zero = jnp.zeros((), jnp.float32)
        # unplayed examples remember loss 0: every example counts until it has been seen once
        return {"memory": jnp.zeros(n_objects, jnp.float32), "selected": zero, "weight_mean": zero, "threshold": zero}

    def summary(state, hp):
        return {"curriculum_selected": state["selected"], "curriculum_weight_mean": state["weight_mean"],
                "curriculum_threshold": state["threshold"]}

    return Sampler(init=init, env=lambda state, base, step, hp: base, update=update, weights=weights, summary=summary)
