"""The reconstruction game: the listener rebuilds the target object, one distribution per attribute.

Reward: the fraction of attributes right; success: all of them. The receiver's output is
rho(x_k = v | m) for every attribute k, so rho(x|m) = prod_k rho(x_k|m) is a distribution over
every object of the space and the game loss splits into L_info + L_adapt (Rita et al. 2022;
lab.core.ideal). This is EGG's basic reconstruction game.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from games.lewis import EnvState, LewisGame, Outcome


class LewisReconstruction(LewisGame):
    kind = "reconstruction"
    DECOMPOSABLE = True

    @property
    def guess_shape(self) -> tuple[int, ...]:
        return (self.n_attributes,)

    @property
    def chance_loss(self) -> float:
        return self.n_attributes * math.log(self.n_values)

    # static: the loss decomposition reads a reconstruction without a game at hand (lab.analysis.decomposition)
    @staticmethod
    def read(receiver, one_hot: jax.Array, episodes: EnvState, unroll: bool = True) -> jax.Array:
        """log rho(x_k = v | m) `[B, K, V]`."""
        return receiver.read(one_hot, unroll=unroll)

    @staticmethod
    def read_prefixes(receiver, one_hot: jax.Array, episodes: EnvState, unroll: bool = True) -> jax.Array:
        """log rho(x_k = v | m_<=t) `[B, T, K, V]`."""
        return receiver.reconstruct(one_hot, unroll)

    @staticmethod
    def outcome(log_p: jax.Array, episodes: EnvState) -> Outcome:
        targets = episodes.target  # [B, K]
        log_rho = jnp.take_along_axis(log_p, targets[..., None], axis=-1)[..., 0].sum(-1)
        guess = jnp.argmax(log_p, -1)  # [B, K] the most likely object
        return Outcome(log_rho, LewisReconstruction.success(episodes, guess), guess == targets)

    @staticmethod
    def reward(state: EnvState, guess: jax.Array) -> jax.Array:
        """The fraction of the attributes right (of one episode, or `[B]` of a batch)."""
        return jnp.mean(guess == state.target, axis=-1)

    @staticmethod
    def success(state: EnvState, guess: jax.Array) -> jax.Array:
        """Every attribute right (of one episode, or `[B]` of a batch)."""
        return jnp.all(guess == state.target, axis=-1)

    def describe_guess(self, guess) -> str:
        return self.describe(guess)

    @staticmethod
    def describe_listener(config) -> str:
        return "rebuilds the object, attribute by attribute"


def reconstruction_episodes(objects: jax.Array, max_len: int) -> EnvState:
    """Reconstruction episodes, one per target `objects [n, K]`, at the listener's turn-to-be (a batch)."""
    n = objects.shape[0]
    return EnvState(target=objects, candidates=objects[:, None], target_index=jnp.zeros(n, jnp.int32),
                    message=jnp.zeros((n, max_len), jnp.int32), turn=jnp.zeros(n, jnp.int32), shown=jnp.ones((n, 1), bool))
