"""lab.controls and lab.interventions: the listener reset and its early-stopped refit, a population of
receivers (today's population control), the ideal listener's reward; each composes with a population.

Tiny worlds (K=3, V=3: 22 train objects, or 19 and 3 for validation), GRU-16, 2 seeds under vmap; each compiled
function once.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import lab
from lab import analysis, checkpoint
from lab.core.agents.forcing import message_log_probs
from lab.core.ideal import decompose
from lab.core.optim import adam_init
from lab.core.refit import fit_receiver
from lab.core.rollout import rollout

TINY = ["game.n_attributes=3", "game.n_values=3", "agents.hidden_size=16", "agents.embedding_size=8",
        "agents.vocab_size=6", "agents.max_len=3", "train.batch_size=32", "train.seeds=2", "train.lr=0.01",
        "train.steps=20", "train.eval_every=10"]


def setup(*overrides):
    cfg = lab.load(overrides=TINY + list(overrides))
    trainer = lab.make_trainer(cfg)
    keys = lab.seed_keys(cfg)
    hparams = lab.hparams_from_config(cfg, len(keys))
    return trainer, keys, hparams, jax.jit(jax.vmap(trainer.init))(keys, hparams)


def test_the_config_chooses_the_components():
    reset = lab.make_trainer(lab.load(overrides=TINY + ["interventions.reset=true", "interventions.refit_steps=5"]))
    assert list(reset.components.interventions) == ["reset"]
    assert lab.make_trainer(lab.load(overrides=TINY)).components.interventions == {}
    both = lab.make_trainer(lab.load(overrides=TINY + ["interventions.reset=true", "interventions.refit_steps=5",
                                                       "interventions.ema=true"]))
    assert list(both.components.interventions) == ["reset", "ema"]


# -- reset ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reset():
    # refits stop after exactly 2 * patience + 1 = 7 steps (any loss counts as stalled with this tolerance)
    return setup("interventions.reset=true", "game.validation_fraction=0.1", "interventions.reset_every=10",
                 "interventions.refit_patience=3", "interventions.refit_tolerance=1e9", "interventions.refit_max_steps=50")


def test_listener_is_reset_and_refitted_every_reset_every_steps(reset):
    trainer, keys, hparams, state = reset
    block = jax.jit(jax.vmap(trainer.train_block, in_axes=(0, 0, None, 0)))
    first, _ = block(state, keys, 0, hparams)  # steps 0..9: no reset at step 0
    np.testing.assert_array_equal(first.receiver_opt.count[:, 0], [10, 10])
    second, summary = block(first, keys, 1, hparams)  # step 10: reset, 7 refit steps, then steps 10..19 jointly
    np.testing.assert_array_equal(second.receiver_opt.count[:, 0], [17, 17])
    np.testing.assert_array_equal(second.sender_opt.count[:, 0], [20, 20])
    np.testing.assert_allclose(summary["refit_steps"], 7.0)


def test_refit_stops_when_the_loss_stalls_and_at_the_cap(reset):
    trainer, _, hparams, state = reset
    spec = trainer.spec
    hp = jax.tree.map(lambda v: v[0], hparams)
    sender = jax.tree.map(lambda v: v[0, 0], state.senders)
    episodes = spec.split_episodes("train")

    @jax.jit
    def fit(tolerance, key):
        receiver = spec.agents.init_receiver(key)
        opt = adam_init(receiver, hp["train"]["lr"], hp["train"])
        message = spec.agents.sender(sender).sample(episodes.target, key)
        start = rollout(spec.agents.receiver(receiver), episodes, message, spec.game)
        result = fit_receiver(spec.agents, spec.game, sender, receiver, opt, spec.train_env, key, 32, 40, 5, tolerance)  # own loss
        end = rollout(spec.agents.receiver(result.receiver), episodes, message, spec.game)  # the same messages
        log_pi = message_log_probs(spec.agents.sender(sender), episodes.target, message.symbols)
        return result.steps, decompose(log_pi, start.log_rho), decompose(log_pi, end.log_rho)

    steps, _, _ = fit(jnp.float32(1e9), jax.random.key(0))  # everything counts as stalled
    assert int(steps) == 11
    steps, start, end = fit(jnp.float32(-1e9), jax.random.key(0))  # nothing does: runs to the cap
    assert int(steps) == 40
    # the refit moved the listener towards the speaker's ideal listener, and no loss beats H(X|M)
    assert float(end.l_adapt) < float(start.l_adapt) - 0.01
    assert float(end.loss) >= float(end.l_info) - 0.05


def rule(losses: np.ndarray, patience: int, tolerance: float, cap: int) -> int:
    """The authors' early stopping, written out as a loop over a list of watched losses: the steps it takes."""
    for i in range(1, cap + 1):
        if i > 2 * patience and losses[i - 1] > np.mean(losses[i - 1 - patience:i - 1]) - tolerance:
            return i
    return cap


def test_refit_stops_on_the_validation_split_where_an_independent_loop_over_the_same_losses_stops(reset):
    trainer, _, hparams, state = reset
    spec = trainer.spec
    hp = jax.tree.map(lambda v: v[0], hparams)
    watch = spec.split_episodes("validation")
    assert len(watch.target) == 3  # the world's validation split, disjoint from train

    @jax.jit
    def fit(sender, key, tolerance):
        receiver = spec.agents.init_receiver(key)
        opt = adam_init(receiver, hp["train"]["lr"], hp["train"])
        args = (spec.agents, spec.game, sender, receiver, opt, spec.train_env, key, 32, 300, 4, tolerance, watch)
        return fit_receiver(*args), fit_receiver(*args, fixed=True)  # stopped, and the same fit run to the cap

    for seed in range(2):
        sender = jax.tree.map(lambda v: v[seed, 0], state.senders)
        for tolerance in (1e-4, 1e-2):
            stopped, whole = fit(sender, jax.random.key(seed), jnp.float32(tolerance))
            losses = np.asarray(whole.losses)
            assert int(whole.steps) == 300 and np.all(np.isfinite(losses))
            n = int(stopped.steps)
            assert n == rule(losses, 4, tolerance, 300) and 8 < n < 300
            np.testing.assert_allclose(np.asarray(stopped.losses)[:n], losses[:n], rtol=1e-6)  # the same trajectory
            assert np.all(np.isnan(np.asarray(stopped.losses)[n:]))


# -- a population of receivers (the population control) -----------------------------------------------


@pytest.fixture(scope="module")
def population():
    trainer, keys, hparams, _ = setup("population.n_receivers=3")
    state, history = jax.jit(jax.vmap(trainer.train))(keys, hparams)
    return trainer, keys, state, jax.device_get(history)


def test_population_holds_stacked_listeners_and_trains_one_per_step(population):
    _, _, state, _ = population
    counts = np.asarray(state.receiver_opt.count)  # [seeds, receivers]
    assert counts.shape == (2, 3)
    np.testing.assert_array_equal(counts.sum(axis=1), [20, 20])  # each step updated exactly one receiver
    assert np.all(counts > 0)  # 20 uniform draws among 3 all hit every member (for these seeds)
    np.testing.assert_array_equal(np.asarray(state.sender_opt.count), [[20], [20]])
    leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(state.receivers)]
    assert all(leaf.shape[:2] == (2, 3) for leaf in leaves)
    assert any(not np.allclose(leaf[:, 0], leaf[:, 1]) for leaf in leaves)  # distinct listeners


def test_population_metrics_are_per_receiver_and_match_the_standalone_decomposition(population):
    trainer, keys, state, history = population
    for split in ("train", "test"):
        h = history[split]
        np.testing.assert_allclose(h["loss"], h["l_info"][..., None] + h["l_adapt"], atol=1e-4)
        assert h["loss"].shape == (2, 3, 1, 3) and h["l_info"].shape == (2, 3, 1)
    eval_keys = jax.vmap(lambda k: trainer.run_keys(k)[2])(keys)
    per_pair = analysis.decompose_population(trainer.agents, state.senders, state.receivers, trainer.split_objects["train"], eval_keys)
    assert per_pair.loss.shape == (2, 1, 3)
    np.testing.assert_allclose(per_pair.loss, history["train"]["loss"][:, -1], atol=1e-4)
    np.testing.assert_allclose(per_pair.l_info[:, :, 0], history["train"]["l_info"][:, -1], atol=1e-4)


def test_population_checkpoint_keeps_every_listener(population, tmp_path):
    trainer, _, state, _ = population
    path = tmp_path / checkpoint.FILENAME
    checkpoint.save(path, state.senders, state.receivers, [0, 1])
    _, receivers, _ = checkpoint.load(path, trainer.config)
    for saved, loaded in zip(jax.tree.leaves(state.receivers), jax.tree.leaves(receivers)):
        np.testing.assert_array_equal(saved, loaded)  # [seeds, receivers, ...]
    _, listener = checkpoint.load_agents(path, trainer.config, index=1, receiver=2)
    kernel = np.asarray(jax.tree.leaves(nnx.state(listener))[0])
    np.testing.assert_array_equal(kernel, np.asarray(jax.tree.leaves(state.receivers)[0])[1, 2])
    with pytest.raises(ValueError, match="receiver 3 out of range: the run has 3 receivers"):
        checkpoint.load_agents(path, trainer.config, receiver=3)


def test_reset_composes_with_a_population_of_senders_and_receivers():
    """`interventions.reset=true population.n_senders=2 population.n_receivers=3` is a valid run, and every receiver is
    refitted."""
    trainer, keys, hparams, state = setup("interventions.reset=true", "interventions.refit_steps=6", "population.n_senders=2",
                                          "population.n_receivers=3", "interventions.reset_every=10")
    state, summary = jax.jit(jax.vmap(trainer.train_block, in_axes=(0, 0, None, 0)))(state, keys, 1, hparams)  # steps 10..19
    counts = np.asarray(state.receiver_opt.count)  # [seeds, 3]: 6 refit steps, then one per step it played
    played = counts.sum(axis=1) - 3 * 6  # 2 senders a step; a receiver both draw learns once, from both
    assert np.all(counts >= 6) and np.all((played >= 10) & (played <= 20)) and np.all(counts > 6)


# -- ideal listener -------------------------------------------------------------------------------


def brute_force_log_pihat(spec, sender_params, targets, symbols):
    """log pihat(x_b|m_b) under the uniform train prior, every pair teacher-forced one by one."""
    sender = spec.agents.sender(sender_params)
    objects = jnp.asarray(spec.world.train_objects)
    log_pi = jax.vmap(lambda m: jax.vmap(lambda x: sender.log_prob(x[None], m[None])[0])(objects))(symbols)  # [B, n]
    own = jnp.argmax(jnp.all(targets[:, None] == objects[None], -1), axis=1)
    return log_pi[jnp.arange(len(symbols)), own] - jax.scipy.special.logsumexp(log_pi, axis=1)


@pytest.fixture(scope="module")
def ideal():
    trainer, keys, hparams, state = setup("train.reward=ideal", "train.ideal_size=0")
    sender_params = jax.tree.map(lambda v: v[0, 0], state.senders)
    ids = jnp.arange(8)
    targets = jnp.asarray(trainer.world.train_objects)[ids]
    message = trainer.agents.sender(sender_params).sample(targets, jax.random.key(5))
    return trainer, keys, hparams, state, sender_params, ids, targets, message


def ideal_reward(trainer, sender_params, ids, targets, message, key):
    from lab.controls import ideal_reward as make
    from lab.core.estimators import Context
    from lab.core.rollout import Rollout

    reward = make(trainer.spec)
    ro = Rollout(message, jnp.zeros(len(ids)), jnp.zeros(len(ids), bool), jnp.zeros((len(ids), 1), bool))
    return reward(ro, Context(trainer.agents.sender(sender_params), targets, ids, jnp.int32(0), key))


def test_ideal_reward_is_the_bayes_posterior_of_the_speaker(ideal):
    trainer, _, _, _, sender, ids, targets, message = ideal
    exact = jax.jit(lambda s, k: ideal_reward(trainer, s, ids, targets, message, k))(sender, jax.random.key(0))
    reference = jax.jit(brute_force_log_pihat, static_argnums=0)(trainer.spec, sender, targets, message.symbols)
    np.testing.assert_allclose(exact, reference, atol=1e-4)
    assert np.all(np.asarray(exact) <= 1e-6)


def test_sampled_ideal_normaliser_is_unbiased(ideal):
    trainer, _, _, _, sender, ids, targets, message = ideal
    exact = jax.jit(lambda s, k: ideal_reward(trainer, s, ids, targets, message, k))(sender, jax.random.key(0))
    sampled = lab.make_trainer(lab.config.replace(trainer.config, **{"train.ideal_size": 6}))
    draws = jax.jit(jax.vmap(lambda k: ideal_reward(sampled, sender, ids, targets, message, k)))(
        jax.random.split(jax.random.key(1), 3000))  # [draws, B]
    assert np.all(np.asarray(draws) <= 1e-6)
    # E[1 / pihat_sampled] = 1 / pihat: the normaliser pi(m) is estimated without bias
    inverse = np.exp(-np.asarray(draws, np.float64))
    error = inverse.std(0) / np.sqrt(len(inverse))
    assert np.all(np.abs(inverse.mean(0) - np.exp(-np.asarray(exact, np.float64))) < 4 * error + 1e-3)


def test_ideal_control_trains_under_vmap_with_the_ideal_reward_as_baseline(ideal):
    trainer, keys, hparams, state, *_ = ideal
    state, summary = jax.jit(jax.vmap(trainer.train_block, in_axes=(0, 0, None, 0)))(state, keys, 0, hparams)
    assert np.all(np.asarray(state.step) == 10)
    assert np.all(np.asarray(summary["baseline"]) < -1e-3)  # tracks log pihat <= 0
    assert np.all(np.asarray(summary["reward"]) <= 0)
    assert np.all(np.isfinite(np.asarray(jax.tree.leaves(state.senders)[0])))
