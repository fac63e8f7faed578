"""Adam for stacked agents `[n, ...]`, its hyperparameters held in its state (optax.inject_hyperparams).

Each run of a population starts its optimizer states with its own learning rate, betas and weight
decay (from its Hparams); every update then reads them from the state, so a listener refit or a probe
that re-initialises Adam from an existing state keeps the run's settings (`reinit`). The weight decay
is AdamW's, decoupled (Loshchilov & Hutter 2019): update = -lr (adam + weight_decay * params); at 0 it
is Adam to the bit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def optimizer():
    """Adam (AdamW) whose hyperparameters live in its state (set at init from the run's Hparams)."""
    return optax.inject_hyperparams(optax.adamw)(learning_rate=1e-3, weight_decay=0.0)


def adam_init(params, lr, hp: dict, weight_decay=0.0):
    state = optimizer().init(params)
    return state._replace(hyperparams={**state.hyperparams, "learning_rate": lr, "b1": hp["beta1"], "b2": hp["beta2"],
                                       "eps": hp["eps"], "weight_decay": jnp.asarray(weight_decay, jnp.float32)})


def learning_rates(hp: dict) -> tuple[jax.Array, jax.Array]:
    """(sender lr, receiver lr): their own fields where set, else `lr`."""
    pick = lambda own: jnp.where(own > 0, own, hp["lr"])  # noqa: E731
    return pick(hp["sender_lr"]), pick(hp["receiver_lr"])


def adam_step(grads, opt_state, params, played: jax.Array | None):
    """Adam on stacked agents `[n, ...]`; members not in `played [n]` keep parameters and optimizer state."""
    updates, new_opt = jax.vmap(optimizer().update)(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)
    if played is not None:
        keep = lambda new, old: jnp.where(played.reshape(-1, *[1] * (new.ndim - 1)), new, old)  # noqa: E731
        new_params, new_opt = jax.tree.map(keep, new_params, params), jax.tree.map(keep, new_opt, opt_state)
    return new_params, new_opt, updates


def adam_statistics(updates, opt_state, lr: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(||update|| / lr, mean sqrt(v_hat)) of the first member: how large Adam's steps are relative to its rate."""
    first = lambda tree: jnp.concatenate([leaf[0].ravel() for leaf in jax.tree.leaves(tree)])  # noqa: E731
    norm = jnp.sqrt(jnp.sum(first(updates) ** 2)) / lr
    adam = opt_state.inner_state[0]
    count = adam.count[0].astype(jnp.float32)
    b2 = opt_state.hyperparams["b2"][0]
    # before its first step (a receiver of a population that has not played yet) Adam has no second moment: 0, not 0/0
    root = jnp.where(count > 0, jnp.mean(jnp.sqrt(first(adam.nu) / (1.0 - b2**jnp.maximum(count, 1.0)))), 0.0)
    return norm, root


def reinit(params, opt_state):
    """A fresh Adam state for `params` with the hyperparameters of `opt_state` (one member, unstacked)."""
    return optimizer().init(params)._replace(hyperparams=opt_state.hyperparams)
