"""Oracle languages: a hand-designed language given as a table, speaking through the sender protocol.

A table holds, for every object of the world (in the order of `world.objects`), one message or
several synonyms `[n_objects, n_synonyms, max_len]` with their probabilities `[n_objects,
n_synonyms]`; every message follows the lab's conventions (games.messages). The oracle's
distribution over the next symbol, given the object and the prefix m_<t, is that of the synonyms
that agree with the prefix, mixed with a little uniform noise so every message has some probability
(an oracle of full support, as a language model is; `noise` = 0 gives the table's exact
distribution):

    pi_O(s | x, m_<t) = (1 - noise) q(s | x, m_<t) + noise / vocab_size,
    q(s | x, m_<t)    = sum_j w_xj [m_xj agrees with m_<t] [m_xj,t = s] / sum_j w_xj [m_xj agrees with m_<t]

(uniform when no synonym agrees). `TableSender` implements the protocol (lab.core.agents.protocol)
from its `decode`, so the distillation and the measures use an oracle and a trained sender alike.

Built-in languages (`LANGUAGES`) are the hand-made languages of games.languages, for K attributes of V values:
compositional (attribute k, value v says 1 + kV + v: needs vocab_size > KV), shared_alphabet, free_order, holistic,
permuted (the compositional words dealt to the objects at random: unambiguous, unstructured), degenerate; and synonyms,
each value said by either of games.languages.synonyms' two words (1 + 2kV + v or 1 + 2kV + V + v), chosen
independently at each position: all 2^K combinations equally likely (games.languages.synonyms draws one of them).

    >>> import numpy as np
    >>> from games import all_objects
    >>> table, _ = language("compositional", all_objects(2, 3), 3, vocab_size=7, max_len=3, seed=0)
    >>> table[5, 0].tolist()   # object (1, 2): attribute 0 says 1 + 1, attribute 1 says 1 + 3 + 2
    [2, 6, 0]
"""

from __future__ import annotations

import itertools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from games import languages
from games.fields import ConfigError
from games.messages import truncate_at_eos
from games.objects import encode
from lab.core.agents.protocol import Choose, Sender

LANGUAGES = ("compositional", "shared_alphabet", "free_order", "synonyms", "holistic", "permuted", "degenerate")
TABLE_SUFFIXES = (".npy", ".csv", ".txt")
FIELD = "transmission.oracle"
LOG_ZERO = -1e9  # log-probability of a symbol the table rules out (noise = 0)


def language(kind: str, objects: np.ndarray, n_values: int, vocab_size: int, max_len: int,
             seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`(table [n, S, max_len], weights [n, S])` of a built-in language over `objects [n, K]` (module doc)."""
    objects = np.asarray(objects, np.int64)
    n, K = objects.shape
    if kind not in LANGUAGES:
        raise ConfigError(f"{FIELD}={kind!r}: allowed values are {', '.join(LANGUAGES)}, or a table file "
                          f"({', '.join(TABLE_SUFFIXES)})")
    word = 1 if kind in ("holistic", "degenerate") else K  # symbols before the EOS
    if max_len < word:
        raise ConfigError(f"{FIELD}={kind!r} needs agents.max_len >= {word} (its words' length), got {max_len}")
    if kind == "synonyms":
        which = np.array(list(itertools.product((0, 1), repeat=K)))  # [2^K, K]: the second word or the first
        words = 1 + np.arange(K) * 2 * n_values + which[None] * n_values + objects[:, None]  # [n, 2^K, K]
        table = np.zeros((n, len(which), max_len), np.int64)
        table[..., :K] = words
        weights = np.full((n, len(which)), 1.0 / len(which))
    else:
        compositional = languages.compositional(objects, n_values, max_len)
        table = {"compositional": lambda: compositional,
                 "shared_alphabet": lambda: languages.shared_alphabet(objects, max_len),
                 "free_order": lambda: languages.free_order(objects, n_values, seed, max_len),
                 "holistic": lambda: languages.holistic(objects, max_len),
                 "permuted": lambda: languages.permuted(compositional, seed),
                 "degenerate": lambda: languages.degenerate(objects, max_len)}[kind]()[:, None]
        weights = np.ones((n, 1))
    if table.max() >= vocab_size:
        raise ConfigError(f"{FIELD}={kind!r} needs agents.vocab_size >= {table.max() + 1} (EOS and its symbols for "
                          f"{n} objects of {K} attributes x {n_values} values), got {vocab_size}")
    return table.astype(np.int32), weights.astype(np.float32)


def read_table(path: str | Path) -> np.ndarray:
    """A table from disk: `.npy` (`[n, max_len]` or `[n, S, max_len]` integers, never unpickled), or `.csv`/`.txt`
    (one message per line, symbols separated by commas or spaces)."""
    path = Path(path)
    if path.suffix not in TABLE_SUFFIXES:
        raise ConfigError(f"{FIELD}={str(path)[:80]!r}: allowed values are {', '.join(LANGUAGES)}, or a table file "
                          f"ending in {', '.join(TABLE_SUFFIXES)}")
    if not path.is_file():
        raise ConfigError(f"{FIELD}={str(path)[:80]!r}: no such file")
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        return np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None, ndmin=2)
    except (OSError, ValueError) as error:
        raise ConfigError(f"{FIELD}={str(path)[:80]!r}: not a table of integers ({str(error).splitlines()[0][:80]})") from None


def check_table(table, n_objects: int, vocab_size: int, max_len: int, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """`(table [n, S, max_len] int32, weights [n, S])` of a given table, or ConfigError naming what breaks: the shape
    (one row per object of the world), whole symbols in 0..vocab_size-1, 0 after the first EOS; weights >= 0 per
    synonym, each row's summing to 1 (uniform over the synonyms by default)."""
    given = np.asarray(table)
    table = given[:, None] if given.ndim == 2 else given
    if table.ndim != 3 or table.shape[0] != n_objects or table.shape[2] != max_len or table.shape[1] < 1:
        raise ConfigError(f"{FIELD}: a table of shape {given.shape}; expected (n_objects={n_objects}, "
                          f"max_len={max_len}) or (n_objects={n_objects}, synonyms, max_len={max_len}), one row per object "
                          f"of the world in its order")
    if not (np.issubdtype(table.dtype, np.integer) or np.all(np.mod(table, 1) == 0)):
        raise ConfigError(f"{FIELD}: the table holds non-integer symbols, e.g. {table[np.mod(table, 1) != 0][0]!r}")
    table = table.astype(np.int64)
    bad = (table < 0) | (table >= vocab_size)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ConfigError(f"{FIELD}: object {row}'s message holds symbol {int(table[bad][0])}; allowed 0..{vocab_size - 1} "
                          f"(agents.vocab_size={vocab_size}, EOS = 0 included)")
    padded = np.asarray(truncate_at_eos(table))
    if not np.array_equal(padded, table):
        row = int(np.argwhere(np.any(padded != table, axis=-1))[0][0])
        raise ConfigError(f"{FIELD}: object {row}'s message {table[row][np.any(padded[row] != table[row], -1)][0].tolist()} "
                          f"has symbols after its first EOS; the conventions pad a message with 0 after its first 0")
    S = table.shape[1]
    weights = np.full((n_objects, S), 1.0 / S) if weights is None else np.asarray(weights, np.float64)
    if weights.shape != (n_objects, S) or np.any(weights < 0) or not np.allclose(weights.sum(1), 1.0, atol=1e-5):
        raise ConfigError(f"{FIELD}: synonym weights of shape {weights.shape} must be >= 0 with rows summing to 1, "
                          f"shape ({n_objects}, {S})")
    return table.astype(np.int32), weights.astype(np.float32)


class TableSender(Sender):
    """An oracle language as a sender (module doc): `table [n, S, T]`, `weights [n, S]` over the world's `objects [n, K]`.

    Objects are found in the table by their code (games.objects.encode); an object outside it speaks uniformly at random.
    """

    def __init__(self, table: np.ndarray, weights: np.ndarray, objects: np.ndarray, n_values: int, vocab_size: int,
                 noise: float):
        self.vocab_size, self.max_len, self.n_values, self.noise = vocab_size, table.shape[-1], n_values, float(noise)
        self.table, self.weights = jnp.asarray(table, jnp.int32), jnp.asarray(weights, jnp.float32)
        codes = encode(objects, n_values)
        rows = np.full(n_values ** objects.shape[1], -1, np.int32)  # object code -> table row
        rows[codes] = np.arange(len(codes))
        self.rows = jnp.asarray(rows)

    def decode(self, objects: jax.Array, choose: Choose, xs, unroll: bool = True) -> tuple[jax.Array, jax.Array]:
        powers = self.n_values ** jnp.arange(objects.shape[-1] - 1, -1, -1)
        row = self.rows[jnp.sum(objects * powers, axis=-1)]  # [B]
        known = row >= 0
        words, w = self.table[jnp.maximum(row, 0)], self.weights[jnp.maximum(row, 0)]  # [B, S, T], [B, S]
        agrees = jnp.where(known[:, None], w, 0.0)  # the synonyms' weights while they agree with the prefix
        length = self.max_len if xs is None else jax.tree.leaves(xs)[0].shape[0]
        uniform = jnp.full(self.vocab_size, 1.0 / self.vocab_size)
        log_ps, one_hots = [], []
        for t in range(length):
            votes = jnp.einsum("bs,bsv->bv", agrees, jax.nn.one_hot(words[:, :, t], self.vocab_size))
            total = votes.sum(-1, keepdims=True)
            q = jnp.where(total > 0, votes / jnp.where(total > 0, total, 1.0), uniform)
            # a finite floor for probability 0 (noise = 0): 0 * log 0 must read 0, not nan, in every sum over symbols
            log_p = jnp.maximum(jnp.log((1.0 - self.noise) * q + self.noise * uniform), LOG_ZERO)
            one_hot = choose(log_p, None if xs is None else jax.tree.map(lambda x: x[t], xs))
            agrees = agrees * (words[:, :, t] == jnp.argmax(one_hot, -1)[:, None])
            log_ps.append(log_p)
            one_hots.append(one_hot)
        return jnp.stack(log_ps, 1), jnp.stack(one_hots, 1)


def oracle_sender(spec: str, objects: np.ndarray, n_values: int, vocab_size: int, max_len: int, noise: float,
                  seed: int) -> TableSender:
    """The oracle `transmission.oracle` names: a built-in language (LANGUAGES) or a table file, over the world's objects."""
    if spec in LANGUAGES:
        table, weights = language(spec, objects, n_values, vocab_size, max_len, seed)
    else:
        table, weights = check_table(read_table(spec), len(objects), vocab_size, max_len)
    return TableSender(table, weights, objects, n_values, vocab_size, noise)
