"""Components for merging: the held-out sampler, and the REINFORCE reward terms of WARP and rewarded soups.

* `validation_sampler`: no training step draws the `merge.validation` fraction of the train
  objects, so greedy soups and model selection have held-out games from the train distribution.
* KL to the EMA anchor (WARP, Ramé et al. 2024, Algorithm 1):
      r_beta(x, m) = r(x, m) - beta log[pi(m|x) / pi_ema(m|x)],   m ~ pi(.|x)
  whose mean over m is r - beta KL(pi || pi_ema); pi_ema is the EMA of the sender's weights
  (lab.interventions.ema, `interventions.ema_rate` = WARP's mu).
* Structure (a proxy reward for rewarded soups, Ramé et al. 2023): each message's topographic
  similarity with the rest of its batch, the Pearson correlation over j != b between the Hamming
  distances of the objects x_b, x_j and the edit distances of the messages m_b, m_j: a row of
  the batch's topsim, credited to the message it is about (over the attributes of the targets, so the
  world must have them: a feature set needs its labels).

Every term reads its weight from `context.hparams["merge"]` (continuous, vmappable) and is
compiled in only when its weight in the config is above 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import curricula
from curricula.base import Sampler
from games.messages import truncate_at_eos
from lab.core import metrics
from lab.core.estimators import Context, Reward, reads
from lab.core.population import take
from lab.core.rollout import Rollout
from lab.core.spec import Spec


def validation_mask(n_train: int, fraction: float, seed: int) -> np.ndarray:
    """`[n_train]` bool: the train objects held out for validation, fixed by the world's seed."""
    held_out = np.zeros(n_train, bool)
    held_out[np.random.default_rng([seed, 13]).permutation(n_train)[: round(n_train * fraction)]] = True
    return held_out


def validation_of(spec: Spec) -> np.ndarray:
    """`[n_train]` bool for the spec's world (all False when `merge.validation` is 0)."""
    return validation_mask(len(spec.world.train), spec.config.merge.validation, spec.config.game.seed)


def validation_sampler(spec: Spec, sampler: Sampler | None = None) -> Sampler:
    """`sampler` (default: the world's distribution) with the held-out objects' probability set to 0, the rest renormalised."""
    held_out = jnp.asarray(validation_of(spec))
    sampler = sampler or curricula.identity()

    def env(state, base, step, hp):
        params = sampler.env(state, base, step, hp)
        probs = jnp.where(held_out, 0.0, params.probs)
        return params.replace(probs=probs / jnp.sum(probs))

    return sampler._replace(env=env)


def kl_to_anchor(spec: Spec, anchor: str = "ema") -> Reward:
    """-log[pi(m|x) / pi_ema(m|x)] `[B]` of the sampled messages; pi_ema is the sender kept by the intervention `anchor`."""

    def term(ro: Rollout, context: Context) -> jax.Array:
        sender = spec.agents.sender(take(context.components[anchor]["senders"], 0))
        return -(ro.message.log_prob - sender.log_prob(context.targets, ro.message.symbols))

    return Reward(term, reads=(anchor,))


def message_topsim(objects: jax.Array, messages: jax.Array) -> jax.Array:
    """`[B]`: Pearson over j != b of (Hamming(x_b, x_j), edit(m_b, m_j)), for `objects [B, K]`, `messages [B, T]`."""
    B = objects.shape[0]
    messages = truncate_at_eos(messages)
    i, j = np.meshgrid(np.arange(B), np.arange(B), indexing="ij")
    hamming = jnp.sum(objects[:, None, :] != objects[None, :, :], axis=-1).astype(jnp.float32)  # [B, B]
    edit = metrics.edit_distance_jax(messages[i.ravel()], messages[j.ravel()]).reshape(B, B).astype(jnp.float32)
    others = 1.0 - jnp.eye(B)
    return jax.vmap(metrics.pearson)(hamming, edit, others)


def structure(spec: Spec) -> Reward:
    """Each message's topsim with the rest of its batch, over the targets' attributes."""
    attributes = jnp.asarray(spec.world.attributes[spec.world.train])  # [n_train, K]; `ids` index them

    def term(ro: Rollout, context: Context) -> jax.Array:
        return message_topsim(attributes[context.ids], ro.message.symbols)

    return Reward(term)


def shaped(spec: Spec, reward: Reward) -> Reward:
    """`reward` plus the merging terms whose weight in the config is above 0 (itself when none is)."""
    m = spec.config.merge
    terms = []
    if m.kl_beta > 0:
        terms.append(("kl_beta", kl_to_anchor(spec)))
    if m.topsim_weight > 0:
        terms.append(("topsim_weight", structure(spec)))
    if not terms:
        return reward

    def total(ro: Rollout, context: Context) -> jax.Array:
        hp = context.hparams["merge"]
        return reward(ro, context) + sum(hp[name] * term(ro, context) for name, term in terms)

    return Reward(total, reads=tuple(dict.fromkeys(name for r in (reward, *(t for _, t in terms)) for name in reads(r))))
