"""The discrimination (referential) game: the listener picks the target among `n_distractors + 1` shuffled candidates.

Reward and success: 1 if the guess points at the target. Distractors are drawn from the
referents without replacement, optionally hard negatives that share attributes with the target;
a curriculum may show fewer of them or cap how many attributes they share (the episode axes of
games.difficulty: `distractors`, `similarity`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from games.fields import ConfigError
from games.lewis import EnvParams, EnvState, LewisGame, Outcome


class LewisDiscrimination(LewisGame):
    kind = "discrimination"
    AXES = ("values", "rarity", "distractors", "similarity")
    DEFAULT_AXIS = "distractors"

    def __init__(self, n_attributes, n_values, vocab_size, max_len, n_distractors: int = 4, hard_negatives: bool = False):
        super().__init__(n_attributes, n_values, vocab_size, max_len)
        self.n_distractors = n_distractors
        self.hard_negatives = hard_negatives
        self.n_candidates = n_distractors + 1

    @staticmethod
    def candidates_of(config) -> int:
        return config.n_distractors + 1

    @classmethod
    def validate(cls, config) -> None:
        super().validate(config)
        if config.n_distractors + 1 > config.n_train:
            raise ConfigError(f"game.n_distractors={config.n_distractors}: needs at least {config.n_distractors + 1} train "
                              f"objects, the split leaves {config.n_train}")

    @classmethod
    def from_config(cls, config, world, vocab_size: int, max_len: int) -> "LewisDiscrimination":
        return cls(config.n_attributes, config.n_values, vocab_size, max_len, config.n_distractors, config.hard_negatives)

    # -- episodes -------------------------------------------------------------------------------------------
    def distractor_logits(self, key, params: EnvParams, target_id) -> jax.Array:
        """`[n]` how likely each referent is to be drawn as a distractor (up to a constant; the target is left out after).

        With `hard_negatives`, p(distractor) ∝ number of attributes it shares with the target
        (objects sharing none come last), so the listener must attend to every attribute. With
        `params.shared_probs`, a cap s ~ shared_probs pushes out objects sharing more than s
        attributes (the least similar fill in when too few remain).
        """
        objects = params.objects
        shared = jnp.sum(objects == objects[target_id], axis=-1)
        if self.hard_negatives:
            logits = jnp.where(shared > 0, jnp.log(jnp.maximum(shared, 1)), -30.0)
        else:
            logits = jnp.zeros(objects.shape[0])
        if params.shared_probs is not None:
            cap = jax.random.categorical(jax.random.fold_in(key, 1), jnp.log(params.shared_probs))
            logits = logits - 1e3 * jnp.maximum(shared - cap, 0)  # soft, not -inf: too few under the cap still fill in
        return logits

    def sample_candidates(self, key, params: EnvParams, target_id) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Distractors drawn without replacement (Gumbel top-k over `distractor_logits`), shuffled in with the target.

        With `params.shown_probs`, only d ~ 1 + shown_probs distractors are shown (the target always is).
        """
        key_pick, key_order = jax.random.split(key)
        n = params.objects.shape[0]
        logits = jnp.where(jnp.arange(n) == target_id, -jnp.inf, self.distractor_logits(key, params, target_id))
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
        return params.objects[ids], target_index, shown

    # -- reading and scoring ---------------------------------------------------------------------------------
    @property
    def chance_loss(self) -> float:
        return math.log(self.n_candidates)

    def read(self, receiver, one_hot: jax.Array, episodes: EnvState, unroll: bool = True) -> jax.Array:
        """log rho(candidate c | m) `[B, C]` over the shown candidates (-inf on the others)."""
        return receiver.read(one_hot, episodes.candidates, episodes.shown, unroll=unroll)

    def read_prefixes(self, receiver, one_hot: jax.Array, episodes: EnvState, unroll: bool = True) -> jax.Array:
        """log rho(candidate c | m_<=t) `[B, T, C]`."""
        return receiver.discriminate(one_hot, episodes.candidates, episodes.shown, unroll)

    def outcome(self, log_p: jax.Array, episodes: EnvState) -> Outcome:
        log_rho = jnp.take_along_axis(log_p, episodes.target_index[:, None], axis=-1)[:, 0]
        return Outcome(log_rho, self.success(episodes, jnp.argmax(log_p, -1)), None)

    def reward(self, state: EnvState, guess: jax.Array) -> jax.Array:
        return self.success(state, guess).astype(jnp.float32)

    def success(self, state: EnvState, guess: jax.Array) -> jax.Array:
        """The guess points at the target (of one episode, or `[B]` of a batch)."""
        return guess == state.target_index

    def describe_guess(self, guess) -> str:
        return f"candidate {int(guess)}"

    @staticmethod
    def describe_listener(config) -> str:
        return f"picks it among {config.n_distractors + 1} objects shown"
