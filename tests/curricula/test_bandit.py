"""Exp3.S (Graves et al. 2017): a proper policy with its exploration floor, and mass that follows learning progress."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from curricula import bandit as exp3s
from curricula.base import Stats
from games.difficulty import Axis

N_ARMS, BATCH = 4, 8
HP = {"step_size": jnp.float32(0.05), "explore": jnp.float32(0.05), "mix": jnp.float32(1e-3)}


def test_policy_sums_to_one_and_keeps_the_exploration_floor():
    rng = np.random.default_rng(0)
    policy = jax.jit(lambda w: exp3s.policy(w, 0.05))
    update = jax.jit(lambda w, arm, r, p: exp3s.exp3s_update(w, arm, r, p, 5.0, 1e-3))
    log_weights = jnp.zeros(N_ARMS)
    for _ in range(300):  # large, one-sided rewards push the weights far apart
        arm = int(rng.integers(N_ARMS))
        reward = jnp.float32(rng.choice([-1.0, 1.0]) if arm else 1.0)
        log_weights = update(log_weights, arm, reward, policy(log_weights)[arm])
        probs = np.asarray(policy(log_weights))
        assert probs.sum() == pytest.approx(1.0, abs=1e-6)
        assert probs.min() >= 0.05 / N_ARMS - 1e-7
    assert probs.max() > 0.5  # the weights did move


def test_rescaled_rewards_lie_in_minus_one_one():
    history = jnp.concatenate([jnp.linspace(-3.0, 5.0, 50), jnp.full(150, jnp.nan)])  # 50 past gains, the rest empty
    gains = jnp.linspace(-10.0, 10.0, 41)
    rewards = np.asarray(jax.vmap(lambda g: exp3s.rescale(g, history))(gains))
    assert rewards.min() == -1.0 and rewards.max() == 1.0
    assert np.all(np.diff(rewards) >= 0)  # monotone in the gain
    assert float(exp3s.rescale(jnp.float32(1.0), jnp.full(10, jnp.nan).at[0].set(1.0))) == 0.0  # no spread yet: no signal


def exp3s_mixing_by_hand(w, arm, reward, prob, eta, alpha):
    raised = w.copy()
    raised[arm] += eta * reward / prob
    e = np.exp(raised)
    mixed = np.log((1 - alpha) * e + alpha / (len(w) - 1) * (e.sum() - e))
    return mixed - mixed.max()


def test_exp3s_update_matches_the_formula():
    w = np.array([0.3, -1.0, 0.0, 2.0])
    got = exp3s.exp3s_update(jnp.asarray(w), 1, jnp.float32(0.7), jnp.float32(0.2), 0.1, 0.01)
    np.testing.assert_allclose(np.asarray(got), exp3s_mixing_by_hand(w, 1, 0.7, 0.2, 0.1, 0.01), rtol=1e-5, atol=1e-6)


def synthetic_run(key, slopes, steps=600):
    """Arm k's loss falls by slopes[k] (plus noise) each time it is played: its prediction gain."""
    axis = Axis("synthetic", np.arange(1.0, N_ARMS + 1), np.full(N_ARMS, 1.0 / N_ARMS), "probs")  # one unit per arm
    sampler = exp3s.bandit(axis, N_ARMS, BATCH, history=100)
    slopes = jnp.asarray(slopes)

    def step(carry, t):
        state, losses, key = carry
        key, key_noise = jax.random.split(key)
        arm = state["arm"]
        gain = slopes[arm] * (1.0 + 0.5 * jax.random.normal(key_noise))
        stats = Stats(ids=jnp.full(BATCH, arm), groups=jnp.zeros(BATCH, jnp.int32), loss=jnp.full(BATCH, losses[arm]),
                      correct=jnp.zeros(BATCH, bool), weights=jnp.ones(BATCH), step=t)
        state = sampler.update(state, stats, HP)  # learns from the previous gain, records this batch
        state = exp3s.observe(state, losses[arm] - gain)  # what the intervention measures after the step
        return (state, losses.at[arm].add(-gain), key), exp3s.policy(state["log_weights"], HP["explore"])

    state = sampler.init(key)
    (_, _, _), probs = jax.lax.scan(step, (state, jnp.full(N_ARMS, 3.0), key), jnp.arange(steps))
    return np.asarray(probs)  # [steps, arms]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_bandits_mass_moves_to_the_arm_whose_loss_falls_fastest(seed):
    probs = synthetic_run(jax.random.key(seed), [0.001, 0.004, 0.02, 0.002])
    assert np.allclose(probs.sum(-1), 1.0, atol=1e-5) and probs.min() >= 0.05 / N_ARMS - 1e-7
    late = probs[-100:].mean(0)
    assert late.argmax() == 2 and late[2] > 0.5, late
    assert probs[:20, 2].mean() < 0.5  # it was learned, not given


def test_without_gains_the_bandit_plays_uniformly():
    axis = Axis("synthetic", np.arange(1.0, N_ARMS + 1), np.full(N_ARMS, 1.0 / N_ARMS), "probs")
    sampler = exp3s.bandit(axis, N_ARMS, BATCH)
    state = sampler.init(jax.random.key(0))
    update = jax.jit(lambda state, stats: sampler.update(state, stats, HP))
    arms = []
    for t in range(200):
        stats = Stats(ids=jnp.zeros(BATCH, jnp.int32), groups=jnp.zeros(BATCH, jnp.int32), loss=jnp.ones(BATCH),
                      correct=jnp.zeros(BATCH, bool), weights=jnp.ones(BATCH), step=jnp.int32(t))
        state = update(state, stats)
        arms.append(int(state["arm"]))
    np.testing.assert_allclose(np.asarray(state["log_weights"]), 0.0)
    assert set(arms) == set(range(N_ARMS))
