"""One episode of the agent's role as pure functions; the partner is reached through `jax.pure_callback`.

One jitted function (vmapped in the vector env) plays the agent's turn and the partner's turn and
scores the episode. It is compiled once per game structure, role and partner, and shared by every
env built alike.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from games.gym.partners import Partner
from games.lewis import Action, EnvParams, EnvState, LewisGame


def _call_partner(partner: Partner, per_episode: tuple[int, ...], *args: jax.Array) -> jax.Array:
    """Ask the host-side partner; under vmap it sees the whole batch at once (leading axes of args[0])."""

    def host(*arrays):
        out = np.asarray(partner(*(np.asarray(a) for a in arrays)))
        expected = arrays[0].shape[:-1] + per_episode  # args[0] is [..., K] (or [..., d]) or [..., max_len]
        if out.shape != expected:
            raise ValueError(f"partner returned shape {out.shape}, expected {expected}")
        return out.astype(np.int32)

    result = jax.ShapeDtypeStruct(per_episode, jnp.int32)
    return jax.pure_callback(host, result, *args, vmap_method="broadcast_all")


class Episode:
    """The agent's side of one episode: `reset` and `step` as pure functions of a key and a state.

    Both split the key they are given and return the next one, so an env instance (or each env
    of a vector env) follows its own key chain: the same seed, the same episodes.

    Episodes compare equal when the game's structure, the role and the partner are equal, so
    envs built alike share one compiled function (the episode is a static argument to jit).
    """

    def __init__(self, game: LewisGame, role: str, partner: Partner):
        self.game, self.role, self.partner = game, role, partner
        self.chooses = game.n_candidates > 1  # the listener sees candidates and points at one
        self.guess_shape = game.guess_shape

    def _identity(self) -> tuple:
        try:
            partner = (hash(self.partner), self.partner)
        except TypeError:  # unhashable partner: itself only (jit's cache keeps it alive, so ids stay unique)
            partner = id(self.partner)
        return (type(self.game), tuple(sorted(vars(self.game).items())), self.role, partner)

    def __eq__(self, other) -> bool:
        return isinstance(other, Episode) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def observe(self, state: EnvState) -> jax.Array | dict[str, jax.Array]:
        if self.role == "speaker":
            return state.target
        obs = {"message": state.message}
        if self.chooses:
            obs["candidates"] = state.candidates
        return obs

    def no_guess(self) -> jax.Array:
        return jnp.zeros(self.guess_shape, jnp.int32)

    def reset(self, key: jax.Array, params: EnvParams):
        """-> (next key, observation, state); a listener agent starts with the partner's message."""
        key, sub = jax.random.split(key)
        _, state = self.game.reset(sub, params)
        if self.role == "listener":
            message = _call_partner(self.partner, (self.game.max_len,), state.target)
            _, state, *_ = self.game.step(sub, state, Action(message, self.no_guess()), params)
        return key, self.observe(state), state

    def step(self, key: jax.Array, state: EnvState, action: jax.Array, params: EnvParams):
        """-> (next key, observation, state, reward, terminated, info); the episode ends here."""
        key, sub = jax.random.split(key)
        if self.role == "speaker":
            _, state, *_ = self.game.step(sub, state, Action(action, self.no_guess()), params)
            shown = state.candidates if self.chooses else state.candidates[:0]  # [C, ...] / [0, ...]
            guess = _call_partner(self.partner, self.guess_shape, state.message, shown)
        else:
            guess = action
        _, state, reward, terminated, _, game_info = self.game.step(sub, state, Action(state.message, guess), params)
        info = {"success": game_info["success"], "target": state.target, "message": state.message, "guess": guess}
        if self.chooses:
            info["candidates"] = state.candidates
            info["target_index"] = state.target_index
        return key, self.observe(state), state, reward, terminated, info


@partial(jax.jit, static_argnums=0)
def _reset(episode: Episode, key, params):
    return episode.reset(key, params)


@partial(jax.jit, static_argnums=0)
def _step(episode: Episode, key, state, action, params):
    return episode.step(key, state, action, params)


@partial(jax.jit, static_argnums=0)
def _vector_reset(episode: Episode, keys, params):
    return jax.vmap(episode.reset, in_axes=(0, None))(keys, params)


@partial(jax.jit, static_argnums=0)
def _vector_step(episode: Episode, keys, states, actions, params):
    return jax.vmap(episode.step, in_axes=(0, 0, 0, None))(keys, states, actions, params)


@partial(jax.jit, static_argnums=0)
def _vector_step_then_reset(episode: Episode, keys, states, actions, params):
    """SAME_STEP autoreset: play the episodes, start the next ones, keep the final observations."""

    def step_then_reset(key, state, action):
        key, final_obs, _, reward, terminated, info = episode.step(key, state, action, params)
        key, obs, state = episode.reset(key, params)
        return key, obs, state, reward, terminated, info, final_obs

    return jax.vmap(step_then_reset)(keys, states, actions)


def key_from_seed(seed: int) -> jax.Array:
    """A JAX key from any non-negative int (gymnasium seeds may exceed 64 bits)."""
    return jax.random.wrap_key_data(np.random.SeedSequence(seed).generate_state(2, np.uint32))


def to_numpy(tree):
    """Fresh numpy arrays (callers keep what they are given), integers as int64."""

    def convert(x):
        x = np.array(x)
        return x.astype(np.int64) if np.issubdtype(x.dtype, np.integer) else x

    return jax.tree.map(convert, jax.device_get(tree))
