"""Partners: the other side of the game, plain callables on numpy integer arrays.

* partner speaker:  `partner(target: [..., K]) -> message: [..., max_len]`
* partner listener: `partner(message: [..., max_len], candidates: [..., C, K]) -> guess`,
  the guess `[..., K]` in reconstruction (where `candidates` is empty, C = 0, so the listener
  is not handed the target) and `[...]` in discrimination (an index into the candidates).

The default partner speaks or reads a fixed compositional code, batched or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

Partner = Callable[..., Any]


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
    """Partner listener of the compositional code: the object it decodes, or (`chooses`) the best-matching candidate."""

    chooses: bool  # a referential game: the guess is a candidate's index
    n_attributes: int
    n_values: int

    def __call__(self, message: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        decoded = compositional_decode(message, self.n_attributes, self.n_values)  # [..., K]
        if not self.chooses:
            return decoded
        matches = np.sum(np.asarray(candidates) == decoded[..., None, :], axis=-1)  # [..., C]
        return np.argmax(matches, axis=-1)


def compositional_partner(role: str, game) -> Partner:
    """The partner of an agent playing `role` in `game` (over attribute-value objects): a compositional listener for a
    speaker, and vice versa."""
    n_attributes, n_values, vocab_size, max_len = game.n_attributes, game.n_values, game.vocab_size, game.max_len
    if not game.OBJECTS or max_len < n_attributes or vocab_size <= n_values:
        raise ValueError(
            f"the default compositional partner needs attribute-value objects, max_len >= n_attributes and vocab_size > "
            f"n_values (got the {game.kind} game, max_len={max_len}, n_attributes={n_attributes}, vocab_size={vocab_size}, "
            f"n_values={n_values}); pass partner= explicitly"
        )
    if role == "speaker":
        return CompositionalListener(game.n_candidates > 1, n_attributes, n_values)
    return CompositionalSpeaker(max_len)
