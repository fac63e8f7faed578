"""One batch of games: the receiver reads the sender's message where it ends and guesses.

`rollout` returns per-example arrays `[B]`, what the losses, the components (samplers,
objectives) and the metrics read.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

import games
from lab.core.agents import Message, Receiver


class Rollout(NamedTuple):
    message: Message
    log_rho: jax.Array  # [B] log rho(x|m), read where the message ends
    correct: jax.Array  # [B] bool, the receiver's best guess is the target
    attribute_correct: jax.Array  # [B, K] bool (reconstruction) or [B, 1] (discrimination: = correct)


def guess_log_probs(receiver: Receiver, one_hot: jax.Array, episodes: games.EnvState, kind: str,
                    unroll: bool = True) -> jax.Array:
    """The receiver's reading at the end: `[B, K, V]` (reconstruction) or `[B, C]` over the candidates."""
    if kind == "reconstruction":
        return receiver.read(one_hot, unroll=unroll)
    return receiver.read(one_hot, episodes.candidates, episodes.shown, unroll=unroll)


def prefix_log_rho(receiver: Receiver, one_hot: jax.Array, episodes: games.EnvState, kind: str, unroll: bool = True) -> jax.Array:
    """log rho(x | m_<=t) `[B, T]`: the receiver's log-probability of the right answer after reading each prefix."""
    if kind == "reconstruction":
        log_p = receiver.reconstruct(one_hot, unroll)  # [B, T, K, V]
        return jnp.take_along_axis(log_p, episodes.target[:, None, :, None], axis=-1)[..., 0].sum(-1)
    log_p = receiver.discriminate(one_hot, episodes.candidates, episodes.shown, unroll)  # [B, T, C]
    return jnp.take_along_axis(log_p, episodes.target_index[:, None, None], axis=-1)[..., 0]


def rollout(receiver: Receiver, episodes: games.EnvState, message: Message, kind: str, unroll: bool = True,
            impatient: bool = False) -> Rollout:
    """The receiver plays `episodes` (a batch, leading axis B) on `message` (`unroll`: lab.core.agents).

    `impatient` (Rita, Chaabouni & Dupoux 2020, LazImpa's impatient listener): `log_rho` is the mean of
    log rho(x | m_<=t) over the message's positions up to and including its end, so the listener is
    trained to guess after every symbol and the speaker is rewarded for saying what matters first;
    `correct` and `attribute_correct` are still read where the message ends.
    """
    log_p = guess_log_probs(receiver, message.one_hot, episodes, kind, unroll)
    if kind == "reconstruction":
        targets = episodes.target  # [B, K]
        log_rho = jnp.take_along_axis(log_p, targets[..., None], axis=-1)[..., 0].sum(-1)
        attribute_correct = jnp.argmax(log_p, -1) == targets
        correct = jnp.all(attribute_correct, -1)
    else:
        log_rho = jnp.take_along_axis(log_p, episodes.target_index[:, None], axis=-1)[:, 0]
        correct = jnp.argmax(log_p, -1) == episodes.target_index
        attribute_correct = correct[:, None]
    if impatient:
        alive = message.alive  # [B, T]: the positions up to and including the end
        log_rho = jnp.sum(alive * prefix_log_rho(receiver, message.one_hot, episodes, kind, unroll), -1) / jnp.sum(alive, -1)
    return Rollout(message, log_rho, correct, attribute_correct)
