"""lab.analysis: the estimator against exact enumeration, its identities and known values, bad input,
chunked teacher forcing, trained agents (the logged terms, the standalone decomposition) and probes.

Tabular agents are random matrices; the trained fixture is one tiny population compiled once
(K=3, V=3, GRU-16: 27 objects, 22 in train, 5 in test).
"""

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import games
import lab
from games.lewis import object_features
from lab import analysis, metrics
from lab.analysis import decomposition
from lab.core.agents import RNNSender
from lab.core.rollout import rollout

# -- tabular agents -----------------------------------------------------------------------------


def random_agents(seed, n_objects, n_messages, concentration=0.5):
    """pi `[n_objects, n_messages]`, rho `[n_messages, n_objects]`: rows drawn from a Dirichlet."""
    rng = np.random.default_rng(seed)
    pi = rng.dirichlet(np.full(n_messages, concentration), size=n_objects)
    rho = rng.dirichlet(np.full(n_objects, concentration), size=n_messages)
    return pi, rho


@partial(jax.jit, static_argnames="repeats")
def estimates(pi, rho, key, repeats):
    """`decompose` on `repeats` independent draws of one message per object; leaves `[repeats]`."""
    log_pi_table, log_rho_table = jnp.log(jnp.asarray(pi, jnp.float32)), jnp.log(jnp.asarray(rho, jnp.float32))
    n = pi.shape[0]
    messages = jax.random.categorical(key, log_pi_table, shape=(repeats, n))  # [R, n] m_i ~ pi(.|x_i)
    log_pi = log_pi_table.T[messages]  # [R, n, n]: log pi(m_i | x_j)
    log_rho = log_rho_table[messages, jnp.arange(n)]  # [R, n]: log rho(x_i | m_i)
    return jax.vmap(analysis.decompose)(log_pi, log_rho)


def bayes_listener(pi, prior=None):
    """The ideal listener pihat(x|m) `[n_messages, n_objects]`, by Bayes' rule in plain numpy."""
    prior = np.full(pi.shape[0], 1 / pi.shape[0]) if prior is None else prior
    joint = prior[:, None] * pi
    marginal = joint.sum(0)
    return np.where(marginal[:, None] > 0, joint.T / np.maximum(marginal[:, None], 1e-300), 1 / pi.shape[0])


@pytest.mark.parametrize("seed, n_objects, n_messages", [(0, 4, 3), (1, 6, 5), (2, 5, 12)])
def test_estimator_matches_exact_within_monte_carlo_error(seed, n_objects, n_messages):
    pi, rho = random_agents(seed, n_objects, n_messages)
    exact = analysis.exact_decomposition(pi, rho)
    sampled = estimates(pi, rho, jax.random.key(seed), repeats=4000)
    for name in ("loss", "l_info", "l_adapt"):
        values = np.asarray(getattr(sampled, name), np.float64)
        error = values.std() / math.sqrt(len(values))
        assert abs(values.mean() - float(getattr(exact, name))) < 4 * error + 1e-4, name


def test_loss_is_information_plus_coadaptation():
    pi, rho = random_agents(3, 6, 4)
    sampled = estimates(pi, rho, jax.random.key(3), repeats=500)
    np.testing.assert_allclose(sampled.loss, sampled.l_info + sampled.l_adapt, atol=1e-5)
    exact = analysis.exact_decomposition(pi, rho, prior=np.random.default_rng(3).dirichlet(np.ones(6)))
    assert abs(float(exact.loss) - float(exact.l_info + exact.l_adapt)) < 1e-5


def test_one_to_one_code_loses_no_information():
    # each object owns two messages of its own, used at random: no message is shared
    n = 5
    pi = np.zeros((n, 2 * n))
    pi[np.arange(n), 2 * np.arange(n)] = 0.3
    pi[np.arange(n), 2 * np.arange(n) + 1] = 0.7
    rho = np.full((2 * n, n), 1 / n)
    exact = analysis.exact_decomposition(pi, rho)
    assert abs(float(exact.l_info)) < 1e-6
    assert float(exact.l_adapt) == pytest.approx(math.log(n), abs=1e-5)  # a listener at chance
    sampled = estimates(pi, rho, jax.random.key(0), repeats=50)
    np.testing.assert_allclose(sampled.l_info, 0.0, atol=1e-6)
    # a finite "almost -inf" off-diagonal, as teacher forcing of long messages gives
    log_pi = jnp.where(jnp.eye(n, dtype=bool), -3.0, -400.0)
    assert abs(float(analysis.decompose(log_pi, jnp.full(n, -1.0)).l_info)) < 1e-6


def test_a_sender_that_always_says_the_same_thing_loses_log_n():
    n = 7
    pi = np.zeros((n, 3))
    pi[:, 1] = 1.0
    _, rho = random_agents(0, n, 3)
    assert float(analysis.exact_decomposition(pi, rho).l_info) == pytest.approx(math.log(n), abs=1e-5)
    log_pi = jnp.full((n, n), -2.5)  # the same message, equally likely under every object
    assert float(analysis.decompose(log_pi, jnp.full(n, -1.0)).l_info) == pytest.approx(math.log(n), abs=1e-5)


def test_the_ideal_listener_has_no_coadaptation_loss():
    pi, _ = random_agents(4, 6, 4)
    prior = np.random.default_rng(4).dirichlet(np.ones(6))
    for p in (None, prior):
        exact = analysis.exact_decomposition(pi, bayes_listener(pi, p), prior=p)
        assert abs(float(exact.l_adapt)) < 1e-5
        assert float(exact.loss) == pytest.approx(float(exact.l_info), abs=1e-5)
    log_pi = jnp.log(jnp.asarray(pi, jnp.float32)).T[jnp.array([0, 1, 2, 3, 0, 1])]  # [n, n] for some messages
    ideal = analysis.decompose(log_pi, analysis.log_pihat(log_pi))
    assert abs(float(ideal.l_adapt)) < 1e-6


def test_ideal_listener_is_bayes_rule():
    pi, _ = random_agents(5, 5, 4)
    pi[:, 3] = 0.0  # a message nobody sends
    pi /= pi.sum(1, keepdims=True)
    prior = np.random.default_rng(5).dirichlet(np.ones(5))
    np.testing.assert_allclose(analysis.ideal_listener(pi, prior)[:3], bayes_listener(pi, prior)[:3], atol=1e-12)
    np.testing.assert_allclose(analysis.ideal_listener(pi, prior)[3], prior)  # unused message: the prior
    np.testing.assert_allclose(analysis.ideal_listener(pi).sum(1), 1.0)


def test_log_space_is_stable_and_row_shift_invariant():
    # log-probabilities of long messages: exponentiating first would underflow to 0/0
    log_pi = jax.random.normal(jax.random.key(0), (6, 6)) - 3000.0
    shifted = log_pi + jnp.arange(6.0)[:, None] * 50.0  # log pihat(x_i|m_i) ignores per-message constants
    np.testing.assert_allclose(analysis.log_pihat(log_pi), analysis.log_pihat(shifted), atol=1e-4)
    assert np.all(np.isfinite(analysis.log_pihat(log_pi))) and np.all(np.asarray(analysis.log_pihat(log_pi)) <= 0)


@settings(max_examples=30, deadline=None)
@given(n_objects=st.integers(1, 6), n_messages=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_exact_terms_are_bounded(n_objects, n_messages, seed):
    """0 <= L_info = H(X|M) <= H(X) <= log n, L_adapt = E KL >= 0, loss >= L_info."""
    pi, rho = random_agents(seed, n_objects, n_messages, concentration=0.3)
    prior = np.random.default_rng(seed + 1).dirichlet(np.ones(n_objects))
    exact = analysis.exact_decomposition(pi, rho, prior=prior)
    entropy = -np.sum(prior * np.log(np.maximum(prior, 1e-300)))
    assert -1e-5 <= float(exact.l_info) <= entropy + 1e-4
    assert float(exact.l_adapt) >= -1e-5
    assert float(exact.loss) >= float(exact.l_info) - 1e-5


@settings(max_examples=20, deadline=None)
@given(log_pi=arrays(np.float32, (4, 4), elements=st.floats(-50, 0, width=32)),
       log_rho=arrays(np.float32, (4,), elements=st.floats(-50, 0, width=32)))
def test_estimator_identity_and_sign_on_any_log_probabilities(log_pi, log_rho):
    d = analysis.decompose(log_pi, log_rho)
    assert abs(float(d.loss) - float(d.l_info + d.l_adapt)) < 1e-4
    assert float(d.l_info) >= 0.0  # every -log pihat(x_i|m_i) is >= 0


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("log_pi, log_rho, match", [
    (np.zeros((3, 4)), np.zeros(3), "log_pi must be a square"),
    (np.zeros((3, 3)), np.zeros(4), "log_rho must have shape"),
    (np.zeros((0, 0)), np.zeros(0), "n = 0"),
    (np.full((2, 2), 0.5), np.zeros(2), "log_pi holds log-probabilities"),
    (np.zeros((2, 2)), np.array([0.0, 2.0]), "log_rho holds log-probabilities"),
    (np.array([[-np.inf, 0.0], [0.0, 0.0]]), np.zeros(2), "finite diagonal"),
])
def test_decompose_rejects_bad_input(log_pi, log_rho, match):
    with pytest.raises(ValueError, match=match):
        analysis.decompose(log_pi, log_rho)


@pytest.mark.parametrize("pi, rho, prior, match", [
    (np.array([[0.5, 0.4], [0.5, 0.5]]), np.full((2, 2), 0.5), None, "rows of pi must be distributions"),
    (np.array([[1.5, -0.5], [0.5, 0.5]]), np.full((2, 2), 0.5), None, r"pi must hold probabilities >= 0; pi\[0, 1\]"),
    (np.eye(2), np.array([[0.5, 0.6], [0.5, 0.5]]), None, "rows of rho must be distributions"),
    (np.eye(2), np.full((3, 2), 0.5), None, "rho must have shape"),
    (np.eye(2), np.full((2, 2), 0.5), np.array([1.5, -0.5]), r"prior must have non-negative mass; prior\[1\]"),
    (np.eye(2), np.full((2, 2), 0.5), np.array([0.2, 0.2]), "prior must sum to 1"),
    (np.eye(2), np.full((2, 2), 0.5), np.array([1.0]), "prior must have shape"),
    (np.zeros((0, 2)), np.zeros((2, 0)), None, "n = 0"),
    (np.ones(3), np.ones(3), None, "pi must be a matrix"),
])
def test_exact_decomposition_rejects_bad_input(pi, rho, prior, match):
    with pytest.raises(ValueError, match=match):
        analysis.exact_decomposition(pi, rho, prior)


# -- teacher forcing ------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_the_fast_hook_equals_generic_teacher_forcing(cell):
    """The recurrent sender's prefix-tree hook against `every_pair`, generic teacher forcing through `log_prob` (an
    independent computation: one decoding per pair, no shared prefixes), in blocks and with a mask."""
    from flax import nnx

    sender = RNNSender(partial(object_features, n_values=3), 6, 4, 3, cell, 8, 4, rngs=nnx.Rngs(0))
    objects = jnp.array([[a, b] for a in range(3) for b in range(3)][:7])  # [7, 2]
    messages = sender.sample(objects[:5], jax.random.key(1)).symbols  # [5, 3]
    assert hasattr(sender, "message_log_probs")

    @jax.jit
    def both(objects, messages):
        fast = analysis.message_log_probs(sender, objects, messages, max_pairs=10)  # the hook: 4 blocks of 2 objects, 1 padded
        generic = analysis.every_pair(sender, objects, messages, max_pairs=10)  # 2 blocks of 5 pairs... of 2 objects
        return fast, generic, sender.log_prob(objects[3:4], messages[2:3])[0]  # and one pair computed alone

    fast, generic, one = both(objects, messages)
    np.testing.assert_allclose(fast, generic, atol=1e-5)
    assert float(fast[2, 3]) == pytest.approx(float(one), abs=1e-5)
    assert len(np.unique(np.asarray(messages), axis=0)) > 2 and np.ptp(np.asarray(fast)) > 0.5  # not a constant matrix

    # a mask: blocks of objects all outside it are skipped (zero columns); the others are the same pairs
    mask = jnp.array([True, False, False, False, False, True, False])  # blocks {0, 1} {2, 3} {4, 5} {6, pad}
    masked = jax.jit(lambda o, m: analysis.message_log_probs(sender, o, messages, max_pairs=10, objects_mask=m))(objects, mask)
    np.testing.assert_allclose(masked[:, [0, 1, 4, 5, 6]], generic[:, [0, 1, 4, 5, 6]], atol=1e-5)  # the pad repeats object 0
    assert np.all(np.asarray(masked[:, [2, 3]]) == 0.0)
    generic_masked = analysis.every_pair(sender, objects, messages, max_pairs=10, objects_mask=mask)  # blocks {0, 1} ... {6}
    np.testing.assert_allclose(generic_masked[:, [0, 1, 4, 5]], generic[:, [0, 1, 4, 5]], atol=1e-5)
    assert np.all(np.asarray(generic_masked[:, [2, 3]]) == 0.0)


def test_a_prefix_scores_the_first_positions_of_the_whole():
    """`symbol_log_probs` / `log_prob` of messages cut after t positions are the first t positions of the whole
    (the staged normaliser scores prefixes)."""
    from flax import nnx

    sender = RNNSender(partial(object_features, n_values=3), 6, 4, 5, "gru", 8, 4, rngs=nnx.Rngs(0))
    objects = jnp.array([[a, b] for a in range(3) for b in range(3)])  # [9, 2]
    messages = sender.sample(objects, jax.random.key(1)).symbols  # [9, 5], some end early
    whole = sender.symbol_log_probs(objects, messages)  # [9, 5, vocab]
    np.testing.assert_allclose(sender.symbol_log_probs(objects, messages[:, :2]), whole[:, :2], atol=1e-6)
    picked = np.take_along_axis(np.asarray(whole), np.asarray(messages)[..., None], axis=-1)[..., 0]
    live = np.asarray(games.messages.alive(messages))
    np.testing.assert_allclose(sender.log_prob(objects, messages[:, :2]), np.sum(picked[:, :2] * live[:, :2], 1), atol=1e-5)
    np.testing.assert_allclose(sender.log_prob(objects, messages), np.sum(picked * live, 1), atol=1e-5)


def test_the_sampled_normaliser_is_unbiased():
    from flax import nnx

    sender = RNNSender(partial(object_features, n_values=4), 12, 4, 6, "gru", 16, 8, rngs=nnx.Rngs(3))  # vocabulary 4, 6 positions
    objects = jnp.array([[a, b, c] for a in range(4) for b in range(4) for c in range(4)])[:60]
    messages = sender.sample(objects, jax.random.key(1)).symbols
    log_pi = analysis.message_log_probs(sender, objects, messages)  # [60, 60]
    exact = jax.nn.logsumexp(log_pi, axis=1)
    draws = jax.jit(jax.vmap(lambda key: decomposition.sampled_log_normaliser(
        sender, objects, messages, jnp.diagonal(log_pi), key, columns=4)))(jax.random.split(jax.random.key(2), 400))
    assert decomposition.proposal_depth(4, 6, 60, 4) + 2 < 6  # all three stages run
    ratio = np.exp(np.asarray(draws - exact))  # [draws, n]: S-hat / S, mean 1 if unbiased
    standard_error = ratio.std(axis=0) / math.sqrt(len(ratio))
    assert np.all(np.abs(ratio.mean(axis=0) - 1) < 4 * standard_error + 1e-4)
    assert np.mean(standard_error) > 1e-4  # it did sample


# -- trained agents -------------------------------------------------------------------------------

TINY = ["game.n_attributes=3", "game.n_values=3", "agents.hidden_size=16", "agents.embedding_size=8",
        "agents.vocab_size=6", "agents.max_len=3", "train.batch_size=64", "train.steps=300", "train.eval_every=100",
        "train.seeds=2", "train.lr=0.01", "interventions.refit_max_steps=150", "interventions.refit_patience=10"]


@pytest.fixture(scope="module")
def trained():
    cfg = lab.load(overrides=TINY)
    trainer = lab.make_trainer(cfg)
    keys = lab.seed_keys(cfg)
    state, history = jax.jit(jax.vmap(trainer.train))(keys, lab.hparams_from_config(cfg, len(keys)))
    eval_keys = jax.vmap(lambda k: trainer.run_keys(k)[2])(keys)  # the key the evaluation samples its messages with
    return trainer, state, jax.device_get(history), eval_keys


def test_training_logs_the_decomposition_per_split(trained):
    trainer, _, history, _ = trained
    for split in ("train", "test"):
        terms = {name: np.asarray(history[split][name]) for name in ("loss", "l_info", "l_adapt")}
        assert terms["l_info"].shape == (2, trainer.n_evals + 1)
        np.testing.assert_allclose(terms["loss"], terms["l_info"] + terms["l_adapt"], atol=1e-4)
        assert np.all(terms["l_info"] >= 0)
    train = history["train"]
    assert train["loss"][:, -1].mean() < train["loss"][:, 0].mean() - 1.0  # it learned
    assert train["l_info"][:, -1].mean() < train["l_info"][:, 0].mean()  # the language became less ambiguous


def test_decomposition_of_trained_agents_matches_the_game_loss_on_the_same_messages(trained):
    trainer, state, history, eval_keys = trained
    for split in ("train", "test"):
        d = analysis.decompose_population(trainer.agents, state.senders, state.receivers, trainer.split_objects[split], eval_keys)
        np.testing.assert_allclose(d.loss, history[split]["loss"][:, -1], atol=1e-4)
        np.testing.assert_allclose(d.l_info, history[split]["l_info"][:, -1], atol=1e-4)
        np.testing.assert_allclose(d.l_adapt, history[split]["l_adapt"][:, -1], atol=1e-4)


def test_sampled_columns_estimate_the_exact_decomposition(trained):
    trainer, state, _, _ = trained
    objects = trainer.split_objects["train"]  # 22 objects: 4 sampled columns per message instead of 21
    errors = []
    for seed in range(8):
        keys = jax.random.split(jax.random.key(seed), 2)
        exact = analysis.decompose_population(trainer.agents, state.senders, state.receivers, objects, keys)
        estimate = analysis.decompose_population(trainer.agents, state.senders, state.receivers, objects, keys, columns=4)
        np.testing.assert_allclose(estimate.loss, exact.loss, atol=1e-5)  # the same messages and listener
        np.testing.assert_allclose(estimate.l_info + estimate.l_adapt, estimate.loss, atol=1e-4)
        errors.append(estimate.l_info - exact.l_info)
        assert np.all(np.asarray(exact.l_info) > 0.05)  # something to estimate
    assert np.all(np.abs(np.mean(errors, axis=0)) < 0.01), errors  # measured: 0.002; unweighted columns: 0.015
    assert np.any(np.asarray(errors) != 0)  # it did sample
    all_columns = analysis.decompose_population(trainer.agents, state.senders, state.receivers, objects, keys, columns=21)  # n - 1 columns: exact
    np.testing.assert_allclose(all_columns.l_info, exact.l_info, atol=1e-6)


def test_trainer_skips_the_decomposition_for_discrimination():
    trainer = lab.make_trainer(lab.load(overrides=TINY + ["game.kind=discrimination", "game.n_distractors=2"]))
    state = jax.eval_shape(trainer.init, jax.random.key(0), lab.hparams_from_config(trainer.config))
    metrics = jax.eval_shape(trainer.evaluate, state, jax.random.key(1))
    assert "loss" in metrics["train"] and "l_info" not in metrics["train"] and "l_adapt" not in metrics["train"]


def test_probe_listener_bounds_the_information_loss(trained):
    trainer, state, history, eval_keys = trained
    hparams = lab.hparams_from_config(trainer.config, 2)
    result = analysis.probe_population(trainer.spec, state.senders, "train", eval_keys, hparams)["train"]
    l_info = history["train"]["l_info"][:, -1]
    n_values, n_attributes = trainer.config.game.n_values, trainer.config.game.n_attributes
    # the same messages as the logged l_info: the probe's loss sits above it, far below chance
    assert np.all(np.asarray(result.loss) >= l_info - 0.05), (result.loss, l_info)
    assert np.all(np.asarray(result.loss) < n_attributes * math.log(n_values) - 1.0)
    assert np.all((np.asarray(result.steps) >= 20) & (np.asarray(result.steps) <= 150))
    assert np.all((np.asarray(result.accuracy) >= 0) & (np.asarray(result.accuracy) <= 1))


def test_a_split_larger_than_eval_size_is_measured_on_a_fixed_uniform_subset():
    trainer = lab.make_trainer(lab.load(overrides=TINY + ["train.eval_size=10"]))
    sets = trainer.eval_sets  # [splits, ...]: train first
    index = np.asarray(sets.subset[0])[np.asarray(sets.subset_mask[0])]
    assert len(index) == 10 and len(set(index)) == 10 and np.all(np.diff(index) > 0) and index.max() < 22
    assert index.max() > 10  # a random subset, not the first objects (which share attribute values)
    state = trainer.init(jax.random.key(0), lab.hparams_from_config(trainer.config))
    key = jax.random.key(1)
    logged = jax.jit(trainer.evaluate)(state, key)["train"]

    # the decomposition sums to the loss of the subset's sampled messages, computed here on its own
    objects = jnp.asarray(trainer.split_objects["train"])
    sender, receiver = trainer.sender(state), trainer.receiver(state)
    episodes = trainer.spec.split_episodes("train")
    log_rho = rollout(receiver, episodes, sender.sample_each(objects, key), games.LewisReconstruction).log_rho
    assert float(logged["l_info"] + logged["l_adapt"]) == pytest.approx(-float(jnp.mean(log_rho[index])), abs=1e-5)
    assert 0 <= float(logged["l_info"]) <= math.log(10) + 1.0
    # topsim is measured on the same subset
    symbols = sender.greedy(objects).symbols
    assert float(logged["topsim"]) == pytest.approx(metrics.topsim(trainer.split_objects["train"][index], symbols[index]), abs=1e-5)
