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
* Context independence (Bogin, Geva & Berant 2018, "Emergence of communication in an interactive
  world with consistent speakers", arXiv 1809.00549): how consistently each concept (an attribute
  value) is named by one symbol that names nothing else, from an alignment of concepts and symbols.
* Tree reconstruction error, TRE (Andreas 2019, "Measuring compositionality in representation
  learning", ICLR): how far the messages are from the best *additive* code, one learned vector per
  concept summed over an object's concepts.

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

from games.messages import content_length, message_length, truncate_at_eos

# -- message conventions (games.messages) ------------------------------------------------------


def _weights(mask, n: int) -> jax.Array:
    """`[n]` float weights of the rows a metric counts: all of them, or those where `mask` is True."""
    return jnp.ones(n, jnp.float32) if mask is None else jnp.asarray(mask, jnp.float32)


@jax.jit
def mean_length_jax(messages: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Scalar: mean message length (`games.messages.message_length`, the EOS counted)."""
    w = _weights(mask, messages.shape[0])
    return jnp.sum(w * message_length(messages)) / jnp.sum(w)


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
    len_a, len_b = content_length(a), content_length(b)
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


def integer_ranks(x: jax.Array, size: int, valid: jax.Array) -> jax.Array:
    """`[P]` float: the ranks from 0 of `x [P]`, whole numbers in `0..size-1`, ties given their average rank (as
    scipy's rankdata), among the `valid` entries (the others' ranks are meaningless). From a histogram, not a
    sort: the entries below, plus half the other ties."""
    counts = jnp.zeros(size, jnp.float32).at[x].add(valid.astype(jnp.float32))
    below = jnp.cumsum(counts) - counts
    return below[x] + (counts[x] - 1) / 2


def pearson(x: jax.Array, y: jax.Array, w: jax.Array | None = None) -> jax.Array:
    """Scalar: Pearson correlation over the entries with weight 1 in `w` (all by default); 0.0 when either is constant."""
    w = jnp.ones_like(x) if w is None else w
    n = jnp.maximum(jnp.sum(w), 1.0)
    xc, yc = w * (x - jnp.sum(w * x) / n), w * (y - jnp.sum(w * y) / n)
    denom = jnp.sqrt(jnp.sum(xc * xc) * jnp.sum(yc * yc))
    return jnp.where(denom > 0, jnp.sum(xc * yc) / jnp.where(denom > 0, denom, 1.0), 0.0)


def egg_messages(messages: jax.Array) -> jax.Array:
    """The messages as EGG's topsim reads them: EOS and the padding after it count as symbols (a fresh symbol -1)."""
    return jnp.where(truncate_at_eos(messages) == 0, -1, messages)


@partial(jax.jit, static_argnames="padding")
def topsim_jax(objects: jax.Array, messages: jax.Array, mask: jax.Array | None = None, padding: str = "content") -> jax.Array:
    """Scalar: topographic similarity of `objects [n, K]` and `messages [n, max_len]`.

    Over all pairs i < j (both in `mask`): Spearman(Hamming(objects), Levenshtein(messages)).
    `padding="content"` (the lab's): the edit distance of the message contents, what precedes the
    first EOS. `padding="egg"`: of the whole padded rows, the EOS and what follows counting as
    symbols, as EGG's `TopographicSimilarity` computes it; on trained speakers the two differ by a
    few hundredths (up to 0.04 on the default game). Memory is O(n^2 * max_len).
    """
    n = objects.shape[0]
    if n < 2:  # no pairs
        return jnp.float32(0.0)
    i, j = np.triu_indices(n, k=1)
    messages = truncate_at_eos(messages) if padding == "content" else egg_messages(messages)
    object_distance = jnp.sum(objects[i] != objects[j], axis=-1)
    message_distance = edit_distance_jax(messages[i], messages[j])
    valid = jnp.ones(len(i), bool) if mask is None else mask[i] & mask[j]
    x_rank, y_rank = (integer_ranks(d, size, valid) for d, size in ((object_distance, objects.shape[1] + 1),
                                                                     (message_distance, messages.shape[1] + 1)))
    # Spearman: Pearson of the ranks. Average ranks of P entries have mean (P-1)/2, so centring by it is exact in
    # float32 (ranks are half-integers): a constant vector gives exact zeros and the correlation exactly 0.0.
    mid = (jnp.sum(valid) - 1) / 2
    return pearson(jnp.where(valid, x_rank, mid) - mid, jnp.where(valid, y_rank, mid) - mid, valid.astype(jnp.float32))


TOPSIM_PADDING = ("content", "egg")


def topsim(objects, messages, padding: str = "content") -> float:
    if padding not in TOPSIM_PADDING:
        raise ValueError(f"padding={padding!r}: allowed values are {', '.join(TOPSIM_PADDING)}")
    return float(topsim_jax(jnp.asarray(objects), jnp.asarray(messages), padding=padding))


# -- disentanglement --------------------------------------------------------------------------


def entropy(p: jax.Array, axis) -> jax.Array:
    """Entropy in nats of the distribution(s) `p` along `axis` (0 log 0 = 0)."""
    return -jnp.sum(xlogy(p, p), axis=axis)


def feature_gaps(features: jax.Array, n_classes: int, objects: jax.Array, n_values: int,
                 mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """`(gap [F], informative [F])`: per feature f, (I(f; a_best) - I(f; a_second)) / H(f), and whether H(f) > 0.

    `features [n, F]` with values in `0..n_classes-1`, `objects [n, K]` with values in
    `0..n_values-1`. Probabilities are empirical frequencies (over the rows in `mask`); the joint
    histogram of every (feature, attribute) pair comes from one einsum of one-hot codes.
    """
    w = _weights(mask, features.shape[0])
    f = jax.nn.one_hot(features, n_classes) * w[:, None, None]  # [n, F, C]
    a = jax.nn.one_hot(objects, n_values)  # [n, K, V]
    total = jnp.sum(w)
    p_f, p_a = f.sum(0) / total, jnp.einsum("n,nkv->kv", w, a) / total  # [F, C], [K, V]
    p_joint = jnp.einsum("nfc,nkv->fkcv", f, a) / total  # [F, K, C, V]
    h_f = entropy(p_f, -1)  # [F]
    mi = h_f[:, None] + entropy(p_a, -1)[None, :] - entropy(p_joint, (-2, -1))  # [F, K]
    best = jnp.max(mi, axis=-1)
    if mi.shape[1] > 1:  # the runner-up: the largest once the (first) best is set aside; a tie gives a gap of 0
        second = jnp.max(jnp.where(jnp.arange(mi.shape[1]) == jnp.argmax(mi, axis=-1)[:, None], -jnp.inf, mi), axis=-1)
    else:  # one attribute: nothing to compete with
        second = 0.0
    informative = h_f > 0
    return (best - second) / jnp.where(informative, h_f, 1.0), informative


def _mean_gap(gap: jax.Array, informative: jax.Array) -> jax.Array:
    return jnp.sum(jnp.where(informative, gap, 0.0)) / jnp.maximum(informative.sum(), 1)


def information_gap(features: jax.Array, n_classes: int, objects: jax.Array, n_values: int,
                    mask: jax.Array | None = None) -> jax.Array:
    """Scalar: mean over features f with H(f) > 0 of (I(f; a_best) - I(f; a_second)) / H(f) (`feature_gaps`)."""
    return _mean_gap(*feature_gaps(features, n_classes, objects, n_values, mask))


@partial(jax.jit, static_argnames=("n_values", "vocab_size"))
def posdis_jax(objects: jax.Array, messages: jax.Array, n_values: int, vocab_size: int, mask: jax.Array | None = None) -> jax.Array:
    """Scalar: positional disentanglement; the features are the symbols at each position."""
    return information_gap(truncate_at_eos(messages), vocab_size, objects, n_values, mask)


def symbol_counts(messages: jax.Array, vocab_size: int) -> jax.Array:
    """`[n, vocab_size-1]` int: how often each non-EOS symbol 1..vocab_size-1 occurs in the content."""
    counts = jax.nn.one_hot(truncate_at_eos(messages), vocab_size, dtype=jnp.int32).sum(-2)
    return counts[:, 1:]


@partial(jax.jit, static_argnames=("n_values", "vocab_size"))
def bosdis_jax(objects: jax.Array, messages: jax.Array, n_values: int, vocab_size: int, mask: jax.Array | None = None) -> jax.Array:
    """Scalar: bag-of-symbols disentanglement; the features are the per-symbol counts."""
    max_count = messages.shape[-1]
    return information_gap(symbol_counts(messages, vocab_size), max_count + 1, objects, n_values, mask)


def disentanglement_jax(objects: jax.Array, messages: jax.Array, n_values: int, vocab_size: int,
                        mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """`(posdis, bosdis)` from one histogram of both feature sets (positions and symbol counts, their classes padded
    to one size: an empty class adds 0 to every entropy), for the evaluation: one computation to compile, not two."""
    positions, counts = truncate_at_eos(messages), symbol_counts(messages, vocab_size)
    classes = max(vocab_size, messages.shape[-1] + 1)
    gap, informative = feature_gaps(jnp.concatenate([positions, counts], axis=1), classes, objects, n_values, mask)
    T = positions.shape[1]
    return _mean_gap(gap[:T], informative[:T]), _mean_gap(gap[T:], informative[T:])


def _static_sizes(objects, messages, vocab_size, n_values) -> tuple[int, int]:
    """Value and vocabulary sizes, inferred as max + 1 where not given; a size too small for the data is refused."""
    largest_value, largest_symbol = int(np.max(objects)), int(np.max(messages))
    n_values = largest_value + 1 if n_values is None else int(n_values)
    vocab_size = largest_symbol + 1 if vocab_size is None else int(vocab_size)
    if n_values <= largest_value:
        raise ValueError(f"n_values={n_values} is too small: the objects hold value {largest_value}; "
                         f"give n_values >= {largest_value + 1} (or leave it out to infer it)")
    if vocab_size <= largest_symbol:
        raise ValueError(f"vocab_size={vocab_size} is too small: the messages hold symbol {largest_symbol}; "
                         f"give vocab_size >= {largest_symbol + 1} (EOS included, or leave it out to infer it)")
    return n_values, vocab_size


def posdis(objects, messages, vocab_size: int | None = None, *, n_values: int | None = None) -> float:
    n_values, vocab_size = _static_sizes(objects, messages, vocab_size, n_values)
    return float(posdis_jax(jnp.asarray(objects), jnp.asarray(messages), n_values, vocab_size))


def bosdis(objects, messages, vocab_size: int | None = None, *, n_values: int | None = None) -> float:
    n_values, vocab_size = _static_sizes(objects, messages, vocab_size, n_values)
    return float(bosdis_jax(jnp.asarray(objects), jnp.asarray(messages), n_values, vocab_size))


# -- context independence and tree reconstruction error ----------------------------------------


def concept_one_hot(objects: jax.Array, n_values: int) -> jax.Array:
    """`[n, K*V]` float: row i has a 1 at concept `k*V + objects[i, k]` (attribute k has value objects[i, k]) for each k."""
    return jax.nn.one_hot(objects, n_values).reshape(objects.shape[0], -1)


def _ibm1(sources: jax.Array, targets: jax.Array, iterations: int) -> jax.Array:
    """`[S, T]` p(target token | source token) by IBM model 1's EM (Brown et al. 1993), from uniform.

    `sources [n, S]` and `targets [n, T]` are the token counts of each pair (sentence); every target
    token of a pair is generated by one of the pair's source tokens, chosen uniformly. A pair without
    source tokens explains none of its targets and is left out.
    """
    def step(_, t):
        generated = sources @ t  # [n, T]: sum over the pair's source tokens of t(target | source)
        share = jnp.where(generated > 0, targets / jnp.where(generated > 0, generated, 1.0), 0.0)
        counts = t * (sources.T @ share)  # [S, T] expected alignment counts (E-step)
        return counts / jnp.maximum(counts.sum(-1, keepdims=True), 1e-30)  # M-step

    uniform = jnp.full((sources.shape[1], targets.shape[1]), 1.0 / targets.shape[1])
    return jax.lax.fori_loop(0, iterations, step, uniform)


@partial(jax.jit, static_argnames=("n_values", "vocab_size", "iterations"))
def context_independence_jax(objects: jax.Array, messages: jax.Array, n_values: int, vocab_size: int,
                             mask: jax.Array | None = None, iterations: int = 100) -> jax.Array:
    """Scalar: Bogin et al. (2018)'s context independence, mean over the concepts c that occur of p(v_c|c) p(c|v_c).

    Concepts are attribute values (`k*V + v`), symbols the non-EOS symbols of the message contents,
    counted as a bag (their positions are ignored). p(v|c) and p(c|v) come from IBM model 1 alignments
    in each direction (the paper aligns with IBM model 1 too; EM from uniform, `iterations` steps), and
    v_c = argmax_v p(c|v) is the symbol that most specifically names c. 1 when every concept is always
    said with its own symbol; 1/2 when each concept has two synonyms used equally often; 1/K when every
    attribute uses the same symbols (they can only be told apart by position).
    """
    w = _weights(mask, objects.shape[0])[:, None]
    concepts = concept_one_hot(objects, n_values) * w  # [n, C]
    symbols = symbol_counts(messages, vocab_size).astype(jnp.float32) * w  # [n, vocab-1]
    p_symbol_given_concept = _ibm1(concepts, symbols, iterations)  # [C, vocab-1]
    p_concept_given_symbol = _ibm1(symbols, concepts, iterations)  # [vocab-1, C]
    best = jnp.argmax(p_concept_given_symbol, axis=0)  # [C] v_c
    c = jnp.arange(concepts.shape[1])
    score = p_symbol_given_concept[c, best] * p_concept_given_symbol[best, c]
    occurs = concepts.sum(0) > 0
    return jnp.sum(jnp.where(occurs, score, 0.0)) / jnp.maximum(occurs.sum(), 1)


def context_independence(objects, messages, vocab_size: int | None = None, *, n_values: int | None = None) -> float:
    n_values, vocab_size = _static_sizes(objects, messages, vocab_size, n_values)
    return float(context_independence_jax(jnp.asarray(objects), jnp.asarray(messages), n_values, vocab_size))


@partial(jax.jit, static_argnames=("n_values", "vocab_size"))
def tree_reconstruction_error_jax(objects: jax.Array, messages: jax.Array, n_values: int, vocab_size: int,
                                  mask: jax.Array | None = None) -> jax.Array:
    """Scalar: Andreas (2019)'s TRE with additive composition and squared Euclidean distance.

    A message is represented as the one-hot codes of its symbols, position by position (`[max_len *
    vocab_size]`, the padding read as EOS). TRE = min over concept vectors e_c of the mean over objects
    x of || sum_k e_{k, x_k} - f(x) ||^2: how much of the messages no additive code of the attribute
    values explains. Andreas fits the e_c by gradient descent for a chosen distance; with the squared
    Euclidean distance the fit is a linear least-squares problem, solved here exactly. 0 for a code
    where each attribute has its own positions and each value its own symbol there; (1 - 1/V)^2 for a
    holistic code of K=2 attributes (every object its own one-symbol word).
    """
    n = objects.shape[0]
    w = _weights(mask, n)
    design = concept_one_hot(objects, n_values) * jnp.sqrt(w)[:, None]  # [n, K*V]
    target = jax.nn.one_hot(truncate_at_eos(messages), vocab_size).reshape(n, -1) * jnp.sqrt(w)[:, None]  # [n, T*vocab]
    vectors, *_ = jnp.linalg.lstsq(design, target)  # [K*V, T*vocab] e_c
    residual = design @ vectors - target
    return jnp.sum(residual**2) / jnp.sum(w)


def tree_reconstruction_error(objects, messages, vocab_size: int | None = None, *, n_values: int | None = None) -> float:
    n_values, vocab_size = _static_sizes(objects, messages, vocab_size, n_values)
    return float(tree_reconstruction_error_jax(jnp.asarray(objects), jnp.asarray(messages), n_values, vocab_size))


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
def message_entropy_jax(messages: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Scalar: entropy (nats) of the empirical distribution of distinct messages (of the rows in `mask`).

    Sorting the messages lexicographically puts equal ones next to each other; the run
    lengths are the counts. O(n log n), so it also fits whole evaluation splits.
    """
    messages = truncate_at_eos(messages)
    n = messages.shape[0]
    w = _weights(mask, n)
    order = jnp.lexsort(messages.T[::-1])  # lexsort's primary key is the last one
    ordered = messages[order]
    starts_run = jnp.concatenate([jnp.array([True]), jnp.any(ordered[1:] != ordered[:-1], axis=-1)])
    run = jnp.cumsum(starts_run) - 1
    counts = jax.ops.segment_sum(w[order], run, num_segments=n)
    return entropy(counts / jnp.sum(w), -1)


def message_entropy(messages) -> float:
    return float(message_entropy_jax(jnp.asarray(messages)))


@partial(jax.jit, static_argnames="vocab_size")
def vocab_use_jax(messages: jax.Array, vocab_size: int, mask: jax.Array | None = None) -> jax.Array:
    """Scalar int: number of distinct non-EOS symbols occurring in message contents (of the rows in `mask`)."""
    counts = symbol_counts(messages, vocab_size) * _weights(mask, messages.shape[0]).astype(jnp.int32)[:, None]
    return jnp.sum(counts.sum(0) > 0)


def vocab_use(messages, vocab_size: int) -> int:
    return int(vocab_use_jax(jnp.asarray(messages), int(vocab_size)))
