"""The game protocol and the episode machinery every Lewis signaling game shares (gymnax style: pure functions over pytrees).

An episode has two turns. Turn 0: the speaker sees the target and emits a message
`[max_len]` (symbol 0 is EOS; everything after the first EOS is dropped). Turn 1: the
listener sees the message (and, in a referential game, the candidates) and guesses.

A game kind is one module with one class implementing this protocol (games.reconstruction,
games.discrimination, games.features); games.registry maps `game.kind` to it. Nothing outside
a kind's module asks which kind it is: it asks the game.

    world(config) -> World                             the referents, their split and input distribution
    validate(config), n_referents(config)              checks of the game section; how many referents it has
    candidates_of(config), has_attributes(config)      what the listener chooses among; whether referents have labels
    from_config(config, world, vocab_size, max_len)    the static game
    features(referents) -> [..., n_features] float32   what an agent sees of a referent
    episodes(key, params, ids) -> EnvState             one episode per target id, its candidates drawn
    read(receiver, one_hot, episodes, unroll)          the receiver's output where each message ends, log-probs
    read_prefixes(receiver, one_hot, episodes, unroll) the same after every prefix of the message [B, T, ...]
    outcome(log_p, episodes) -> Outcome                log rho(x|m), success, per-attribute success
    reward(state, guess), success(state, guess)        the env step's
    chance_loss                                        -log rho of a listener that guesses uniformly
    AXES, DEFAULT_AXIS                                 its difficulty axes (games.difficulty)
    DECOMPOSABLE                                       rho(.|m) is a distribution over every referent, so the
                                                       game loss splits into L_info + L_adapt (lab.core.ideal)
    OBJECTS                                            the referents are attribute-value objects (a person can play)
    describe(referent), describe_guess(guess)          rendering for a person (games.gym)
    describe_world, describe_referents, describe_split, describe_listener   the game in words (a run's report)

`EnvParams` holds the referents and the distribution targets are drawn from, so a curriculum
can change (or vmap over) what the game samples without recompiling; a referential game may
also hold per-episode distributions over how many distractors are shown and how many
attributes they may share with the target (games.difficulty: the episode axes).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from games.fields import ConfigError
from games.messages import truncate_at_eos
from games.objects import n_possible
from games.splits import n_test_objects
from games.world import World, attribute_world


def object_features(objects: jax.Array, n_values: int) -> jax.Array:
    """`[..., K*V]` float32: what an agent sees of objects `[..., K]`, each attribute one-hot."""
    return jax.nn.one_hot(objects, n_values).reshape(*objects.shape[:-1], -1)


@struct.dataclass
class EnvParams:
    objects: jax.Array  # [n, ...] the referents episodes are drawn from: objects [n, K] int32, or features [n, d] float32
    probs: jax.Array  # [n] float32, p(target)
    # discrimination only; None plays the game as configured (every distractor shown, no cap)
    shown_probs: jax.Array | None = None  # [n_distractors] p(d + 1 distractors shown), drawn per episode
    shared_probs: jax.Array | None = None  # [K] p(distractors share at most s attributes with the target), s = 0..K-1


@struct.dataclass
class EnvState:
    target: jax.Array  # [...] the target referent ([K] an object)
    candidates: jax.Array  # [n_candidates, ...]; reconstruction: the target alone
    target_index: jax.Array  # [] position of the target among the candidates
    message: jax.Array  # [max_len]
    turn: jax.Array  # [] 0 speaker, 1 listener, 2 over
    shown: jax.Array  # [n_candidates] bool, the candidates in play (a curriculum may show fewer than n_candidates)


@struct.dataclass
class Observation:
    target: jax.Array  # [K] what the speaker sees (zeros on the listener's turn)
    candidates: jax.Array  # [n_candidates, K] what a discrimination listener chooses from
    message: jax.Array  # [max_len] what the listener reads (zeros on the speaker's turn)
    turn: jax.Array  # []


@struct.dataclass
class Action:
    message: jax.Array  # [max_len] used on turn 0
    guess: jax.Array  # the game's guess, `guess_shape` (reconstruction [K], referential []) — used on turn 1


class Outcome(NamedTuple):
    """How a batch of guesses went, per example."""

    log_rho: jax.Array  # [B] log rho(x|m), the receiver's log-probability of the right guess
    correct: jax.Array  # [B] bool, the receiver's best guess is right
    attribute_correct: jax.Array | None  # [B, K] bool, each attribute of a reconstructed object; None: the guess has none


class LewisGame:
    """Static description of a game; all dynamic data lives in EnvParams / EnvState. Subclasses are the game kinds."""

    kind: str = ""
    AXES: tuple[str, ...] = ("values", "rarity")  # difficulty axes a curriculum may index (games.difficulty)
    DEFAULT_AXIS = "values"
    DECOMPOSABLE = False
    referent_dtype = jnp.int32
    OBJECTS = True  # the referents are attribute-value objects [K] (False: feature vectors [d], games.features)
    n_candidates = 1  # what the listener chooses among: more than one in a referential game
    guess_shape: tuple[int, ...] = ()  # a guess: the index of a candidate (reconstruction: the object, [K])

    def __init__(self, n_attributes: int, n_values: int, vocab_size: int, max_len: int):
        self.n_attributes = n_attributes
        self.n_values = n_values
        self.vocab_size = vocab_size
        self.max_len = max_len

    # -- the world and the config -----------------------------------------------------------------------
    @staticmethod
    def world(config) -> World:
        """The world a `GameConfig` describes: attribute-value objects (games.world)."""
        return attribute_world(config)

    @staticmethod
    def n_referents(config) -> int:
        return config.n_objects or n_possible(config.n_attributes, config.n_values)

    @classmethod
    def n_train(cls, config) -> int:
        n = cls.n_referents(config)
        return n - (n_test_objects(n, config.test_fraction) if config.split != "none" else 0) - config.n_validation

    @staticmethod
    def candidates_of(config) -> int:
        """What the listener of the game `config` describes chooses among per episode (`n_candidates`), without building it."""
        return 1

    @staticmethod
    def has_attributes(config) -> bool:
        """Whether the world's referents have integer attributes (topsim, posdis, bosdis, attribute groups read them)."""
        return True

    @classmethod
    def validate(cls, config) -> None:
        """Checks of the game section that depend on the kind (raise games.fields.ConfigError): here, the object space's."""
        for field in ("features", "labels"):
            if getattr(config, field):
                raise ConfigError(f"game.{field}={getattr(config, field)[:80]!r}: the {cls.kind} game plays attribute-value "
                                  f"objects; given feature vectors are game.kind=features")
        possible = n_possible(config.n_attributes, config.n_values)
        if config.n_objects and possible >= 2**62:
            raise ConfigError(f"game.n_attributes={config.n_attributes}, game.n_values={config.n_values}: V^K = {possible:.3g} "
                              f"objects; sampled objects are drawn as 64-bit codes, so V^K must be below 2^62")
        if config.n_objects > possible:
            raise ConfigError(f"game.n_objects={config.n_objects}: more than the {possible} distinct objects V^K "
                              f"(n_values={config.n_values}, n_attributes={config.n_attributes}); allowed 0..{possible}")
        if config.split == "compositional" and config.n_attributes < 2:
            raise ConfigError(f"game.split='compositional' needs game.n_attributes >= 2, got {config.n_attributes}; "
                              f"use split=iid")
        if config.group_attribute >= config.n_attributes:
            raise ConfigError(f"game.group_attribute={config.group_attribute}: no such attribute; allowed "
                              f"0..{config.n_attributes - 1} (game.n_attributes={config.n_attributes})")

    @classmethod
    def from_config(cls, config, world: World, vocab_size: int, max_len: int) -> "LewisGame":
        return cls(config.n_attributes, config.n_values, vocab_size, max_len)

    # -- what agents see of a referent ---------------------------------------------------------------------
    @property
    def n_features(self) -> int:
        return self.n_attributes * self.n_values

    def features(self, referents: jax.Array) -> jax.Array:
        """`[..., K*V]` float32: each attribute of objects `[..., K]` one-hot."""
        return object_features(referents, self.n_values)

    # -- episodes -------------------------------------------------------------------------------------------
    @classmethod
    def default_params(cls, objects, probs=None) -> EnvParams:
        """The referents `objects [n, ...]` with p(target) `probs [n]` (uniform when None)."""
        objects = jnp.asarray(objects, dtype=cls.referent_dtype)
        if probs is None:
            probs = jnp.full(objects.shape[0], 1.0 / objects.shape[0])
        return EnvParams(objects=objects, probs=jnp.asarray(probs, dtype=jnp.float32))

    def sample_candidates(self, key, params: EnvParams, target_id) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(candidates [C, K], target_index [], shown [C] bool)."""
        return params.objects[target_id][None], jnp.zeros((), jnp.int32), jnp.ones(1, bool)

    def episode(self, key: jax.Array, params: EnvParams, target_id: jax.Array) -> EnvState:
        """A fresh episode whose target is `params.objects[target_id]`, its candidates drawn with `key`."""
        candidates, target_index, shown = self.sample_candidates(key, params, target_id)
        return EnvState(
            target=params.objects[target_id],
            candidates=candidates,
            target_index=target_index,
            message=jnp.zeros(self.max_len, jnp.int32),
            turn=jnp.zeros((), jnp.int32),
            shown=shown,
        )

    def reset(self, key: jax.Array, params: EnvParams) -> tuple[Observation, EnvState]:
        key_target, key_candidates = jax.random.split(key)
        target_id = jax.random.choice(key_target, params.objects.shape[0], p=params.probs)
        state = self.episode(key_candidates, params, target_id)
        return self.observe(state), state

    def observe(self, state: EnvState) -> Observation:
        speaking = state.turn == 0
        return Observation(
            target=jnp.where(speaking, state.target, 0),
            # a reconstruction "candidate" is the target itself: never shown, or the listener could copy it
            candidates=jnp.where((state.turn == 1) & (self.n_candidates > 1), state.candidates, 0),
            message=jnp.where(speaking, 0, state.message),
            turn=state.turn,
        )

    def step(
        self, key: jax.Array, state: EnvState, action: Action, params: EnvParams
    ) -> tuple[Observation, EnvState, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        """Returns (obs, state, reward, terminated, truncated, info); `key` is unused (the game is deterministic)."""
        speaking = state.turn == 0
        message = jnp.where(speaking, truncate_at_eos(action.message.astype(jnp.int32)), state.message)
        success = self.success(state, action.guess)
        reward = jnp.where(speaking, 0.0, self.reward(state, action.guess))
        state = state.replace(message=message, turn=jnp.minimum(state.turn + 1, 2))
        terminated = state.turn == 2
        info = {"success": jnp.where(speaking, False, success), "target": state.target}
        return self.observe(state), state, reward, terminated, jnp.zeros((), bool), info

    def sample_ids(self, key: jax.Array, params: EnvParams, batch_size: int) -> jax.Array:
        """`[batch_size]` target ids drawn from `params.probs` (inverse CDF, `jax.random.choice`: one uniform per id,
        not a Gumbel per (id, object) as `jax.random.categorical` draws: a tenth of a training step on 205 objects).
        Objects of probability 0 are never drawn."""
        return jax.random.choice(key, params.probs.shape[0], (batch_size,), p=params.probs)

    def episodes(self, key: jax.Array, params: EnvParams, target_ids: jax.Array) -> EnvState:
        """One fresh episode per target id `[B]`: EnvState with a leading batch axis."""
        return jax.vmap(lambda k, i: self.episode(k, params, i))(jax.random.split(key, target_ids.shape[0]), target_ids)

    def sample_batch(self, key: jax.Array, params: EnvParams, batch_size: int) -> EnvState:
        """`batch_size` fresh episodes, targets drawn from `params.probs`: EnvState with a leading batch axis."""
        key_ids, key_episodes = jax.random.split(key)
        return self.episodes(key_episodes, params, self.sample_ids(key_ids, params, batch_size))

    # -- reading and scoring ---------------------------------------------------------------------------------
    @property
    def chance_loss(self) -> float:
        """-log rho(x|m) of a listener that guesses uniformly."""
        raise NotImplementedError

    def read(self, receiver, one_hot: jax.Array, episodes: EnvState, unroll: bool = True) -> jax.Array:
        """The receiver's log-probabilities over guesses where each message `one_hot [B, T, vocab]` ends."""
        raise NotImplementedError

    def read_prefixes(self, receiver, one_hot: jax.Array, episodes: EnvState, unroll: bool = True) -> jax.Array:
        """The receiver's log-probabilities over guesses after each prefix m_<=t `[B, T, ...]` (an impatient listener)."""
        raise NotImplementedError

    def outcome(self, log_p: jax.Array, episodes: EnvState) -> Outcome:
        raise NotImplementedError

    def reward(self, state: EnvState, guess: jax.Array) -> jax.Array:
        raise NotImplementedError

    def success(self, state: EnvState, guess: jax.Array) -> jax.Array:
        raise NotImplementedError

    # -- rendering -------------------------------------------------------------------------------------------
    def describe(self, referent) -> str:
        """A referent for a person: `a0=1 a1=3 ...`."""
        return " ".join(f"a{k}={int(v)}" for k, v in enumerate(referent))

    def describe_guess(self, guess) -> str:
        raise NotImplementedError

    @staticmethod
    def describe_world(config) -> str:
        """The world in a few words (a run's report title)."""
        return f"{config.n_attributes} attributes x {config.n_values} values"

    @staticmethod
    def describe_referents(config, n: int) -> str:
        """The `n` referents of the game `config` describes, in words (a run's report)."""
        return (f"{n} objects ({config.n_attributes} attributes, numbered 1 to {config.n_attributes}, each with a value "
                f"from 0 to {config.n_values - 1})")

    @staticmethod
    def describe_split(config) -> str:
        """How the held-out referents were chosen, in words (a run's report)."""
        return {"compositional": "unseen combinations of attribute values that all occur in training",
                "iid": "drawn at random", "none": "none: every object is trained on"}[config.split]

    @staticmethod
    def describe_listener(config) -> str:
        """What the listener does, in words (a run's report)."""
        raise NotImplementedError
