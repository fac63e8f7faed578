"""lab.transmission: oracle languages, distillation from each data source, teacher-hacking detection, chains."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from games import all_objects
from games.fields import ConfigError
from games.messages import truncate_at_eos
from lab.core.hparams import hparams_from_config
from lab.experiment.config import load
from lab.transmission import detect
from lab.transmission.chain import Chains
from lab.transmission.distill import Distiller, Samples, kl, speak, token_kl
from lab.transmission.hacking import Hacking
from lab.transmission.oracle import TableSender, check_table, language

# K=2 attributes of 3 values (9 objects), vocabulary 4 (EOS and a symbol per value), messages of 3 positions
TINY = ["game.n_attributes=2", "game.n_values=3", "game.split=iid", "game.test_fraction=0.25", "agents.vocab_size=7",
        "agents.max_len=3", "agents.hidden_size=32", "agents.embedding_size=8", "transmission.batch_size=32",
        "transmission.n_objects=4", "transmission.teacher_objects=4"]


def every_message(vocab_size: int, max_len: int) -> np.ndarray:
    """Every message of the conventions once (padded with 0 after its first EOS): `[n, max_len]`."""
    rows = np.array(list(itertools.product(range(vocab_size), repeat=max_len)))
    return np.unique(np.asarray(truncate_at_eos(rows)), axis=0)


# -- oracle languages -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["compositional", "permuted", "synonyms"])
def test_an_oracle_is_a_distribution_over_messages_with_its_table_as_support(kind):
    objects = all_objects(2, 3)
    table, weights = language(kind, objects, 3, vocab_size=13, max_len=3, seed=1)
    assert table.shape[1] == (4 if kind == "synonyms" else 1)
    oracle = TableSender(table, weights, objects, 3, 13, noise=0.0)
    messages = jnp.asarray(every_message(13, 3))
    for row in range(len(objects)):
        p = np.exp(np.asarray(oracle.log_prob(jnp.repeat(jnp.asarray(objects[row:row + 1]), len(messages), 0), messages)))
        assert p.sum() == pytest.approx(1.0, abs=1e-5)
        on_table = {tuple(m) for m in table[row]}
        for message, probability in zip(np.asarray(messages), p):
            assert probability == pytest.approx(1.0 / len(on_table) if tuple(message) in on_table else 0.0, abs=1e-6)


def test_oracle_noise_gives_every_message_probability_and_still_sums_to_one():
    objects = all_objects(2, 3)
    oracle = TableSender(*language("shared_alphabet", objects, 3, 4, 3, 0), objects, 3, 4, noise=0.1)
    messages = jnp.asarray(every_message(4, 3))
    p = np.exp(np.asarray(oracle.log_prob(jnp.repeat(jnp.asarray(objects[:1]), len(messages), 0), messages)))
    assert p.sum() == pytest.approx(1.0, abs=1e-5) and p.min() > 0


def test_languages_have_the_structure_they_claim():
    from lab.core.metrics import posdis, topsim

    objects = all_objects(2, 4)
    compositional = language("compositional", objects, 4, 9, 2, 0)[0][:, 0]
    permuted = language("permuted", objects, 4, 9, 2, 0)[0][:, 0]
    assert topsim(objects, compositional) == pytest.approx(1.0) and posdis(objects, compositional, 9) == pytest.approx(1.0)
    assert len(np.unique(permuted, axis=0)) == len(objects)  # unambiguous
    assert topsim(objects, permuted) < 0.5


def test_a_bad_table_is_refused_naming_the_field():
    with pytest.raises(ConfigError, match=r"transmission\.oracle: a table of shape \(9, 2\)"):
        check_table(np.ones((9, 2), int), 9, 4, 3)
    with pytest.raises(ConfigError, match="transmission.oracle: object 1's message holds symbol 4"):
        check_table(np.array([[1, 0, 0], [4, 1, 0]]), 2, 4, 3)
    with pytest.raises(ConfigError, match=r"transmission\.oracle: object 1's message \[2, 0, 3\] has symbols after its first EOS"):
        check_table(np.array([[1, 0, 0], [2, 0, 3]]), 2, 4, 3)
    table, weights = check_table(np.array([[[1, 0, 0], [2, 0, 0]]]), 1, 4, 3)
    assert table.shape == (1, 2, 3) and weights.tolist() == [[0.5, 0.5]]


# -- distances and distillation ----------------------------------------------------------------------------------

def test_token_kl_on_the_speakers_messages_is_the_sequence_kl():
    """By the chain rule: sum_m P(m) sum_t KL(P_t || Q_t) = sum_m P(m) log P(m) / Q(m), EOS and padding included."""
    cfg = load(overrides=TINY + ["agents.vocab_size=4", "transmission.oracle=shared_alphabet"])
    h = Hacking(cfg)
    student = h.agents.sender(h.agents.init_sender(jax.random.key(3)))
    oracle = h.oracle  # compositional, with noise: every message has some probability
    messages = jnp.asarray(every_message(4, 3))
    x = jnp.repeat(h.objects[4:5], len(messages), 0)
    log_p, log_q = oracle.log_prob(x, messages), student.log_prob(x, messages)
    exact = float(jnp.sum(jnp.exp(log_p) * (log_p - log_q)))
    token = token_kl(oracle.symbol_log_probs(x, messages), student.symbol_log_probs(x, messages), messages)
    assert float(jnp.sum(jnp.exp(log_p) * token)) == pytest.approx(exact, rel=1e-4)
    assert float(kl(speak(oracle, h.objects[4:5], 1, jax.random.key(0)), oracle)) == pytest.approx(0.0, abs=1e-6)


def test_distilling_from_the_oracle_online_drives_the_proxy_to_zero_and_speaks_the_table():
    cfg = load(overrides=TINY + ["transmission.teacher=oracle", "transmission.oracle_noise=0", "transmission.data=online_teacher",
                                 "transmission.n_objects=0", "transmission.steps=300", "transmission.evals=4",
                                 "transmission.lr=0.01", "train.seeds=2"])
    h = Hacking(cfg)
    keys = jax.vmap(jax.random.key)(jnp.arange(2))
    params, history = jax.jit(jax.vmap(h.student, (0, None, None)))(keys, None, 0.01)
    assert np.all(history["proxy_train"][:, 0] > 2.0)  # a fresh student is far from the table...
    assert np.all(history["proxy_train"][:, -1] < 0.05)  # ... and ends on it, on the objects it learned
    for seed in range(2):
        student = h.agents.sender(jax.tree.map(lambda leaf: leaf[seed], params))
        table = h.oracle.greedy(h.train_objects).symbols
        assert np.array_equal(student.greedy(h.train_objects).symbols, table)


def test_a_student_may_start_fine_tuned_on_the_first_of_the_teachers_oracle_data():
    overrides = TINY + ["transmission.teacher_steps=150", "transmission.oracle_noise=0"]
    fresh, tuned = (Hacking(load(overrides=overrides + [f"transmission.student_objects={n}"])) for n in (0, 2))
    key, lr = jax.random.key(0), jnp.float32(0.01)
    objects = tuned.bottleneck(jax.random.split(jax.random.fold_in(key, 0), 4)[0], 4)[:2]  # the teacher's first two
    oracle = speak(tuned.oracle, objects, 1, key)
    distances = [float(kl(oracle, h.agents.sender(jax.jit(h.start)(key, lr)))) for h in (fresh, tuned)]
    assert distances[0] > 2.0 and distances[1] < 0.1  # fine-tuned on them, the student speaks the oracle's messages
    with pytest.raises(ConfigError, match=r"transmission\.student_objects=5: .* allowed 0\.\.4"):
        load(overrides=overrides + ["transmission.student_objects=5"])


def test_an_offline_corpus_holds_exactly_the_bottleneck_and_is_reused_unchanged():
    cfg = load(overrides=TINY + ["transmission.n_objects=4", "transmission.samples_per_object=3"])
    h = Hacking(cfg)
    key = jax.random.key(0)
    teacher = h.agents.sender(h.agents.init_sender(key))
    pool = h.bottleneck(key, 4)
    corpus = h.data(key, teacher, pool)
    assert corpus.objects.shape == (12, 2)
    assert np.array_equal(np.asarray(corpus.objects), np.repeat(np.asarray(pool), 3, axis=0))  # each object 3 times
    assert len(np.unique(np.asarray(pool), axis=0)) == 4
    assert set(map(tuple, np.asarray(pool))) <= set(map(tuple, np.asarray(h.train_objects)))
    rows = {tuple(np.concatenate([o, m, lp.ravel()])) for o, m, lp in zip(*map(np.asarray, corpus))}
    seen = set()
    for step in range(20):  # every batch is rows of the same corpus, and over the steps they are all reused
        batch = h.distiller.batch(teacher, teacher, corpus, jax.random.key(step))
        drawn = {tuple(np.concatenate([o, m, lp.ravel()])) for o, m, lp in zip(*map(np.asarray, batch))}
        assert drawn <= rows
        seen |= drawn
    assert seen == rows
    online = Distiller(h.agents, "online_teacher", "forward_kl", 1, 64, 2)
    fresh = [np.asarray(online.batch(teacher, teacher, pool, jax.random.key(k)).messages) for k in range(2)]
    assert not np.array_equal(*fresh)  # online data is drawn anew


def test_online_data_is_the_teachers_or_the_students_own_messages():
    h = Hacking(load(overrides=TINY + ["transmission.oracle_noise=0", "transmission.teacher=oracle"]))
    student = h.agents.sender(h.agents.init_sender(jax.random.key(1)))
    table = {tuple(m) for m in np.asarray(h.oracle.greedy(h.train_objects).symbols)}
    for data, on_table in (("online_teacher", True), ("online_student", False)):
        batch = Distiller(h.agents, data, "forward_kl", 1, 64, 2).batch(h.oracle, student, h.train_objects, jax.random.key(0))
        assert all(tuple(m) in table for m in np.asarray(batch.messages)) == on_table
        expected = h.oracle.symbol_log_probs(batch.objects, batch.messages)  # scored by the teacher either way
        np.testing.assert_allclose(batch.log_p, expected, atol=1e-6)


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="transmission.data='bogus': allowed values are offline, online_teacher, online_student"):
        load(overrides=["transmission.data=bogus"])
    with pytest.raises(ConfigError, match=r"transmission\.n_objects=99: a bottleneck larger than the 7 train objects"):
        Hacking(load(overrides=TINY + ["transmission.n_objects=99"]))
    with pytest.raises(ConfigError, match="transmission.oracle='synonyms' needs agents.vocab_size >= 13"):
        Hacking(load(overrides=TINY + ["transmission.oracle=synonyms", "agents.vocab_size=12"]))
    with pytest.raises(ConfigError, match="transmission.loss='cross_entropy' needs the teacher's messages"):
        load(overrides=["transmission.loss=cross_entropy", "transmission.data=online_student"])


# -- detection ----------------------------------------------------------------------------------------------------

def test_the_departure_detector_finds_a_known_break_and_none_on_a_power_law():
    steps = np.unique(np.round(np.geomspace(1, 3000, 40)))
    law = 5.0 * steps ** -0.7
    assert detect.departure(steps, law, 30, 300, 0.1) is None
    noisy = law * np.exp(np.random.default_rng(0).normal(0, 0.02, len(steps)))
    assert detect.departure(steps, noisy, 30, 300, 0.1) is None
    for brk in (500, 1200):
        rising = np.where(steps < brk, law, 5.0 * brk ** -0.7 * (steps / brk) ** 0.3)  # turns up at the break
        found = detect.departure(steps, rising, 30, 300, 0.1)
        assert found is not None and brk <= found <= brk * 1.4
    assert detect.departure(steps, law * np.where(steps > 500, 1.05, 1.0), 30, 300, 0.1) is None  # within tolerance
    flat = np.maximum(law, 5.0 * 800 ** -0.7)  # onto a floor from step 800: departs too, later
    assert 800 <= detect.departure(steps, flat, 30, 300, 0.1) <= 1500


def test_the_turn_is_a_golden_minimum_followed_by_a_rise_while_the_proxy_falls():
    steps = np.arange(1, 11)
    proxy = 10.0 / steps
    u = detect.turn(steps, proxy, np.array([5, 4, 3, 2, 1.5, 1.6, 1.8, 2.0, 2.1, 2.2]), 0.1)
    assert u.turned and u.step == 5 and u.rise == pytest.approx(0.7) and u.proxy_change < 0
    assert not detect.turn(steps, proxy, 10.0 / steps, 0.1).turned


# -- chains ------------------------------------------------------------------------------------------------------

def test_a_generation_hands_the_next_its_students_parameters():
    cfg = load(overrides=TINY + ["transmission.loss=cross_entropy", "transmission.steps=20", "transmission.n_objects=4",
                                 "transmission.teach_steps=5", "iterated.generations=2"])
    chains = Chains(cfg)
    hp = hparams_from_config(cfg)
    key = jax.random.key(0)
    params, history = jax.jit(chains.run)(key, hp)
    keys = jax.random.split(key, 3)
    generation = jax.jit(lambda k, p: chains.generation(k, chains.agents.sender(p), hp)[0])
    second = generation(keys[2], generation(keys[1], chains.agents.init_sender(keys[0])))
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(second)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert history["topsim"].shape == (3,)
    measured = jax.jit(lambda k, p: chains.measure(k, chains.agents.sender(p), hp["transmission"]["lr"]))(keys[2], second)
    assert history["topsim"][2] == pytest.approx(float(measured["topsim"]), abs=1e-5)


def test_a_trained_teacher_without_an_oracle_is_judged_by_the_task():
    """golden is then 1 - the hold-out accuracy of a fresh listener taught the student's language."""
    cfg = load(overrides=TINY + ["transmission.teacher=trained", "transmission.data=online_teacher", "transmission.steps=4",
                                 "transmission.evals=2", "transmission.teach_steps=3"])
    h = Hacking(cfg)
    assert h.oracle is None
    key = jax.random.key(0)
    teacher = h.agents.init_sender(jax.random.key(1))
    _, history = jax.jit(h.student)(key, teacher, 0.01)
    assert np.all((history["golden"] >= 0) & (history["golden"] <= 1)) and np.all(np.isfinite(history["proxy"]))
    assert history["proxy"][0] > 0
    with pytest.raises(ValueError, match="teacher='trained'"):
        h.teacher(key, 0.01)
