"""`LewisEnv`: one episode of a Lewis game, the agent playing one role against a fixed partner."""

from __future__ import annotations

from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium import spaces

from games.gym.episode import Episode, _reset, _step, key_from_seed, to_numpy
from games.gym.partners import Partner, compositional_partner
from games.gym.render import render_episode, state_view
from games.lewis import EnvParams, EnvState, LewisGame
from games.registry import make_game
from games.objects import object_set

ROLES = ("speaker", "listener")
RENDER_MODES = ("ansi",)


def setup(
    kind, n_attributes, n_values, vocab_size, max_len, n_distractors, hard_negatives,
    n_objects, objects, probs, object_seed, role, partner, render_mode, game=None,
) -> tuple[Episode, EnvParams, spaces.Space, spaces.Space]:
    """Validate the arguments; build the episode functions, the params and the single spaces.

    `game` (a LewisGame, with `objects` its referents) replaces the game the sizes describe: any kind, feature vectors too.
    """
    if role not in ROLES:
        raise ValueError(f"role={role!r} is not allowed; allowed: {', '.join(ROLES)}")
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode={render_mode!r} is not allowed; allowed: None, {', '.join(RENDER_MODES)}")
    if game is None:
        game = make_game(kind, n_attributes, n_values, vocab_size, max_len, n_distractors, hard_negatives)
        if objects is None:
            objects = object_set(n_attributes, n_values, n_objects, object_seed)
    elif objects is None:
        raise ValueError(f"a given game plays given referents: pass objects= ([n, ...] of the {game.kind} game)")
    objects = np.asarray(objects)
    if game.OBJECTS:
        if objects.ndim != 2 or objects.shape[1] != game.n_attributes:
            raise ValueError(f"objects must be [n, n_attributes={game.n_attributes}], got shape {objects.shape}")
        if objects.min() < 0 or objects.max() >= game.n_values:
            raise ValueError(f"objects must hold values in [0, n_values={game.n_values}), got [{objects.min()}, {objects.max()}]")
    elif objects.ndim != 2 or objects.shape[1] != game.n_features:
        raise ValueError(f"objects must be [n, {game.n_features}] feature vectors, got shape {objects.shape}")
    if len(objects) < game.n_candidates:
        raise ValueError(f"the {game.kind} game shows {game.n_candidates} candidates: needs at least {game.n_candidates} "
                         f"objects, got {len(objects)}")
    if probs is not None and np.shape(probs) != (len(objects),):
        raise ValueError(f"probs must be [n_objects={len(objects)}], got shape {np.shape(probs)}")
    if partner is None:
        partner = compositional_partner(role, game)

    message_space = spaces.MultiDiscrete([game.vocab_size] * game.max_len)
    if role == "speaker":
        observation_space, action_space = referent_space(game), message_space
    else:
        observation = {"message": message_space}
        if game.n_candidates > 1:
            observation["candidates"] = referent_space(game, game.n_candidates)
            action_space = spaces.Discrete(game.n_candidates)
        else:
            action_space = referent_space(game)
        observation_space = spaces.Dict(observation)
    return Episode(game, role, partner), game.default_params(objects, probs), observation_space, action_space


def referent_space(game, n: int | None = None) -> spaces.Space:
    """The space of one referent of `game` (of `n` stacked ones): its attribute values, or its feature vector."""
    leading = () if n is None else (n,)
    if game.OBJECTS:
        return spaces.MultiDiscrete(np.full((*leading, game.n_attributes), game.n_values))
    return spaces.Box(-np.inf, np.inf, (*leading, game.n_features), np.float32)


class LewisEnv(gymnasium.Env):
    """One episode of a Lewis game, the agent playing `role` against a fixed `partner`.

    * speaker: observation the target `MultiDiscrete([V]*K)`, action the message
      `MultiDiscrete([vocab_size]*max_len)` (symbol 0 is EOS; what follows it is dropped).
    * listener: observation `Dict(message[, candidates])` after the partner spoke, action the
      guess (`MultiDiscrete([V]*K)` in reconstruction, `Discrete(n_distractors + 1)` in
      discrimination).

    Every episode ends after the agent's one step (terminated=True); the reward is the game's
    (reconstruction: fraction of attributes right, discrimination: 0/1), and `info` carries
    `success`, `target`, `message`, `guess` (and `candidates`, `target_index`). Same seed in
    `reset(seed=...)`, same episodes.
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 1}

    def __init__(
        self,
        kind: str = "reconstruction",
        n_attributes: int = 4,
        n_values: int = 4,
        vocab_size: int = 10,
        max_len: int = 5,
        n_distractors: int = 4,
        hard_negatives: bool = False,
        n_objects: int = 0,
        objects: np.ndarray | None = None,
        probs: np.ndarray | None = None,
        object_seed: int = 0,
        role: str = "speaker",
        partner: Partner | None = None,
        render_mode: str | None = None,
        game: LewisGame | None = None,
    ):
        """`objects` `[n, K]` overrides `n_objects` (0: all V^K, else that many drawn with `object_seed`);
        `probs` `[n]` is p(target), uniform when None; `partner=None` plays the compositional code. `game` (with
        `objects` its referents) plays that game instead of the one the sizes describe (`lab play` a trained run's)."""
        self.episode, self.params, self.observation_space, self.action_space = setup(
            kind, n_attributes, n_values, vocab_size, max_len, n_distractors, hard_negatives,
            n_objects, objects, probs, object_seed, role, partner, render_mode, game,
        )
        self.kind, self.role, self.render_mode = self.episode.game.kind, role, render_mode
        self._key: jax.Array | None = None
        self._state: EnvState | None = None
        self._view: dict[str, np.ndarray] | None = None  # numpy copy of the state, for render
        self._outcome: dict[str, Any] | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None or self._key is None:
            self._key = key_from_seed(seed if seed is not None else int(self.np_random.integers(2**63)))
        self._key, obs, self._state = _reset(self.episode, self._key, self.params)
        self._view, self._outcome = state_view(self._state), None
        return to_numpy(obs), {}

    def step(self, action):
        if self._state is None or self._outcome is not None:
            raise gymnasium.error.ResetNeeded("the episode is over (or never started): call reset()")
        action = jnp.asarray(action, dtype=jnp.int32)
        self._key, obs, self._state, reward, terminated, info = _step(self.episode, self._key, self._state, action, self.params)
        info = to_numpy(info)
        info["success"] = bool(info["success"])
        self._view = state_view(self._state)
        self._outcome = {"guess": info["guess"], "success": info["success"], "reward": float(reward)}
        return to_numpy(obs), float(reward), bool(terminated), False, info

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self._view is None:
            return None
        return render_episode(self.episode.game, self.role, self._view, self._outcome)
