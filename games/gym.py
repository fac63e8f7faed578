"""gymnasium adapters: play one role of a Lewis game against a fixed partner.

The agent is the speaker or the listener; the other role is played by a *partner*, a plain
callable on numpy integer arrays, so a trained agent, a hand-written code or a script can sit
on the other side:

* partner speaker:  `partner(target: [..., K]) -> message: [..., max_len]`
* partner listener: `partner(message: [..., max_len], candidates: [..., C, K]) -> guess`,
  the guess `[..., K]` in reconstruction (where `candidates` is empty, C = 0, so the listener
  is not handed the target) and `[...]` in discrimination (an index into the candidates).

`LewisEnv` calls its partner on one episode (no leading axes). `LewisVectorEnv` calls it once
per step on the whole batch (a leading `num_envs` axis), so a partner given to it must accept
batched arrays. The default partner, a fixed compositional code, does both.

Under the hood run the pure functions of `games.lewis`; the partner is reached from inside the
compiled function through `jax.pure_callback`, so one jitted function (vmapped in the vector
env) plays the agent's turn and the partner's turn and scores the episode. It is compiled once
per game structure, role and partner, and shared by every env built alike.

>>> import gymnasium, games
>>> env = gymnasium.make("games/LewisReconstruction-v0", role="speaker", render_mode="ansi")
>>> target, info = env.reset(seed=0)
>>> message = games.gym.compositional_message(target, max_len=5)  # the partner's own code
>>> _, reward, terminated, _, info = env.step(message)
>>> reward, terminated, info["success"]
(1.0, True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from games.lewis import Action, EnvParams, EnvState, LewisGame, make_game
from games.objects import object_set

ROLES = ("speaker", "listener")
RENDER_MODES = ("ansi",)
RECONSTRUCTION_ID = "games/LewisReconstruction-v0"
DISCRIMINATION_ID = "games/LewisDiscrimination-v0"

Partner = Callable[..., Any]


# -- the default partner: a fixed compositional code ----------------------------------------------


def compositional_message(target: np.ndarray, max_len: int) -> np.ndarray:
    """Position k carries attribute k as symbol value + 1, then EOS padding: `[..., K] -> [..., max_len]`."""
    target = np.asarray(target, dtype=np.int64)
    padding = np.zeros(target.shape[:-1] + (max_len - target.shape[-1],), dtype=np.int64)
    return np.concatenate([target + 1, padding], axis=-1)


def compositional_decode(message: np.ndarray, n_attributes: int, n_values: int) -> np.ndarray:
    """Inverse of `compositional_message`; symbols outside the code are clipped: `[..., max_len] -> [..., K]`."""
    return np.clip(np.asarray(message, dtype=np.int64)[..., :n_attributes] - 1, 0, n_values - 1)


@dataclass(frozen=True)
class CompositionalSpeaker:
    """Partner speaker of the compositional code; works batched or not."""

    max_len: int

    def __call__(self, target: np.ndarray) -> np.ndarray:
        return compositional_message(target, self.max_len)


@dataclass(frozen=True)
class CompositionalListener:
    """Partner listener of the compositional code; in discrimination, the best-matching candidate."""

    kind: str
    n_attributes: int
    n_values: int

    def __call__(self, message: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        decoded = compositional_decode(message, self.n_attributes, self.n_values)  # [..., K]
        if self.kind == "reconstruction":
            return decoded
        matches = np.sum(np.asarray(candidates) == decoded[..., None, :], axis=-1)  # [..., C]
        return np.argmax(matches, axis=-1)


def compositional_partner(role: str, kind: str, n_attributes: int, n_values: int, vocab_size: int, max_len: int) -> Partner:
    """The partner of an agent playing `role`: a compositional listener for a speaker, and vice versa."""
    if max_len < n_attributes or vocab_size <= n_values:
        raise ValueError(
            f"the default compositional partner needs max_len >= n_attributes and vocab_size > n_values "
            f"(got max_len={max_len}, n_attributes={n_attributes}, vocab_size={vocab_size}, "
            f"n_values={n_values}); pass partner= explicitly"
        )
    if role == "speaker":
        return CompositionalListener(kind, n_attributes, n_values)
    return CompositionalSpeaker(max_len)


# -- one episode as pure functions -----------------------------------------------------------------


def _call_partner(partner: Partner, per_episode: tuple[int, ...], *args: jax.Array) -> jax.Array:
    """Ask the host-side partner; under vmap it sees the whole batch at once (leading axes of args[0])."""

    def host(*arrays):
        out = np.asarray(partner(*(np.asarray(a) for a in arrays)))
        expected = arrays[0].shape[:-1] + per_episode  # args[0] is [..., K] or [..., max_len]
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
        self.discrimination = game.kind == "discrimination"
        self.guess_shape = () if self.discrimination else (game.n_attributes,)

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
        if self.discrimination:
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
            shown = state.candidates if self.discrimination else state.candidates[:0]  # [C, K] / [0, K]
            guess = _call_partner(self.partner, self.guess_shape, state.message, shown)
        else:
            guess = action
        _, state, reward, terminated, _, game_info = self.game.step(sub, state, Action(state.message, guess), params)
        info = {"success": game_info["success"], "target": state.target, "message": state.message, "guess": guess}
        if self.discrimination:
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


def _to_numpy(tree):
    """Fresh numpy arrays (callers keep what they are given), integers as int64."""

    def convert(x):
        x = np.array(x)
        return x.astype(np.int64) if np.issubdtype(x.dtype, np.integer) else x

    return jax.tree.map(convert, jax.device_get(tree))


# -- setup shared by both envs ---------------------------------------------------------------------


def _setup(
    kind, n_attributes, n_values, vocab_size, max_len, n_distractors, hard_negatives,
    n_objects, objects, probs, object_seed, role, partner, render_mode,
) -> tuple[Episode, EnvParams, spaces.Space, spaces.Space]:
    """Validate the arguments; build the episode functions, the params and the single spaces."""
    if role not in ROLES:
        raise ValueError(f"role={role!r} is not allowed; allowed: {', '.join(ROLES)}")
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode={render_mode!r} is not allowed; allowed: None, {', '.join(RENDER_MODES)}")
    game = make_game(kind, n_attributes, n_values, vocab_size, max_len, n_distractors, hard_negatives)
    if objects is None:
        objects = object_set(n_attributes, n_values, n_objects, object_seed)
    objects = np.asarray(objects)
    if objects.ndim != 2 or objects.shape[1] != n_attributes:
        raise ValueError(f"objects must be [n, n_attributes={n_attributes}], got shape {objects.shape}")
    if objects.min() < 0 or objects.max() >= n_values:
        raise ValueError(f"objects must hold values in [0, n_values={n_values}), got [{objects.min()}, {objects.max()}]")
    if len(objects) < game.n_candidates:
        raise ValueError(
            f"discrimination with n_distractors={n_distractors} needs at least {game.n_candidates} objects, got {len(objects)}"
        )
    if probs is not None and np.shape(probs) != (len(objects),):
        raise ValueError(f"probs must be [n_objects={len(objects)}], got shape {np.shape(probs)}")
    if partner is None:
        partner = compositional_partner(role, kind, n_attributes, n_values, vocab_size, max_len)

    target_space = spaces.MultiDiscrete([n_values] * n_attributes)
    message_space = spaces.MultiDiscrete([vocab_size] * max_len)
    if role == "speaker":
        observation_space, action_space = target_space, message_space
    else:
        observation = {"message": message_space}
        if kind == "discrimination":
            observation["candidates"] = spaces.MultiDiscrete(np.full((game.n_candidates, n_attributes), n_values))
            action_space = spaces.Discrete(game.n_candidates)
        else:
            action_space = target_space
        observation_space = spaces.Dict(observation)
    return Episode(game, role, partner), game.default_params(objects, probs), observation_space, action_space


# -- ansi rendering --------------------------------------------------------------------------------


def _object_text(obj) -> str:
    return " ".join(f"a{k}={int(v)}" for k, v in enumerate(obj))


def _message_text(message) -> str:
    symbols = []
    for s in message:
        if s == 0:
            symbols.append("<eos>")
            break
        symbols.append(str(int(s)))
    return " ".join(symbols)


def render_episode(kind: str, role: str, state: dict[str, np.ndarray], outcome: dict[str, Any] | None) -> str:
    """A readable view of one episode: before the agent's move, only what its role may see."""
    lines = [f"Lewis {kind} game, the agent is the {role}"]
    over = outcome is not None
    show_target = over or role == "speaker"
    show_message = over or role == "listener"
    lines.append("target: " + (_object_text(state["target"]) if show_target else "? (for the listener to find)"))
    lines.append("message: " + (_message_text(state["message"]) if show_message else "? (for the speaker to send)"))
    if kind == "discrimination" and show_message:
        lines.append("candidates:")
        for c, candidate in enumerate(state["candidates"]):
            mark = "   <- target" if over and c == state["target_index"] else ""
            lines.append(f"  {c}: {_object_text(candidate)}{mark}")
    if over:
        guess = outcome["guess"]
        guess_text = f"candidate {int(guess)}" if kind == "discrimination" else _object_text(guess)
        verdict = "right" if outcome["success"] else "wrong"
        lines.append(f"guess: {guess_text} -> {verdict} (reward {float(outcome['reward']):.2f})")
    return "\n".join(lines) + "\n"


def _state_view(state: EnvState) -> dict[str, np.ndarray]:
    return _to_numpy({"target": state.target, "message": state.message, "candidates": state.candidates,
                      "target_index": state.target_index})


# -- the single env --------------------------------------------------------------------------------


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
    ):
        """`objects` `[n, K]` overrides `n_objects` (0: all V^K, else that many drawn with `object_seed`);
        `probs` `[n]` is p(target), uniform when None; `partner=None` plays the compositional code."""
        self.episode, self.params, self.observation_space, self.action_space = _setup(
            kind, n_attributes, n_values, vocab_size, max_len, n_distractors, hard_negatives,
            n_objects, objects, probs, object_seed, role, partner, render_mode,
        )
        self.kind, self.role, self.render_mode = kind, role, render_mode
        self._key: jax.Array | None = None
        self._state: EnvState | None = None
        self._view: dict[str, np.ndarray] | None = None  # numpy copy of the state, for render
        self._outcome: dict[str, Any] | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None or self._key is None:
            self._key = key_from_seed(seed if seed is not None else int(self.np_random.integers(2**63)))
        self._key, obs, self._state = _reset(self.episode, self._key, self.params)
        self._view, self._outcome = _state_view(self._state), None
        return _to_numpy(obs), {}

    def step(self, action):
        if self._state is None or self._outcome is not None:
            raise gymnasium.error.ResetNeeded("the episode is over (or never started): call reset()")
        action = jnp.asarray(action, dtype=jnp.int32)
        self._key, obs, self._state, reward, terminated, info = _step(self.episode, self._key, self._state, action, self.params)
        info = _to_numpy(info)
        info["success"] = bool(info["success"])
        self._view = _state_view(self._state)
        self._outcome = {"guess": info["guess"], "success": info["success"], "reward": float(reward)}
        return _to_numpy(obs), float(reward), bool(terminated), False, info

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self._view is None:
            return None
        return render_episode(self.kind, self.role, self._view, self._outcome)


# -- the vector env --------------------------------------------------------------------------------


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
        self.episode, self.params, self.single_observation_space, self.single_action_space = _setup(
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
        self._ended, self._view, self._outcome = False, _state_view(self._state), None
        return _to_numpy(obs)

    def step(self, actions):
        if self._state is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        n = self.num_envs
        if self._ended:  # NEXT_STEP: this call starts the next episodes
            return self._start_episodes(), np.zeros(n), np.zeros(n, bool), np.zeros(n, bool), {}
        actions = jnp.asarray(actions, dtype=jnp.int32)
        self._keys, obs, state, reward, terminated, info, *final = self._step(self.episode, self._keys, self._state, actions, self.params)
        info = _to_numpy(info)
        # the finished episodes, for render (under SAME_STEP `state` already holds the next ones)
        self._view = {name: info[name] for name in ("target", "message", "candidates", "target_index") if name in info}
        self._outcome = {"guess": info["guess"], "success": info["success"], "reward": np.asarray(reward)}
        self._state, self._ended = state, not final
        if final:
            everyone = np.ones(n, bool)
            info = {"final_obs": _to_numpy(final[0]), "_final_obs": everyone,
                    "final_info": _with_masks(info, n), "_final_info": everyone.copy()}
        else:
            info = _with_masks(info, n)
        return _to_numpy(obs), np.array(reward, np.float64), np.array(terminated, bool), np.zeros(n, bool), info

    def render(self) -> tuple[str, ...] | None:
        """One ansi string per env: the episode being played (or, after SAME_STEP, just finished)."""
        if self.render_mode != "ansi" or self._view is None:
            return None
        view, outcome = self._view, self._outcome
        return tuple(
            render_episode(
                self.kind, self.role, {name: value[i] for name, value in view.items()},
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


# -- registration ----------------------------------------------------------------------------------


def register_envs() -> None:
    """Register the two game ids with gymnasium (idempotent)."""
    for env_id, kind in ((RECONSTRUCTION_ID, "reconstruction"), (DISCRIMINATION_ID, "discrimination")):
        if env_id not in gymnasium.registry:
            gymnasium.register(
                id=env_id,
                entry_point="games.gym:LewisEnv",
                vector_entry_point="games.gym:LewisVectorEnv",
                kwargs={"kind": kind},
            )


register_envs()
