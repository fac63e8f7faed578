"""One batch of games: the receiver reads the sender's message where it ends and guesses.

`rollout` returns per-example arrays `[B]`, what the losses, the components (samplers,
objectives) and the metrics read. How the receiver's output is read and scored is the game's
(games.lewis: `read`, `outcome`).
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
    attribute_correct: jax.Array | None  # [B, K] bool, each attribute of a reconstructed object (None: the guess has none)


def rollout(receiver: Receiver, episodes: games.EnvState, message: Message, game: games.LewisGame,
            unroll: bool = True, impatient: bool = False) -> Rollout:
    """The receiver plays `episodes` (a batch, leading axis B) of `game` on `message` (`unroll`: lab.core.agents).

    `impatient` (Rita, Chaabouni & Dupoux 2020, LazImpa's impatient listener): `log_rho` is the mean of
    log rho(x | m_<=t) over the message's positions up to and including its end, so the listener is
    trained to guess after every symbol and the speaker is rewarded for saying what matters first;
    `correct` and `attribute_correct` are still read where the message ends.
    """
    outcome = game.outcome(game.read(receiver, message.one_hot, episodes, unroll), episodes)
    if impatient:
        prefixes = game.read_prefixes(receiver, message.one_hot, episodes, unroll)  # [B, T, ...] after each prefix
        log_rho = jax.vmap(lambda log_p: game.outcome(log_p, episodes).log_rho, in_axes=1, out_axes=1)(prefixes)  # [B, T]
        alive = message.alive  # [B, T]: the positions up to and including the end
        outcome = outcome._replace(log_rho=jnp.sum(alive * log_rho, -1) / jnp.sum(alive, -1))
    return Rollout(message, *outcome)
