"""lab.core.estimators and EGG's training options: REINFORCE and Gumbel surrogates, the length cost, the
temperature schedule, and early stopping at a train-accuracy threshold."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import games
import lab
from lab.core import estimators
from lab.core.agents import Message
from lab.core.rollout import Rollout

TINY = ["game.n_attributes=2", "game.n_values=3", "agents.hidden_size=16", "agents.embedding_size=8", "agents.vocab_size=8",
        "agents.max_len=3", "train.batch_size=32", "train.seeds=2", "train.lr=0.01", "game.split=none"]


def test_temperature_follows_the_schedule_with_a_floor():
    hp = {"temperature": jnp.float32(2.0), "temperature_decay": jnp.float32(0.9), "temperature_min": jnp.float32(0.5)}
    for step, expected in [(0, 2.0), (1, 1.8), (5, 2.0 * 0.9**5), (100, 0.5)]:
        assert float(estimators.temperature(jnp.int32(step), hp)) == pytest.approx(expected, rel=1e-5)


def message(symbols, vocab=5) -> Message:
    symbols = jnp.asarray(symbols)
    alive = games.messages.alive(symbols).astype(jnp.float32)
    n = symbols.shape[0]
    return Message(symbols, jax.nn.one_hot(symbols, vocab), jnp.full(n, -1.0), jnp.zeros(n), alive)


def test_expected_length_of_hard_messages_is_their_length():
    m = message([[3, 0, 0], [1, 2, 0], [1, 2, 3], [0, 0, 0]])
    np.testing.assert_allclose(estimators.expected_length(m), games.message_length(m.symbols))


def test_length_cost_lowers_the_reward_by_the_cost_of_each_symbol():
    m = message([[3, 0, 0], [1, 2, 3]])
    ro = Rollout(m, jnp.array([-0.5, -0.5]), jnp.ones(2, bool), jnp.ones((2, 1), bool))
    estimator = estimators.reinforce()
    hp = {"length_cost": jnp.float32(0.1), "entropy_coeff": jnp.float32(0.0)}
    _, aux = estimator.loss(estimator.init(jax.random.key(0)), ro, jnp.ones(2), None, hp)
    assert float(aux["reward"]) == pytest.approx(-0.5 - 0.1 * (2 + 3) / 2)  # lengths 2 and 3, the EOS counted


def test_the_baseline_tracks_the_unweighted_reward_bias_corrected():
    estimator = estimators.reinforce(baseline_decay=0.9)
    state = estimator.init(jax.random.key(0))
    for reward in (-2.0, -1.0):
        state = estimator.update(state, {"reward": jnp.float32(reward)}, {})
    # a running mean corrected for its zero start: (0.9 * 0.1 * -2 + 0.1 * -1) / (1 - 0.81)
    assert float(estimator.summary(state, {})["baseline"]) == pytest.approx((0.09 * -2.0 + 0.1 * -1.0) / 0.19, rel=1e-5)


def test_a_reward_of_ones_own_replaces_the_listeners():
    """A REINFORCE reward defined here (a constant): the batch reports it and the sender's baseline follows it."""
    cfg = lab.load(overrides=TINY + ["train.steps=20", "train.eval_every=10"])
    trainer = lab.make_trainer(cfg, estimator=estimators.reinforce(lambda ro, context: jnp.full(ro.log_rho.shape, -3.0)))
    state, history = lab.train_seeds(cfg, trainer)
    np.testing.assert_allclose(history["batch"]["reward"][:, 1:], -3.0)
    np.testing.assert_allclose(history["batch"]["baseline"][:, 1:], -3.0, rtol=1e-5)


def test_early_stopping_freezes_each_run_at_the_threshold():
    cfg = lab.load(overrides=TINY + ["train.steps=600", "train.eval_every=50", "train.stop_accuracy=0.6"])
    trainer = lab.make_trainer(cfg)
    state, history = jax.device_get(lab.train_seeds(cfg, trainer))
    accuracy, stopped = history["train"]["accuracy"], history["train"]["stopped"]
    for run in range(2):
        reached = np.flatnonzero(accuracy[run] >= 0.6)
        assert reached.size, accuracy[run]
        first = reached[0]
        assert int(state.stop_step[run]) == trainer.eval_steps[first]
        assert np.all(stopped[run, first:] == 1) and np.all(stopped[run, :first] == 0)
        np.testing.assert_array_equal(accuracy[run, first:], accuracy[run, first])  # frozen: the same agents
        assert np.all(np.isnan(history["batch"]["loss"][run, first + 1:]))  # and no training after
    # the runner ends the loop once every run has stopped, with the same table
    from lab.experiment.execute import train_runs

    seen = []
    loop_state, loop_history = train_runs(trainer, lab.seed_keys(cfg), lab.hparams_from_config(cfg, 2),
                                              on_block=lambda index, *_: seen.append(index))
    assert seen == list(range(trainer.n_evals + 1))
    np.testing.assert_allclose(loop_history["train"]["accuracy"], accuracy, atol=1e-6)
    np.testing.assert_array_equal(loop_state.stop_step, state.stop_step)


def test_a_run_stopped_before_the_others_is_not_called_diverged():
    """A frozen run's steps report NaN (it takes none): the runner's divergence check must not read that as a loss gone
    non-finite while the other runs go on (one run here barely learns: a learning rate of 1e-7)."""
    from lab.experiment.execute import train_runs

    cfg = lab.load(overrides=TINY + ["train.steps=600", "train.eval_every=50", "train.stop_accuracy=0.6"])
    trainer = lab.make_trainer(cfg)
    slow = {"train.lr": jnp.array([0.01, 1e-7])}
    state, history = train_runs(trainer, lab.seed_keys(cfg), lab.with_values(lab.hparams_from_config(cfg, 2), slow))
    assert int(state.stop_step[0]) > 0 and int(state.stop_step[1]) == -1  # the first stopped, the second trained on
    assert np.all(np.isnan(history["batch"]["loss"][0, -1])) and np.all(np.isfinite(history["batch"]["loss"][1, 1:]))
    np.testing.assert_array_equal(history["divergence"]["step"], [-1, -1])
