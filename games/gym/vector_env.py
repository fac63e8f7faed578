"""`LewisVectorEnv`: `num_envs` copies of `LewisEnv` stepped by one `jax.jit(jax.vmap(...))` call."""

from __future__ import annotations

from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from games.gym.env import RENDER_MODES, setup
from games.gym.episode import _vector_reset, _vector_step, _vector_step_then_reset, key_from_seed, to_numpy
from games.gym.partners import Partner
from games.gym.render import render_episode, state_view
from games.lewis import EnvState


class LewisVectorEnv(gymnasium.vector.VectorEnv):
    """`num_envs` independent copies of `LewisEnv` stepped by one `jax.jit(jax.vmap(...))` call.

    The partner is called once per step on the whole batch, so it must take batched arrays
    (leading axis `num_envs`); the default compositional partner does.

    Autoreset: `AutoresetMode.NEXT_STEP` by default, the mode gymnasium's vector observation
    wrappers accept; as every episode lasts one step, every other `step` call then only
    starts new episodes (actions ignored, reward 0, terminated False, info {}).
    `autoreset_mode="SameStep"` plays one episode per call instead: the observation returned
    is the next episode's, the finished one is in `info["final_obs"]` / `info["final_info"]`
    (gymnasium's `VectorObservationWrapper` refuses this mode).

    `reset(seed=s)` gives env i the episodes `LewisEnv.reset(seed=s + i)` gives.
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 1, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 8,
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
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
    ):
        autoreset_mode = AutoresetMode(autoreset_mode)
        if autoreset_mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
            raise ValueError(f"autoreset_mode={autoreset_mode.value!r} is not allowed; allowed: NextStep, SameStep")
        if num_envs < 1:
            raise ValueError(f"num_envs={num_envs} is not allowed; allowed: >= 1")
        self.episode, self.params, self.single_observation_space, self.single_action_space = setup(
            kind, n_attributes, n_values, vocab_size, max_len, n_distractors, hard_negatives,
            n_objects, objects, probs, object_seed, role, partner, render_mode,
        )
        self.num_envs, self.kind, self.role, self.render_mode = num_envs, kind, role, render_mode
        self.metadata = {**self.metadata, "autoreset_mode": autoreset_mode}
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._step = _vector_step if autoreset_mode == AutoresetMode.NEXT_STEP else _vector_step_then_reset
        self._keys: jax.Array | None = None  # [num_envs]
        self._state: EnvState | None = None  # leading axis num_envs
        self._ended = False  # NEXT_STEP: the last call ended every episode (all envs move in lockstep)
        self._view: dict[str, np.ndarray] | None = None
        self._outcome: dict[str, np.ndarray] | None = None

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        if isinstance(seed, (int, np.integer)):  # gymnasium's convention: env i gets seed + i
            seed = [int(seed) + i for i in range(self.num_envs)]
        if seed is not None:
            if len(seed) != self.num_envs:
                raise ValueError(f"got {len(seed)} seeds for num_envs={self.num_envs}")
            super().reset(seed=seed[0])
            self._keys = jnp.stack([key_from_seed(s) for s in seed])
        elif self._keys is None:
            self._keys = jnp.stack([key_from_seed(int(s)) for s in self.np_random.integers(2**63, size=self.num_envs)])
        return self._start_episodes(), {}

    def _start_episodes(self):
        self._keys, obs, self._state = _vector_reset(self.episode, self._keys, self.params)
        self._ended, self._view, self._outcome = False, state_view(self._state), None
        return to_numpy(obs)

    def step(self, actions):
        if self._state is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        n = self.num_envs
        if self._ended:  # NEXT_STEP: this call starts the next episodes
            return self._start_episodes(), np.zeros(n), np.zeros(n, bool), np.zeros(n, bool), {}
        actions = jnp.asarray(actions, dtype=jnp.int32)
        self._keys, obs, state, reward, terminated, info, *final = self._step(self.episode, self._keys, self._state, actions, self.params)
        info = to_numpy(info)
        # the finished episodes, for render (under SAME_STEP `state` already holds the next ones)
        self._view = {name: info[name] for name in ("target", "message", "candidates", "target_index") if name in info}
        self._outcome = {"guess": info["guess"], "success": info["success"], "reward": np.asarray(reward)}
        self._state, self._ended = state, not final
        if final:
            everyone = np.ones(n, bool)
            info = {"final_obs": to_numpy(final[0]), "_final_obs": everyone,
                    "final_info": _with_masks(info, n), "_final_info": everyone.copy()}
        else:
            info = _with_masks(info, n)
        return to_numpy(obs), np.array(reward, np.float64), np.array(terminated, bool), np.zeros(n, bool), info

    def render(self) -> tuple[str, ...] | None:
        """One ansi string per env: the episode being played (or, after SAME_STEP, just finished)."""
        if self.render_mode != "ansi" or self._view is None:
            return None
        view, outcome = self._view, self._outcome
        return tuple(
            render_episode(
                self.episode.game, self.role, {name: value[i] for name, value in view.items()},
                None if outcome is None else {name: value[i] for name, value in outcome.items()},
            )
            for i in range(self.num_envs)
        )


def _with_masks(info: dict[str, np.ndarray], num_envs: int) -> dict[str, np.ndarray]:
    """gymnasium's vector info layout: each key `k` with a boolean mask `_k` of the envs that have it."""
    out = dict(info)
    for name in info:
        out["_" + name] = np.ones(num_envs, bool)
    return out
