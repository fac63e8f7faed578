"""A learned per-example weighting in the style of commentaries (Raghu et al. 2021), the curriculum Weber et al. 2023 studied.

A small network (the commentary) gives every example a weight from what the example is and how
far training has gone,

    w(x, t) = 2 sigmoid(MLP([features(x), t / T])),    normalised per batch (curricula.weighting),

and is meta-learned: starting from the agents' current parameters theta, take a few training
steps on weighted batches, theta_{i+1} = theta_i - lr * grad sum_b w_b l_b(theta_i) / (sqrt(v_hat) + eps),
measure the unweighted loss of a held-out batch at the end, and differentiate it with respect to
the commentary's parameters through those steps. The gradient needs the agents, which a sampler
does not see: a component that does (lab.curriculum.meta_step, an intervention every
`meta_every` steps) computes it with `weights_of` and hands it to `record`; the next `update`
applies it with Adam (rate `meta_lr`). The last layer starts at zero: every weight is 1 until
the commentary has learned something.

`shuffle` is the control of Weber et al.'s finding that learned curricula worked as well on
randomly ordered data: with that probability a step's weights (meta-learning's included) are
permuted among the examples of its batch, so at 1 they keep their spread and their course over
training but no longer know which example they weigh. A continuous knob, so that the commentary
and its control share one compiled call.

hp: drift (0: weights of mean 1; 1: their raw mean, which then acts as a learning-rate schedule),
shuffle, meta_lr.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from curricula.base import Sampler, Stats
from curricula.weighting import normalise


def network_init(key: jax.Array, n_features: int, hidden: int) -> dict:
    """MLP [features, progress] -> tanh hidden -> one logit; the output layer at zero (every weight 1)."""
    scale = 1.0 / jnp.sqrt(n_features + 1.0)
    return {"w1": scale * jax.random.normal(key, (n_features + 1, hidden)), "b1": jnp.zeros(hidden),
            "w2": jnp.zeros(hidden), "b2": jnp.zeros(())}


def raw_weights(params: dict, x: jax.Array, progress: jax.Array) -> jax.Array:
    """w = 2 sigmoid(MLP([x, t/T])) in (0, 2), `[B]` for `x: [B, F]`."""
    inputs = jnp.concatenate([x, jnp.broadcast_to(progress, (x.shape[0], 1))], axis=-1)
    return 2.0 * jax.nn.sigmoid(jnp.tanh(inputs @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"])


def weights_of(params: dict, x: jax.Array, progress: jax.Array, drift, shuffle, key: jax.Array) -> jax.Array:
    """The batch's weights `[B]`: raw, permuted among the batch with probability `shuffle` (`key`), normalised by `drift`."""
    key_coin, key_order = jax.random.split(key)
    w = raw_weights(params, x, progress)
    w = jnp.where(jax.random.uniform(key_coin) < shuffle, w[jax.random.permutation(key_order, w.shape[0])], w)
    return normalise(w, drift)


def commentary(features: np.ndarray, train_steps: int, hidden: int = 16) -> Sampler:
    """Commentary weights over the train objects, seen as `features [n_train, F]` (what an agent sees of each: the game's
    `features`, one-hot attributes in the games over objects); draws follow the world's distribution unchanged."""
    x_all = jnp.asarray(features, jnp.float32)
    meta_optimizer = optax.scale_by_adam()

    def weights(state, ids, step, hp):
        key = jax.random.fold_in(jax.random.wrap_key_data(state["key"]), step)
        return weights_of(state["params"], x_all[ids], step / train_steps, hp["drift"], hp["shuffle"], key)

    def init(key):
        key_net, key_shuffle = jax.random.split(key)
        params = network_init(key_net, x_all.shape[1], hidden)
        zero = jnp.zeros((), jnp.float32)
        return {"params": params, "adam": meta_optimizer.init(params), "grad": jax.tree.map(jnp.zeros_like, params),
                "pending": jnp.zeros((), bool), "key": jax.random.key_data(key_shuffle), "drift": zero, "shuffle": zero, "weight_mean": zero, "weight_std": zero,
                "meta_grad_norm": zero}

    def update(state, stats: Stats, hp):
        w = weights(state, stats.ids, stats.step, hp)
        direction, adam = meta_optimizer.update(state["grad"], state["adam"])
        stepped = jax.tree.map(lambda p, d: p - hp["meta_lr"] * d, state["params"], direction)
        keep = lambda new, old: jnp.where(state["pending"], new, old)  # noqa: E731
        return {**state, "params": jax.tree.map(keep, stepped, state["params"]), "adam": jax.tree.map(keep, adam, state["adam"]),
                "pending": jnp.zeros((), bool), "drift": jnp.asarray(hp["drift"], jnp.float32),  # the meta step reads them
                "shuffle": jnp.asarray(hp["shuffle"], jnp.float32),
                "weight_mean": jnp.mean(w), "weight_std": jnp.std(w)}

    def summary(state, hp):
        return {"curriculum_weight_mean": state["weight_mean"], "curriculum_weight_std": state["weight_std"],
                "meta_grad_norm": state["meta_grad_norm"]}

    return Sampler(init=init, env=lambda state, base, step, hp: base, update=update, weights=weights, summary=summary)


def record(state, grad: dict):
    """Hand the commentary a meta-gradient (same tree as its parameters); the next `update` applies it."""
    return {**state, "grad": grad, "pending": jnp.ones((), bool), "meta_grad_norm": optax.tree.norm(grad)}


def parameters(state) -> dict:
    return state["params"]


def cached_knobs(state) -> tuple[jax.Array, jax.Array]:
    """The run's (drift, shuffle), as the last `update` saw them (interventions are not handed the curriculum's hp)."""
    return state["drift"], state["shuffle"]

