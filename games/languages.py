"""Hand-made languages: a message for each object, written by hand rather than learned.

Each function takes objects `[n, K]` (values `0..n_values-1`) and returns their messages
`[n, max_len]` under the lab's conventions (symbol 0 is EOS; `max_len` counts the EOS position, so
a K-symbol word needs `max_len >= K + 1` to end with an EOS; shorter is allowed and drops it). The
vocabulary a language needs is `messages.max() + 1`. They are the yardsticks of the measures
(`lab.metrics`) and of the course's notebooks:

    >>> import numpy as np
    >>> objects = np.array([[0, 1], [2, 0]])
    >>> compositional(objects, n_values=3).tolist()      # attribute 1 says a, b, c; attribute 2 says d, e, f
    [[1, 5, 0], [3, 4, 0]]
    >>> spell(compositional(objects, n_values=3)[0])
    'ae'
"""

from __future__ import annotations

import numpy as np

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def spell(message) -> str:
    """A message's content as letters (symbol 1 = a, 2 = b, ...; beyond z: `<27>`); '(silence)' when it is only EOS."""
    letters = []
    for s in np.asarray(message).tolist():
        if s == 0:
            break
        letters.append(LETTERS[s - 1] if s <= len(LETTERS) else f"<{s}>")
    return "".join(letters) or "(silence)"


def _padded(words: np.ndarray, max_len: int | None) -> np.ndarray:
    """`words [n, L]` followed by EOS padding up to `max_len` positions (default L + 1)."""
    max_len = words.shape[1] + 1 if max_len is None else max_len
    out = np.zeros((words.shape[0], max_len), np.int64)
    out[:, : min(max_len, words.shape[1])] = words[:, :max_len]
    return out


def compositional(objects, n_values: int, max_len: int | None = None) -> np.ndarray:
    """One symbol per attribute value, in attribute order: attribute k (from 0) with value v says `1 + k*V + v`."""
    objects = np.asarray(objects, np.int64)
    return _padded(1 + np.arange(objects.shape[1]) * n_values + objects, max_len)


def shared_alphabet(objects, max_len: int | None = None) -> np.ndarray:
    """Every attribute uses the same symbols, `1 + v`: only a symbol's position says which attribute it names."""
    return _padded(np.asarray(objects, np.int64) + 1, max_len)


def free_order(objects, n_values: int, seed: int = 0, max_len: int | None = None) -> np.ndarray:
    """The compositional words with their symbols in a random order for each object (no word order)."""
    words = compositional(objects, n_values, np.shape(objects)[1])
    rng = np.random.default_rng(seed)
    return _padded(rng.permuted(words, axis=1), max_len)


def synonyms(objects, n_values: int, seed: int = 0, max_len: int | None = None) -> np.ndarray:
    """Each attribute value has two words, `1 + k*2V + v` and `1 + k*2V + V + v`, one drawn at random each time it is said."""
    objects = np.asarray(objects, np.int64)
    which = np.random.default_rng(seed).integers(0, 2, objects.shape)
    return _padded(1 + np.arange(objects.shape[1]) * 2 * n_values + which * n_values + objects, max_len)


def holistic(objects, max_len: int = 2) -> np.ndarray:
    """Every object its own one-symbol name, `1 + i` for the object in row i: no part means anything alone."""
    return _padded(1 + np.arange(len(objects))[:, None], max_len)


def permuted(messages, seed: int = 0) -> np.ndarray:
    """The same messages handed to the objects in a random order (Li & Bowling's permuted language): the same
    words and word forms, no structure left between form and meaning."""
    messages = np.asarray(messages)
    return messages[np.random.default_rng(seed).permutation(len(messages))]


def degenerate(objects, max_len: int = 2) -> np.ndarray:
    """One word, `a`, for every object."""
    return _padded(np.ones((len(objects), 1), np.int64), max_len)
