"""Curriculum weights: mean 1 unless told to drift; self-paced selection; the commentary's start and its shuffled control."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from curricula import commentary, weighting
from curricula.base import Stats
from curricula.self_paced import self_paced


def test_normalised_weights_average_one_and_drift_keeps_the_raw_mean():
    w = jnp.array([0.1, 0.5, 0.2, 0.0])
    np.testing.assert_allclose(float(jnp.mean(weighting.normalise(w, 0.0))), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(weighting.normalise(w, 1.0)), np.asarray(w))
    half = weighting.normalise(w, 0.5)
    assert float(jnp.mean(half)) == pytest.approx(float(jnp.mean(w)) ** 0.5, rel=1e-5)
    ratios = np.asarray(half[:3] / w[:3])
    assert np.allclose(ratios, ratios[0])  # a common factor: the relative weights are untouched


def stats(ids, loss, step):
    n = len(ids)
    return Stats(ids=jnp.asarray(ids), groups=jnp.zeros(n, jnp.int32), loss=jnp.asarray(loss, jnp.float32),
                 correct=jnp.zeros(n, bool), weights=jnp.ones(n), step=jnp.int32(step))


def test_self_paced_counts_the_examples_under_a_threshold_that_grows():
    chance = 4.0
    sampler = self_paced(6, chance, train_steps=100)
    hp = {"initial": jnp.float32(0.25), "power": jnp.float32(1.0), "pace": jnp.float32(1.0), "drift": jnp.float32(1.0)}
    state = sampler.init(jax.random.key(0))
    ids = jnp.arange(6)
    assert np.all(np.asarray(sampler.weights(state, ids, jnp.int32(0), hp)) == 1.0)  # nothing seen yet: all count
    state = sampler.update(state, stats(np.arange(6), [0.5, 1.5, 2.5, 3.5, 4.5, 5.5], 0), hp)
    # lambda_t = c(t) * chance with linear c from 0.25: 1.0 at step 0, 2.8 at step 60, everything from step 100
    np.testing.assert_array_equal(np.asarray(sampler.weights(state, ids, jnp.int32(0), hp)), [1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(np.asarray(sampler.weights(state, ids, jnp.int32(60), hp)), [1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(np.asarray(sampler.weights(state, ids, jnp.int32(100), hp)), [1, 1, 1, 1, 1, 1])
    hard = jnp.array([4, 5, 5])  # a batch of hard examples only: its easiest still counts
    np.testing.assert_array_equal(np.asarray(sampler.weights(state, hard, jnp.int32(0), hp)), [1, 0, 0])
    normalised = sampler.weights(state, ids, jnp.int32(60), {**hp, "drift": jnp.float32(0.0)})
    assert float(jnp.mean(normalised)) == pytest.approx(1.0)


def test_commentary_starts_neutral_and_its_shuffled_control_keeps_the_weights_of_the_batch():
    objects = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [2, 2]])
    hp = {"drift": jnp.float32(0.0), "shuffle": jnp.float32(0.0), "meta_lr": jnp.float32(0.1)}
    features = jax.nn.one_hot(objects, 3).reshape(len(objects), -1)  # what the agents see of the objects
    sampler = commentary.commentary(features, train_steps=100)
    state = sampler.init(jax.random.key(0))
    ids = jnp.array([0, 1, 2, 3, 4, 4])
    np.testing.assert_allclose(np.asarray(sampler.weights(state, ids, jnp.int32(5), hp)), 1.0)  # the last layer starts at 0
    # a meta-gradient recorded is applied by the next update and makes the weights differ between examples
    params = commentary.parameters(state)
    grad = jax.grad(lambda p: jnp.sum(commentary.raw_weights(p, features, 0.05)
                                      * jnp.array([1.0, -1.0, 1.0, -1.0, 1.0])))(params)
    state = sampler.update(commentary.record(state, grad), stats(np.asarray(ids), np.ones(6), 5), hp)
    learned = np.asarray(sampler.weights(state, ids, jnp.int32(5), hp))
    assert learned.std() > 1e-3 and learned.mean() == pytest.approx(1.0, rel=1e-5)
    shuffled = np.asarray(sampler.weights(state, ids, jnp.int32(5), {**hp, "shuffle": jnp.float32(1.0)}))
    np.testing.assert_allclose(np.sort(shuffled), np.sort(learned), rtol=1e-6)
    assert not np.allclose(shuffled, learned)  # the same weights, given to other examples
