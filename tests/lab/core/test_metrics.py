"""Tests for lab.metrics against independent brute-force / scipy references."""

import itertools
import math
from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

import games
from games import languages
from lab.core import metrics

# -- plain-Python references --------------------------------------------------------------------


def content(message):
    """The symbols before the first 0, as a tuple."""
    out = []
    for s in message:
        if s == 0:
            break
        out.append(int(s))
    return tuple(out)


def levenshtein(a, b):
    """Textbook O(len(a) * len(b)) edit distance."""
    prev = list(range(len(b) + 1))
    for r, x in enumerate(a, 1):
        row = [r]
        for c, y in enumerate(b, 1):
            row.append(min(prev[c] + 1, row[c - 1] + 1, prev[c - 1] + (x != y)))
        prev = row
    return prev[-1]


def topsim_reference(objects, messages):
    pairs = list(itertools.combinations(range(len(objects)), 2))
    hamming = [sum(int(x != y) for x, y in zip(objects[i], objects[j])) for i, j in pairs]
    edit = [levenshtein(content(messages[i]), content(messages[j])) for i, j in pairs]
    return scipy.stats.spearmanr(hamming, edit).statistic


def entropy_of(values):
    n = len(values)
    return -sum(c / n * math.log(c / n) for c in Counter(values).values())


def mutual_information(x, y):
    return entropy_of(list(x)) + entropy_of(list(y)) - entropy_of(list(zip(x, y)))


def information_gap_reference(features, objects):
    """Chaabouni et al. 2020's gap, straight from the formula, one feature column at a time."""
    gaps = []
    for f in features.T:
        h = entropy_of(list(f))
        if h <= 0:
            continue
        mi = sorted((mutual_information(f, a) for a in objects.T), reverse=True) + [0.0]
        gaps.append((mi[0] - mi[1]) / h)
    return float(np.mean(gaps)) if gaps else 0.0


def posdis_reference(objects, messages):
    normalised = np.array([list(content(m)) + [0] * (messages.shape[1] - len(content(m))) for m in messages])
    return information_gap_reference(normalised, objects)


def bosdis_reference(objects, messages, vocab_size):
    counts = np.array([[content(m).count(v) for v in range(1, vocab_size)] for m in messages])
    return information_gap_reference(counts, objects)


# -- fixtures -----------------------------------------------------------------------------------

K, V = 3, 4
ALL_OBJECTS = np.array(list(itertools.product(range(V), repeat=K)))  # 64 objects


def random_language(rng, n, max_len, vocab_size, eos_rate=0.2):
    """Random messages with EOS sprinkled in, so contents have varied lengths."""
    messages = rng.integers(1, vocab_size, size=(n, max_len))
    return np.where(rng.random((n, max_len)) < eos_rate, 0, messages)


def scramble_after_eos(rng, messages, vocab_size):
    """Random symbols wherever the content is over (the first EOS itself stays 0)."""
    after = np.cumsum(messages == 0, axis=1) > 0
    first_eos = after & (np.cumsum(after, axis=1) == 1)
    noise = rng.integers(0, vocab_size, size=messages.shape)
    return np.where(after & ~first_eos, noise, messages)


# -- conventions --------------------------------------------------------------------------------


def test_lengths_and_normalisation_follow_the_convention():
    messages = np.array([[3, 0, 5], [1, 2, 3], [0, 4, 4], [2, 2, 0]])
    np.testing.assert_array_equal(games.message_length(messages), [2, 3, 1, 3])
    np.testing.assert_array_equal(games.truncate_at_eos(messages), [[3, 0, 0], [1, 2, 3], [0, 0, 0], [2, 2, 0]])
    assert metrics.mean_length(messages) == pytest.approx(9 / 4)


def test_edit_distance_matches_plain_python():
    rng = np.random.default_rng(0)
    a, b = random_language(rng, 200, 6, 4, 0.15), random_language(rng, 200, 6, 4, 0.15)
    expected = [levenshtein(content(x), content(y)) for x, y in zip(a, b)]
    np.testing.assert_array_equal(metrics.edit_distance_jax(a, b), expected)


# -- topographic similarity -------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_topsim_equals_scipy_on_brute_force_distances(seed):
    rng = np.random.default_rng(seed)
    objects = rng.integers(0, 3, size=(40, 3))  # few values: many tied Hamming distances
    messages = random_language(rng, 40, 5, 4, eos_rate=0.25)
    assert (messages[:, 1:-1] == 0).any()  # some EOS in the middle
    expected = topsim_reference(objects, messages)
    assert metrics.topsim(objects, messages) == pytest.approx(expected, abs=1e-5)


def test_topsim_ignores_symbols_after_eos():
    rng = np.random.default_rng(3)
    objects = rng.integers(0, 3, size=(40, 3))
    messages = random_language(rng, 40, 5, 4, eos_rate=0.3)
    scrambled = scramble_after_eos(rng, messages, 4)
    assert (scrambled != messages).any()
    assert metrics.topsim(objects, scrambled) == metrics.topsim(objects, messages)


def test_compositional_language_has_topsim_one():
    # Position k says attribute k with its own symbols, so edit distance == Hamming distance.
    # (With one alphabet shared by all positions, a shift can beat substitution,
    # e.g. 123 vs 234 has edit distance 2 but Hamming 3, and topsim is ~0.94.)
    messages = 1 + ALL_OBJECTS + V * np.arange(K)
    assert metrics.topsim(ALL_OBJECTS, messages) == pytest.approx(1.0, abs=1e-6)


def test_topsim_is_zero_for_a_constant_language():
    messages = np.ones((len(ALL_OBJECTS), 3), int)
    assert metrics.topsim(ALL_OBJECTS, messages) == 0.0


@settings(max_examples=10, deadline=None)
@given(
    st.lists(st.integers(0, 2), min_size=12 * 2, max_size=12 * 2),
    st.lists(st.integers(0, 3), min_size=12 * 4, max_size=12 * 4),
    st.permutations(list(range(12))),
)
def test_topsim_bounded_and_invariant_under_joint_permutation(objects, messages, perm):
    objects, messages = np.array(objects).reshape(12, 2), np.array(messages).reshape(12, 4)
    value = metrics.topsim(objects, messages)
    assert -1.0 - 1e-6 <= value <= 1.0 + 1e-6
    assert metrics.topsim(objects[perm], messages[perm]) == pytest.approx(value, abs=1e-5)


# -- disentanglement --------------------------------------------------------------------------


def test_compositional_language_has_posdis_one():
    assert metrics.posdis(ALL_OBJECTS, ALL_OBJECTS + 1) == pytest.approx(1.0, abs=1e-5)


def test_single_attribute_posdis_uses_zero_as_second_best():
    objects = ALL_OBJECTS[:, :1]  # K = 1
    assert metrics.posdis(objects, objects + 1, vocab_size=V + 1) == pytest.approx(1.0, abs=1e-5)


def test_random_language_has_posdis_and_bosdis_near_zero():
    rng = np.random.default_rng(4)
    objects = rng.integers(0, V, size=(2000, K))
    messages = rng.integers(1, 6, size=(2000, 4))
    assert abs(metrics.posdis(objects, messages, vocab_size=6)) < 0.1
    assert abs(metrics.bosdis(objects, messages, vocab_size=6)) < 0.1


def test_disjoint_symbols_per_attribute_give_bosdis_one():
    # Attribute k uses symbols 1 + k*V .. (k+1)*V; order within a message shuffled per object.
    rng = np.random.default_rng(5)
    messages = rng.permuted(1 + ALL_OBJECTS + V * np.arange(K), axis=1)
    assert metrics.bosdis(ALL_OBJECTS, messages, vocab_size=1 + K * V) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("seed", [6, 7])
def test_posdis_and_bosdis_match_the_formula(seed):
    # Partly structured language: position 0 copies attribute 0, position 1 is a noisy
    # attribute 1, position 2 mixes attributes 1 and 2, position 3 is constant; EOS here and there.
    rng = np.random.default_rng(seed)
    objects = ALL_OBJECTS
    noisy = np.where(rng.random(len(objects)) < 0.3, rng.integers(1, 7, len(objects)), objects[:, 1] + 1)
    messages = np.stack([objects[:, 0] + 1, noisy, (objects[:, 1] + objects[:, 2]) % 6 + 1, np.full(len(objects), 2)], 1)
    messages = np.where(rng.random(messages.shape) < 0.1, 0, messages)
    vocab_size = 7
    assert metrics.posdis(objects, messages, vocab_size) == pytest.approx(posdis_reference(objects, messages), abs=1e-4)
    assert metrics.bosdis(objects, messages, vocab_size) == pytest.approx(
        bosdis_reference(objects, messages, vocab_size), abs=1e-4
    )


@pytest.mark.parametrize("vocab_size, max_len", [(7, 4), (3, 6)])  # the padded classes: the vocabulary's, then the counts'
def test_the_evaluation_computes_posdis_and_bosdis_together_as_the_formula_does(vocab_size, max_len):
    rng = np.random.default_rng(vocab_size)
    objects = ALL_OBJECTS
    messages = random_language(rng, len(objects), max_len, vocab_size, 0.15)
    messages[:, 0] = objects[:, 0] % (vocab_size - 1) + 1  # some structure: position 0 tells attribute 0
    mask = rng.random(len(objects)) < 0.7
    posdis, bosdis = metrics.disentanglement_jax(jnp.asarray(objects), jnp.asarray(messages), V, vocab_size, jnp.asarray(mask))
    assert float(posdis) == pytest.approx(posdis_reference(objects[mask], messages[mask]), abs=1e-4)
    assert float(bosdis) == pytest.approx(bosdis_reference(objects[mask], messages[mask], vocab_size), abs=1e-4)
    assert float(posdis) > 0.1  # the structure is seen: not a comparison of zeros


def test_constant_language_has_zero_disentanglement():
    messages = np.full((len(ALL_OBJECTS), 3), 2)
    assert metrics.posdis(ALL_OBJECTS, messages) == 0.0
    assert metrics.bosdis(ALL_OBJECTS, messages, vocab_size=3) == 0.0


# -- accuracy and language statistics ---------------------------------------------------------


def test_accuracy_matches_numpy():
    rng = np.random.default_rng(8)
    targets = rng.integers(0, 3, size=(50, 4))
    predictions = np.where(rng.random(targets.shape) < 0.8, targets, rng.integers(0, 3, size=targets.shape))
    result = metrics.accuracy(targets, predictions)
    assert result["object"] == pytest.approx(np.mean(np.all(targets == predictions, axis=1)))
    np.testing.assert_allclose(result["attribute"], np.mean(targets == predictions, axis=0), rtol=1e-6)


def test_message_entropy():
    distinct = 1 + ALL_OBJECTS  # 64 distinct messages
    assert metrics.message_entropy(distinct) == pytest.approx(math.log(64), rel=1e-5)
    assert metrics.message_entropy(np.full((10, 3), 2)) == pytest.approx(0.0, abs=1e-7)
    # Messages equal up to their first EOS are the same message: {a, a, b} -> H(2/3, 1/3).
    same_content = np.array([[1, 0, 2], [1, 0, 3], [2, 2, 2]])
    assert metrics.message_entropy(same_content) == pytest.approx(entropy_of(["a", "a", "b"]), rel=1e-5)


def test_vocab_use_counts_content_symbols_only():
    assert metrics.vocab_use(np.array([[1, 0, 5], [1, 3, 0]]), vocab_size=6) == 2
    assert metrics.vocab_use(np.array([[0, 4, 4]]), vocab_size=6) == 0


# -- jittability ----------------------------------------------------------------------------------


def test_jax_twins_run_inside_scan():
    rng = np.random.default_rng(9)
    objects = jnp.asarray(rng.integers(0, V, size=(16, K)))
    messages = jnp.asarray(random_language(rng, 16, 4, 5))

    def step(carry, _):
        return carry, jnp.stack([
            metrics.topsim_jax(objects, messages),
            metrics.posdis_jax(objects, messages, V, 5),
            metrics.bosdis_jax(objects, messages, V, 5),
            metrics.message_entropy_jax(messages),
            metrics.vocab_use_jax(messages, 5).astype(jnp.float32),
            metrics.mean_length_jax(messages),
        ])

    _, out = jax.jit(lambda: jax.lax.scan(step, 0, None, length=2))()
    expected = [
        metrics.topsim(objects, messages),
        metrics.posdis(objects, messages, 5, n_values=V),
        metrics.bosdis(objects, messages, 5, n_values=V),
        metrics.message_entropy(messages),
        metrics.vocab_use(messages, 5),
        metrics.mean_length(messages),
    ]
    np.testing.assert_allclose(out, [expected, expected], rtol=1e-5, atol=1e-6)


# -- masks (the evaluation pads splits to one size), EGG's topsim, sizes that do not fit ----------


@pytest.mark.parametrize("seed", [0, 1])
def test_masked_metrics_equal_the_metrics_of_the_unmasked_rows(seed):
    rng = np.random.default_rng(seed)
    objects = rng.integers(0, 4, size=(40, 3))
    messages = random_language(rng, 40, 5, 6, 0.2)
    mask = rng.random(40) < 0.6
    kept_objects, kept_messages = jnp.asarray(objects[mask]), jnp.asarray(messages[mask])
    objects, messages, mask = jnp.asarray(objects), jnp.asarray(messages), jnp.asarray(mask)
    pairs = [
        (metrics.topsim_jax(objects, messages, mask), metrics.topsim_jax(kept_objects, kept_messages)),
        (metrics.posdis_jax(objects, messages, 4, 6, mask), metrics.posdis_jax(kept_objects, kept_messages, 4, 6)),
        (metrics.bosdis_jax(objects, messages, 4, 6, mask), metrics.bosdis_jax(kept_objects, kept_messages, 4, 6)),
        (metrics.message_entropy_jax(messages, mask), metrics.message_entropy_jax(kept_messages)),
        (metrics.vocab_use_jax(messages, 6, mask), metrics.vocab_use_jax(kept_messages, 6)),
        (metrics.mean_length_jax(messages, mask), metrics.mean_length_jax(kept_messages)),
    ]
    for masked, kept in pairs:
        assert float(masked) == pytest.approx(float(kept), abs=1e-5)


def test_egg_topsim_counts_the_eos_padding():
    """../shared/science/egg.md: objects 00, 01, 11 with messages 12, 2, 21 give 1.0 here and 0.5 in EGG."""
    objects = np.array([[0, 0], [0, 1], [1, 1]])
    messages = np.array([[1, 2, 0], [2, 0, 0], [2, 1, 0]])
    assert metrics.topsim(objects, messages) == pytest.approx(1.0)
    assert metrics.topsim(objects, messages, padding="egg") == pytest.approx(0.5)
    # without EOS padding (every message full length) the two conventions agree
    full = np.array([[1, 2, 3], [2, 2, 1], [3, 1, 1]])
    assert metrics.topsim(objects, full, padding="egg") == pytest.approx(metrics.topsim(objects, full))
    with pytest.raises(ValueError, match="padding='bogus': allowed values are content, egg"):
        metrics.topsim(objects, messages, padding="bogus")


@pytest.mark.parametrize("metric", [metrics.posdis, metrics.bosdis, metrics.context_independence, metrics.tree_reconstruction_error])
def test_disentanglement_refuses_sizes_smaller_than_the_data(metric):
    objects, messages = np.array([[0, 1], [1, 2]]), np.array([[1, 5, 0], [2, 3, 0]])
    with pytest.raises(ValueError, match="vocab_size=4 is too small: the messages hold symbol 5; give vocab_size >= 6"):
        metric(objects, messages, vocab_size=4)
    with pytest.raises(ValueError, match="n_values=2 is too small: the objects hold value 2; give n_values >= 3"):
        metric(objects, messages, n_values=2)
    assert metric(objects, messages) == metric(objects, messages, vocab_size=6, n_values=3)


# -- context independence and tree reconstruction error on hand-made languages --------------------


def ibm1_reference(pairs, iterations):
    """IBM model 1 in plain Python: t[source][target] = p(target | source) for `pairs` of token lists."""
    targets = sorted({w for _, tgt in pairs for w in tgt})
    t = {s: {w: 1.0 / len(targets) for w in targets} for src, _ in pairs for s in src}
    for _ in range(iterations):
        counts = {s: dict.fromkeys(targets, 0.0) for s in t}
        for src, tgt in pairs:
            for w in tgt:
                total = sum(t[s][w] for s in src)
                for s in src:
                    counts[s][w] += t[s][w] / total
        t = {s: {w: c / sum(row.values()) for w, c in row.items()} for s, row in counts.items()}
    return t


def context_independence_reference(objects, messages, iterations=100):
    """Bogin et al. (2018): mean over concepts of p(v_c|c) p(c|v_c), v_c = argmax_v p(c|v), IBM model 1 both ways."""
    pairs = [([(k, int(v)) for k, v in enumerate(o)], list(content(m))) for o, m in zip(objects, messages)]
    p_symbol = ibm1_reference([(c, s) for c, s in pairs if s], iterations)
    p_concept = ibm1_reference([(s, c) for c, s in pairs if s], iterations)
    scores = []
    for c in p_symbol:
        best = max(p_concept, key=lambda v: p_concept[v].get(c, 0.0))
        scores.append(p_symbol[c].get(best, 0.0) * p_concept[best][c])
    return float(np.mean(scores))


def tre_reference(objects, messages, n_values, vocab_size):
    """TRE from numpy's float64 least squares: concept indicators -> position-wise one-hot messages."""
    design = np.concatenate([np.eye(n_values)[objects[:, k]] for k in range(objects.shape[1])], axis=1)
    truncated = np.array([list(content(m)) + [0] * (messages.shape[1] - len(content(m))) for m in messages])
    target = np.eye(vocab_size)[truncated].reshape(len(objects), -1)
    vectors = np.linalg.lstsq(design, target, rcond=None)[0]
    return float(np.mean(np.sum((design @ vectors - target) ** 2, axis=1)))


def balanced_synonyms(objects, n_values):
    """Two words per value, the choice set by the parity of the next attribute's value: each used exactly half the time (V even)."""
    other = np.roll(objects, -1, axis=1) % 2
    return np.concatenate([1 + np.arange(objects.shape[1]) * 2 * n_values + other * n_values + objects,
                           np.zeros((len(objects), 1), int)], axis=1)


@pytest.mark.parametrize("k, v", [(2, 4), (3, 4), (2, 5)])
def test_context_independence_known_values(k, v):
    objects = games.all_objects(k, v)
    assert metrics.context_independence(objects, languages.compositional(objects, v)) == pytest.approx(1.0, abs=1e-5)
    assert metrics.context_independence(objects, languages.free_order(objects, v)) == pytest.approx(1.0, abs=1e-5)
    # one name per object: p(v_c|c) = 1/V^(K-1) (c is in V^(K-1) objects), p(c|v_c) = 1/K (the name stands for K concepts)
    expected = 1 / (k * v ** (k - 1))
    assert metrics.context_independence(objects, languages.holistic(objects)) == pytest.approx(expected, abs=1e-5)
    # the same letters for every attribute: a letter names K concepts equally, p(c|v_c) = 1/K
    assert metrics.context_independence(objects, languages.shared_alphabet(objects)) == pytest.approx(1 / k, abs=1e-5)
    assert metrics.context_independence(objects, languages.degenerate(objects)) < 2 / (k * v)
    if v % 2 == 0:  # two synonyms, each said half the time: p(v_c|c) = 1/2, p(c|v_c) = 1
        assert metrics.context_independence(objects, balanced_synonyms(objects, v)) == pytest.approx(0.5, abs=1e-4)


@pytest.mark.parametrize("seed", [0, 1])
def test_context_independence_matches_plain_python(seed):
    rng = np.random.default_rng(seed)
    objects = games.all_objects(2, 4)
    permuted = languages.permuted(languages.compositional(objects, 4), seed)
    noisy = random_language(rng, len(objects), 4, 7, 0.2)
    for messages in (permuted, noisy, languages.synonyms(objects, 4, seed)):
        assert metrics.context_independence(objects, messages) == pytest.approx(
            context_independence_reference(objects, messages), abs=1e-4)
    assert metrics.context_independence(objects, permuted) < 0.5


@pytest.mark.parametrize("k, v", [(2, 2), (2, 4), (3, 3)])
def test_tree_reconstruction_error_known_values(k, v):
    objects = games.all_objects(k, v)
    for additive in (languages.compositional(objects, v), languages.shared_alphabet(objects)):
        assert metrics.tree_reconstruction_error(objects, additive) == pytest.approx(0.0, abs=1e-5)
    holistic = languages.holistic(objects)
    if k == 2:  # the name of cell (i, j) minus its best additive fit leaves (1 - 1/V)^2 per object
        assert metrics.tree_reconstruction_error(objects, holistic) == pytest.approx((1 - 1 / v) ** 2, abs=1e-5)
    assert metrics.tree_reconstruction_error(objects, holistic) > 0.2


@pytest.mark.parametrize("seed", [0, 1])
def test_tree_reconstruction_error_matches_numpy_least_squares(seed):
    rng = np.random.default_rng(seed)
    objects = games.all_objects(3, 3)
    for messages in (languages.permuted(languages.compositional(objects, 3), seed), languages.synonyms(objects, 3, seed),
                     languages.free_order(objects, 3, seed), random_language(rng, len(objects), 4, 6, 0.2)):
        vocab_size = int(messages.max()) + 1
        assert metrics.tree_reconstruction_error(objects, messages) == pytest.approx(
            tre_reference(objects, messages, 3, vocab_size), abs=1e-4)


@pytest.mark.parametrize("seed", [0, 1])
def test_masked_alignment_measures_equal_those_of_the_unmasked_rows(seed):
    rng = np.random.default_rng(seed)
    objects = rng.integers(0, 4, size=(40, 3))
    messages = random_language(rng, 40, 5, 6, 0.2)
    mask = rng.random(40) < 0.6
    for metric in (metrics.context_independence_jax, metrics.tree_reconstruction_error_jax):
        masked = metric(jnp.asarray(objects), jnp.asarray(messages), 4, 6, jnp.asarray(mask))
        kept = metric(jnp.asarray(objects[mask]), jnp.asarray(messages[mask]), 4, 6)
        assert float(masked) == pytest.approx(float(kept), abs=1e-4)
