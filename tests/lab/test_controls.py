"""lab.controls: listener reset (and the early-stopped refit), listener populations, the ideal listener.

Tiny worlds (K=3, V=3: 22 train objects), GRU-16, 2 seeds under vmap; each compiled function once.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import games
from lab import analysis, checkpoint, config
from lab.config import ConfigError
from lab.controls import IdealTrainer, PopulationTrainer, ResetTrainer
from lab.train import Trainer, hparams_from_config, seed_keys

TINY = ["game.n_attributes=3", "game.n_values=3", "agents.hidden_size=16", "agents.embedding_size=8",
        "agents.vocab_size=6", "agents.max_len=3", "train.batch_size=32", "train.seeds=2", "train.lr=0.01",
        "train.steps=20", "train.eval_every=10"]


def setup(*overrides):
    cfg = config.load(overrides=TINY + list(overrides))
    trainer = Trainer(cfg)
    keys = seed_keys(cfg)
    hparams = hparams_from_config(cfg, len(keys))
    return trainer, keys, hparams, jax.jit(jax.vmap(trainer.init))(keys, hparams)


def test_config_selects_the_control_trainer():
    # `Trainer(config)` is `Trainer.__new__` then `__init__`; the fixtures below exercise the whole call
    assert type(Trainer.__new__(Trainer, config.load(overrides=TINY))) is Trainer
    for control, cls in [("reset", ResetTrainer), ("population", PopulationTrainer), ("ideal", IdealTrainer)]:
        assert type(Trainer.__new__(Trainer, config.load(overrides=TINY + [f"train.control={control}"]))) is cls


@pytest.mark.parametrize("overrides, match", [
    (["train.control=ideal", "train.mode=gumbel"], "train.control='ideal' needs train.mode='reinforce'"),
    (["train.control=ideal", "game.kind=discrimination", "game.n_distractors=2"], "game.kind='reconstruction'"),
    (["train.control=reset", "train.listener_holdout=0.01"], "train.listener_holdout=0.01"),
    (["train.control=bogus"], "train.control='bogus': allowed values are none, reset, population, ideal"),
])
def test_bad_control_settings_name_the_field(overrides, match):
    with pytest.raises(ConfigError, match=match):
        config.load(overrides=TINY + overrides)


# -- reset ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reset():
    # refits stop after exactly 2 * window = 6 steps (any loss counts as stalled with this tolerance)
    return setup("train.control=reset", "train.reset_every=10", "train.listener_window=3",
                 "train.listener_tolerance=1e9", "train.listener_max_steps=50")


def test_listener_is_reset_and_refitted_every_reset_every_steps(reset):
    trainer, keys, hparams, state = reset
    block = jax.jit(jax.vmap(trainer.train_block, in_axes=(0, 0, None, 0)))
    first = block(state, keys, 0, hparams)  # steps 0..9: no reset at step 0
    np.testing.assert_array_equal(first.receiver_opt.count, [10, 10])
    second = block(first, keys, 1, hparams)  # step 10: reset, 6 refit steps, then steps 10..19 jointly
    np.testing.assert_array_equal(second.receiver_opt.count, [16, 16])
    np.testing.assert_array_equal(second.sender_opt.count, [20, 20])
    assert trainer.held_out.sum() == 2 and len(trainer.held_out) == 22  # round(0.1 * 22) held out of the refit


def test_refit_stops_when_the_loss_stalls_and_at_the_cap(reset):
    trainer, keys, hparams, state = reset
    env = games.EnvParams(objects=jnp.asarray(trainer.world.train_objects), probs=state.probs[0])
    hp = jax.tree.map(lambda v: v[0], hparams)
    sender = jax.tree.map(lambda v: v[0], state.sender)

    @jax.jit
    def fit(tolerance, key):
        receiver = analysis.fresh_receiver(trainer, key)
        opt = trainer.optimizer(learning_rate=hp.receiver_lr).init(receiver)
        episodes = trainer.eval_episodes["train"]
        start = trainer.play(sender, receiver, episodes, key, hp, "sample")
        result = analysis.fit_listener(trainer, sender, receiver, opt, env, key, hp, 40, 5, tolerance)
        end = trainer.play(sender, result.receiver, episodes, key, hp, "sample")  # the same messages
        log_pi = analysis.message_log_probs(trainer.sender(sender), episodes.target, end.message.symbols)
        return result.steps, analysis.decompose(log_pi, start.log_rho), analysis.decompose(log_pi, end.log_rho)

    steps, _, _ = fit(jnp.float32(1e9), jax.random.key(0))  # everything counts as stalled
    assert int(steps) == 10
    steps, start, end = fit(jnp.float32(-1e9), jax.random.key(0))  # nothing does: runs to the cap
    assert int(steps) == 40
    # the refit moved the listener towards the speaker's ideal listener, and no loss beats H(X|M)
    assert float(end.l_adapt) < float(start.l_adapt) - 0.01
    assert float(end.loss) >= float(end.l_info) - 0.05


# -- population -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def population():
    trainer, keys, hparams, _ = setup("train.control=population", "train.n_listeners=3")
    state, history = jax.jit(jax.vmap(trainer.train))(keys, hparams)
    return trainer, state, jax.device_get(history)


def test_population_holds_stacked_listeners_and_trains_one_per_step(population):
    trainer, state, _ = population
    counts = np.asarray(state.receiver_opt.count)  # [seeds, listeners]
    assert counts.shape == (2, 3)
    np.testing.assert_array_equal(counts.sum(axis=1), [20, 20])  # each step updated exactly one listener
    assert np.all(counts > 0)  # 20 uniform draws among 3 all hit every member (for these seeds)
    leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(state.receiver)]
    assert all(leaf.shape[:2] == (2, 3) for leaf in leaves)
    assert any(not np.allclose(leaf[:, 0], leaf[:, 1]) for leaf in leaves)  # distinct listeners


def test_population_metrics_average_the_listeners(population):
    trainer, state, history = population
    for split in ("train", "test"):
        h = history[split]
        np.testing.assert_allclose(h["loss"], h["l_info"] + h["l_adapt"], atol=1e-4)
        assert np.all(np.isfinite(h["accuracy"])) and h["loss"].shape == (2, 3)
    # the logged loss is the mean over listeners of the per-listener decomposition
    keys = jax.vmap(lambda k: jax.random.split(k, 3)[2])(seed_keys(trainer.config))
    per_listener = analysis.decompose_population(trainer, state, trainer.split_objects["train"], keys)
    assert per_listener.loss.shape == (2, 3)
    np.testing.assert_allclose(per_listener.loss.mean(axis=1), history["train"]["loss"][:, -1], atol=1e-4)
    np.testing.assert_allclose(per_listener.l_info[:, 0], history["train"]["l_info"][:, -1], atol=1e-4)


def test_population_checkpoint_keeps_every_listener(population, tmp_path):
    trainer, state, _ = population
    path = tmp_path / checkpoint.FILENAME
    checkpoint.save(path, state.sender, state.receiver, [0, 1])
    _, receivers, _ = checkpoint.load(path, trainer.config)
    for saved, loaded in zip(jax.tree.leaves(state.receiver), jax.tree.leaves(receivers)):
        np.testing.assert_array_equal(saved, loaded)  # [seeds, listeners, ...]
    _, listener = checkpoint.load_agents(path, trainer.config, index=1, listener=2)
    kernel = np.asarray(jax.tree.leaves(nnx.state(listener))[0])
    np.testing.assert_array_equal(kernel, np.asarray(jax.tree.leaves(state.receiver)[0])[1, 2])
    with pytest.raises(ValueError, match="listener 3 out of range: the run has 3 listeners"):
        checkpoint.load_agents(path, trainer.config, listener=3)


# -- ideal listener -------------------------------------------------------------------------------


def brute_force_log_pihat(trainer, sender_params, targets, symbols):
    """log pihat(x_b|m_b) under the uniform train prior, every pair teacher-forced one by one."""
    sender = trainer.sender(sender_params)
    objects = jnp.asarray(trainer.world.train_objects)
    log_pi = jax.vmap(lambda m: jax.vmap(lambda x: sender.log_prob(x[None], m[None])[0])(objects))(symbols)  # [B, n]
    own = jnp.argmax(jnp.all(targets[:, None] == objects[None], -1), axis=1)
    return log_pi[jnp.arange(len(symbols)), own] - jax.scipy.special.logsumexp(log_pi, axis=1)


@pytest.fixture(scope="module")
def ideal():
    trainer, keys, hparams, state = setup("train.control=ideal", "train.ideal_size=0")
    sender = jax.tree.map(lambda v: v[0], state.sender)
    targets = jnp.asarray(trainer.world.train_objects[:8])
    message = trainer.sender(sender).sample(targets, jax.random.key(5))
    return trainer, keys, hparams, state, sender, targets, message


def test_ideal_reward_is_the_bayes_posterior_of_the_speaker(ideal):
    trainer, _, _, _, sender, targets, message = ideal
    exact = jax.jit(trainer.ideal_log_pihat)(sender, targets, message.symbols, message.log_prob, jax.random.key(0))
    reference = jax.jit(brute_force_log_pihat, static_argnums=0)(trainer, sender, targets, message.symbols)
    np.testing.assert_allclose(exact, reference, atol=1e-4)
    assert np.all(np.asarray(exact) <= 1e-6)


def test_sampled_ideal_normaliser_is_unbiased(ideal):
    trainer, _, _, _, sender, targets, message = ideal
    exact = jax.jit(trainer.ideal_log_pihat)(sender, targets, message.symbols, message.log_prob, jax.random.key(0))
    sampled_trainer = Trainer(config.replace(trainer.config, **{"train.ideal_size": 6}))
    draws = jax.jit(jax.vmap(lambda k: sampled_trainer.ideal_log_pihat(sender, targets, message.symbols, message.log_prob, k)))(
        jax.random.split(jax.random.key(1), 3000))  # [draws, B]
    assert np.all(np.asarray(draws) <= 1e-6)
    # E[1 / pihat_sampled] = 1 / pihat: the normaliser pi(m) is estimated without bias
    inverse = np.exp(-np.asarray(draws, np.float64))
    error = inverse.std(0) / np.sqrt(len(inverse))
    assert np.all(np.abs(inverse.mean(0) - np.exp(-np.asarray(exact, np.float64))) < 4 * error + 1e-3)


def test_ideal_control_trains_under_vmap_with_the_ideal_reward_as_baseline(ideal):
    trainer, keys, hparams, state, *_ = ideal
    state = jax.jit(jax.vmap(trainer.train_block, in_axes=(0, 0, None, 0)))(state, keys, 0, hparams)
    assert np.all(np.asarray(state.step) == 10)
    assert np.all(np.asarray(state.baseline) <= 0) and np.all(np.asarray(state.baseline) < -1e-3)  # tracks log pihat <= 0
    assert np.all(np.isfinite(np.asarray(jax.tree.leaves(state.sender)[0])))
