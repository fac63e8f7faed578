"""Lewis signaling games as pure functions over pytrees (gymnax style).

An episode has two turns. Turn 0: the speaker sees the target and emits a message
`[max_len]` (symbol 0 is EOS; everything after the first EOS is dropped). Turn 1: the
listener sees the message (and, in discrimination, the candidates) and guesses.

* Reconstruction: the guess is the object `[K]`; reward = fraction of attributes right.
* Discrimination: the guess is an index into `n_distractors + 1` shuffled candidates;
  reward = 1 if it points at the target.

`EnvParams` holds the object set and the distribution targets are drawn from, so a
curriculum can change (or vmap over) what the game samples without recompiling; for
discrimination it may also hold per-episode distributions over how many distractors are shown
and how many attributes they may share with the target (games.difficulty: the episode axes).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from games.messages import truncate_at_eos

GAMES = ("reconstruction", "discrimination")


@struct.dataclass
class EnvParams:
    objects: jax.Array  # [n, K] int32, the objects episodes are drawn from
    probs: jax.Array  # [n] float32, p(target)
    # discrimination only; None plays the game as configured (every distractor shown, no cap)
    shown_probs: jax.Array | None = None  # [n_distractors] p(d + 1 distractors shown), drawn per episode
    shared_probs: jax.Array | None = None  # [K] p(distractors share at most s attributes with the target), s = 0..K-1


@struct.dataclass
class EnvState:
    target: jax.Array  # [K]
    candidates: jax.Array  # [n_candidates, K]; reconstruction: the target alone
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
    guess: jax.Array  # reconstruction [K], discrimination [] — used on turn 1


class LewisGame:
    """Static description of a game; all dynamic data lives in EnvParams / EnvState."""

    kind: str = ""

    def __init__(self, n_attributes: int, n_values: int, vocab_size: int, max_len: int):
        self.n_attributes = n_attributes
        self.n_values = n_values
        self.vocab_size = vocab_size
        self.max_len = max_len

    n_candidates = 1

    @staticmethod
    def default_params(objects, probs=None) -> EnvParams:
        objects = jnp.asarray(objects, dtype=jnp.int32)
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


class LewisReconstruction(LewisGame):
    kind = "reconstruction"

    def reward(self, state: EnvState, guess: jax.Array) -> jax.Array:
        return jnp.mean(guess == state.target)

    def success(self, state: EnvState, guess: jax.Array) -> jax.Array:
        return jnp.all(guess == state.target)


class LewisDiscrimination(LewisGame):
    kind = "discrimination"

    def __init__(self, n_attributes, n_values, vocab_size, max_len, n_distractors: int = 4, hard_negatives: bool = False):
        super().__init__(n_attributes, n_values, vocab_size, max_len)
        self.n_distractors = n_distractors
        self.hard_negatives = hard_negatives
        self.n_candidates = n_distractors + 1

    def sample_candidates(self, key, params: EnvParams, target_id) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Distractors drawn without replacement (Gumbel top-k); hard negatives favour shared attributes.

        With `hard_negatives`, p(distractor) ∝ number of attributes it shares with the target
        (objects sharing none come last), so the listener must attend to every attribute. With
        `params.shared_probs`, a cap s ~ shared_probs pushes out objects sharing more than s
        attributes (the least similar fill in when too few remain); with `params.shown_probs`,
        only d ~ 1 + shown_probs distractors are shown (the target always is).
        """
        key_pick, key_order = jax.random.split(key)
        objects = params.objects
        n = objects.shape[0]
        shared = jnp.sum(objects == objects[target_id], axis=-1)
        if self.hard_negatives:
            logits = jnp.where(shared > 0, jnp.log(jnp.maximum(shared, 1)), -30.0)
        else:
            logits = jnp.zeros(n)
        if params.shared_probs is not None:
            cap = jax.random.categorical(jax.random.fold_in(key, 1), jnp.log(params.shared_probs))
            logits = logits - 1e3 * jnp.maximum(shared - cap, 0)  # soft, not -inf: too few under the cap still fill in
        logits = jnp.where(jnp.arange(n) == target_id, -jnp.inf, logits)
        gumbel = jax.random.gumbel(key_pick, (n,))
        _, distractor_ids = jax.lax.top_k(logits + gumbel, self.n_distractors)
        ids = jnp.concatenate([target_id[None], distractor_ids])
        order = jax.random.permutation(key_order, self.n_candidates)  # candidate j is unshuffled position order[j]
        ids = ids[order]
        target_index = jnp.argmax(order == 0).astype(jnp.int32)
        shown = jnp.ones(self.n_candidates, bool)
        if params.shown_probs is not None:
            n_shown = 1 + jax.random.categorical(jax.random.fold_in(key, 2), jnp.log(params.shown_probs))
            shown = order <= n_shown  # the target (position 0) and the first n_shown distractors
        return objects[ids], target_index, shown

    def reward(self, state: EnvState, guess: jax.Array) -> jax.Array:
        return (guess == state.target_index).astype(jnp.float32)

    def success(self, state: EnvState, guess: jax.Array) -> jax.Array:
        return guess == state.target_index


def reconstruction_episodes(objects: jax.Array, max_len: int) -> EnvState:
    """Reconstruction episodes, one per target `objects [n, K]`, at the listener's turn-to-be (a batch)."""
    n = objects.shape[0]
    return EnvState(target=objects, candidates=objects[:, None], target_index=jnp.zeros(n, jnp.int32),
                    message=jnp.zeros((n, max_len), jnp.int32), turn=jnp.zeros(n, jnp.int32), shown=jnp.ones((n, 1), bool))


def make_game(kind: str, n_attributes: int, n_values: int, vocab_size: int, max_len: int, n_distractors: int = 4, hard_negatives: bool = False) -> LewisGame:
    if kind == "reconstruction":
        return LewisReconstruction(n_attributes, n_values, vocab_size, max_len)
    if kind == "discrimination":
        return LewisDiscrimination(n_attributes, n_values, vocab_size, max_len, n_distractors, hard_negatives)
    raise ValueError(f"unknown game {kind!r}; allowed: {', '.join(GAMES)}")
