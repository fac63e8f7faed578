"""Language metrics for Lewis signaling games, in JAX.

Conventions (project-wide): objects are int arrays `[n, K]` (K attributes, values in
`0..n_values-1`); messages are int arrays `[n, max_len]` over `0..vocab_size-1`, symbol 0 is
EOS. A message's *content* is the symbols before its first 0; whatever follows the first 0
is padding and is read as 0. Its length is the index of the first 0 plus one, or `max_len`
when there is no 0.

* Topographic similarity (Brighton & Kirby 2006, "Understanding linguistic evolution by
  visualizing the emergence of topographic mappings", Artificial Life; Lazaridou et al.
  2018, "Emergence of linguistic communication from referential games with symbolic and
  pixel input", ICLR): Spearman correlation between pairwise Hamming distances of objects
  and pairwise edit distances of message contents.
* Positional and bag-of-symbols disentanglement, posdis / bosdis (Chaabouni et al. 2020,
  "Compositionality and Generalization in Emergent Languages", ACL): per message position
  (posdis) or per symbol count (bosdis), the gap between the mutual information with the
  best and the second best attribute, normalised by the feature's entropy.

Every `*_jax` function is jittable (fixed shapes, no host sync), so the trainer can call it
inside `lax.scan`; counts like `n_values` and `vocab_size` are static. The public functions
without the suffix take numpy or JAX arrays and return Python floats; each one calls its
jax twin, so every quantity is computed in exactly one place.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlogy

# -- message conventions ----------------------------------------------------------------------


def content_mask(messages: jax.Array) -> jax.Array:
    """`[n, max_len]` bool: True at the symbols before the first EOS."""
    return jnp.cumprod(jnp.asarray(messages) != 0, axis=-1).astype(bool)


def normalize_messages(messages: jax.Array) -> jax.Array:
    """`[n, max_len]`: the messages with everything after the first EOS set to 0."""
    messages = jnp.asarray(messages)
    return jnp.where(content_mask(messages), messages, 0)


def content_lengths(messages: jax.Array) -> jax.Array:
    """`[n]` int: number of symbols before the first EOS (the EOS itself excluded)."""
    return content_mask(messages).sum(-1)


def message_lengths(messages: jax.Array) -> jax.Array:
    """`[n]` int: index of the first EOS plus one, or `max_len` when there is none."""
    max_len = jnp.shape(messages)[-1]
    return jnp.minimum(content_lengths(messages) + 1, max_len)


@jax.jit
def mean_length_jax(messages: jax.Array) -> jax.Array:
    """Scalar: mean of `message_lengths`."""
    return message_lengths(messages).mean(dtype=jnp.float32)


def mean_length(messages) -> float:
    return float(mean_length_jax(jnp.asarray(messages)))


# -- topographic similarity -------------------------------------------------------------------


def edit_distance_jax(a: jax.Array, b: jax.Array) -> jax.Array:
    """`[P]` int: Levenshtein distance between the contents of `a[p]` and `b[p]`, `a, b: [P, L]`.

    The DP table `D[r, c]` = distance between the first r symbols of a and the first c of b
    is filled row by row (a scan over r), all pairs at once. Within a row the left-neighbour
    dependency `D[r, c] = min(t[c], D[r, c-1] + 1)` unrolls to
    `D[r, c] = c + cummin_{c' <= c}(t[c'] - c')`, so a row is one vectorised cumulative min.
    Row `len(a)`, column `len(b)` is the answer, so we read it when the scan passes that row.
    """
    a, b = jnp.asarray(a), jnp.asarray(b)
    n_pairs, L = b.shape
    len_a, len_b = content_lengths(a), content_lengths(b)
    cols = jnp.arange(L + 1)

    def next_row(carry, x):
        prev, dist = carry  # prev: D[r-1, :] `[P, L+1]`
        r, a_r = x
        substitute = prev[:, :-1] + (a_r[:, None] != b)  # D[r-1, c-1] + cost
        delete = prev[:, 1:] + 1  # D[r-1, c] + 1
        t = jnp.concatenate([jnp.full((n_pairs, 1), r), jnp.minimum(substitute, delete)], axis=1)
        row = jax.lax.cummin(t - cols, axis=1) + cols  # insertions along the row
        dist = jnp.where(len_a == r, jnp.take_along_axis(row, len_b[:, None], 1)[:, 0], dist)
        return (row, dist), None

    first_row = jnp.broadcast_to(cols, (n_pairs, L + 1))
    (_, dist), _ = jax.lax.scan(next_row, (first_row, len_b), (jnp.arange(1, L + 1), a.T))
    return dist


def average_ranks(x: jax.Array) -> jax.Array:
    """`[P]` float: ranks from 0 with ties given their average rank (as scipy's rankdata)."""
    x = jnp.asarray(x)
    s = jnp.sort(x)
    return (jnp.searchsorted(s, x, "left") + jnp.searchsorted(s, x, "right") - 1) / 2


def pearson(x: jax.Array, y: jax.Array) -> jax.Array:
    """Scalar: Pearson correlation, 0.0 when either vector is constant."""
    xc, yc = x - x.mean(), y - y.mean()
    denom = jnp.sqrt(jnp.sum(xc * xc) * jnp.sum(yc * yc))
    return jnp.where(denom > 0, jnp.sum(xc * yc) / jnp.where(denom > 0, denom, 1.0), 0.0)


def spearman(x: jax.Array, y: jax.Array) -> jax.Array:
    """Scalar: Spearman correlation with average ranks for ties (= scipy.stats.spearmanr)."""
    # Average ranks always have mean (P-1)/2, so centring by it is exact in float32 (ranks are
    # half-integers): a constant vector gives exact zeros and the correlation exactly 0.0.
    mid = (jnp.shape(x)[0] - 1) / 2
    return pearson(average_ranks(x).astype(jnp.float32) - mid, average_ranks(y).astype(jnp.float32) - mid)


@jax.jit
def topsim_jax(objects: jax.Array, messages: jax.Array) -> jax.Array:
    """Scalar: topographic similarity of `objects [n, K]` and `messages [n, max_len]`.

    Over all pairs i < j: Spearman(Hamming(objects), Levenshtein(message contents)).
    Memory is O(n^2 * max_len).
    """
    n = objects.shape[0]
    if n < 2:  # no pairs
        return jnp.float32(0.0)
    i, j = np.triu_indices(n, k=1)
    messages = normalize_messages(messages)
    object_distance = jnp.sum(objects[i] != objects[j], axis=-1)
    message_distance = edit_distance_jax(messages[i], messages[j])
    return spearman(object_distance, message_distance)


def topsim(objects, messages) -> float:
    return float(topsim_jax(jnp.asarray(objects), jnp.asarray(messages)))


# -- disentanglement --------------------------------------------------------------------------


def entropy(p: jax.Array, axis) -> jax.Array:
    """Entropy in nats of the distribution(s) `p` along `axis` (0 log 0 = 0)."""
    return -jnp.sum(xlogy(p, p), axis=axis)


def information_gap(features: jax.Array, n_classes: int, objects: jax.Array, n_values: int) -> jax.Array:
    """Scalar: mean over features f with H(f) > 0 of (I(f; a_best) - I(f; a_second)) / H(f).

    `features [n, F]` with values in `0..n_classes-1`, `objects [n, K]` with values in
    `0..n_values-1`. Probabilities are empirical frequencies; the joint histogram of every
    (feature, attribute) pair comes from one einsum of one-hot codes.
    """
    n = features.shape[0]
    f = jax.nn.one_hot(features, n_classes)  # [n, F, C]
    a = jax.nn.one_hot(objects, n_values)  # [n, K, V]
    p_f, p_a = f.mean(0), a.mean(0)  # [F, C], [K, V]
    p_joint = jnp.einsum("nfc,nkv->fkcv", f, a) / n  # [F, K, C, V]
    h_f = entropy(p_f, -1)  # [F]
    mi = h_f[:, None] + entropy(p_a, -1)[None, :] - entropy(p_joint, (-2, -1))  # [F, K]
    mi = -jnp.sort(-mi, axis=-1)  # descending
    second = mi[:, 1] if mi.shape[1] > 1 else 0.0  # one attribute: nothing to compete with
    informative = h_f > 0
    gap = (mi[:, 0] - second) / jnp.where(informative, h_f, 1.0)
    return jnp.sum(jnp.where(informative, gap, 0.0)) / jnp.maximum(informative.sum(), 1)


@partial(jax.jit, static_argnames=("n_values", "vocab_size"))
def posdis_jax(objects: jax.Array, messages: jax.Array, n_values: int, vocab_size: int) -> jax.Array:
    """Scalar: positional disentanglement; the features are the symbols at each position."""
    return information_gap(normalize_messages(messages), vocab_size, objects, n_values)


def symbol_counts(messages: jax.Array, vocab_size: int) -> jax.Array:
    """`[n, vocab_size-1]` int: how often each non-EOS symbol 1..vocab_size-1 occurs in the content."""
    counts = jax.nn.one_hot(normalize_messages(messages), vocab_size, dtype=jnp.int32).sum(-2)
    return counts[:, 1:]


@partial(jax.jit, static_argnames=("n_values", "vocab_size"))
def bosdis_jax(objects: jax.Array, messages: jax.Array, n_values: int, vocab_size: int) -> jax.Array:
    """Scalar: bag-of-symbols disentanglement; the features are the per-symbol counts."""
    max_count = messages.shape[-1]
    return information_gap(symbol_counts(messages, vocab_size), max_count + 1, objects, n_values)


def _static_sizes(objects, messages, vocab_size, n_values) -> tuple[int, int]:
    """Value and vocabulary sizes, inferred as max + 1 where not given."""
    n_values = int(np.max(objects)) + 1 if n_values is None else int(n_values)
    vocab_size = int(np.max(messages)) + 1 if vocab_size is None else int(vocab_size)
    return n_values, vocab_size


def posdis(objects, messages, vocab_size: int | None = None, *, n_values: int | None = None) -> float:
    n_values, vocab_size = _static_sizes(objects, messages, vocab_size, n_values)
    return float(posdis_jax(jnp.asarray(objects), jnp.asarray(messages), n_values, vocab_size))


def bosdis(objects, messages, vocab_size: int | None = None, *, n_values: int | None = None) -> float:
    n_values, vocab_size = _static_sizes(objects, messages, vocab_size, n_values)
    return float(bosdis_jax(jnp.asarray(objects), jnp.asarray(messages), n_values, vocab_size))


# -- accuracy ---------------------------------------------------------------------------------


@jax.jit
def accuracy_jax(targets: jax.Array, predictions: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`(whole-object accuracy: scalar, per-attribute accuracy: [K])` for `[n, K]` arrays."""
    correct = jnp.asarray(targets) == jnp.asarray(predictions)  # [n, K]
    return correct.all(-1).mean(dtype=jnp.float32), correct.mean(0, dtype=jnp.float32)


def accuracy(targets, predictions) -> dict:
    """`{"object": float, "attribute": np.ndarray [K]}`."""
    whole, per_attribute = accuracy_jax(jnp.asarray(targets), jnp.asarray(predictions))
    return {"object": float(whole), "attribute": np.asarray(per_attribute)}


# -- language statistics ----------------------------------------------------------------------


@jax.jit
def message_entropy_jax(messages: jax.Array) -> jax.Array:
    """Scalar: entropy (nats) of the empirical distribution of distinct normalised messages.

    Sorting the messages lexicographically puts equal ones next to each other; the run
    lengths are the counts. O(n log n), so it also fits whole evaluation splits.
    """
    messages = normalize_messages(messages)
    n = messages.shape[0]
    order = jnp.lexsort(messages.T[::-1])  # lexsort's primary key is the last one
    ordered = messages[order]
    starts_run = jnp.concatenate([jnp.array([True]), jnp.any(ordered[1:] != ordered[:-1], axis=-1)])
    run = jnp.cumsum(starts_run) - 1
    counts = jax.ops.segment_sum(jnp.ones(n, jnp.float32), run, num_segments=n)
    return entropy(counts / n, -1)


def message_entropy(messages) -> float:
    return float(message_entropy_jax(jnp.asarray(messages)))


@partial(jax.jit, static_argnames="vocab_size")
def vocab_use_jax(messages: jax.Array, vocab_size: int) -> jax.Array:
    """Scalar int: number of distinct non-EOS symbols occurring in message contents."""
    return jnp.sum(symbol_counts(messages, vocab_size).sum(0) > 0)


def vocab_use(messages, vocab_size: int) -> int:
    return int(vocab_use_jax(jnp.asarray(messages), int(vocab_size)))
