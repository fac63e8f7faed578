"""Hand-crafted pacing: the competence formula, what a paced sampler may draw, and the random-order control."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import curricula
import games
from curricula.base import Stats
from curricula.pacing import paced, stage
from games.difficulty import buckets, cdf_levels, make_axis

STEPS = 100
HP = {"initial": jnp.float32(0.05), "power": jnp.float32(2.0), "pace": jnp.float32(0.6)}
GAME = games.LewisReconstruction(3, 4, 8, 3)


@pytest.fixture(scope="module")
def world():
    config = games.GameConfig(n_attributes=3, n_values=4, split="compositional")
    return games.world_of(config), config


@pytest.fixture(scope="module")
def axis(world):
    return make_axis("values", *world)


@pytest.fixture(scope="module")
def base(world):
    return GAME.default_params(world[0].train_objects, world[0].train_probs)


def draws(sampler, state, base, step, key, n=512):
    """(ids [n] drawn as the trainer draws them at `step`, the distribution over the units [n_units])."""
    env = sampler.env(state, base, jnp.int32(step), HP)
    return np.asarray(GAME.sample_ids(key, env, n)), np.asarray(env.probs)


def support(sampler, state, base, step):
    return np.asarray(sampler.env(state, base, jnp.int32(step), HP).probs) > 0


@pytest.mark.parametrize("step, total, initial, power, expected", [
    (0, 1000, 0.01, 1.0, 0.01),
    (250, 1000, 0.01, 1.0, 0.01 + 0.25 * 0.99),  # linear: t (1 - c0) / T + c0
    (250, 1000, 0.01, 2.0, np.sqrt(0.25 * (1 - 1e-4) + 1e-4)),  # sqrt: (t (1 - c0^2) / T + c0^2)^(1/2)
    (500, 1000, 0.1, 3.0, (0.5 * (1 - 1e-3) + 1e-3) ** (1 / 3)),
    (1000, 1000, 0.01, 2.0, 1.0),
    (5000, 1000, 0.3, 1.0, 1.0),  # capped at 1 after T
    (123, 1000, 1.0, 2.0, 1.0),  # c0 = 1: no curriculum
])
def test_competence_matches_the_formula(step, total, initial, power, expected):
    assert float(curricula.competence(step, total, initial, power)) == pytest.approx(expected, rel=1e-5)


def test_sqrt_competence_runs_ahead_of_linear_and_both_rise():
    t = jnp.arange(0, 1001, 50)
    linear, sqrt = curricula.competence(t, 1000, 0.01, 1.0), curricula.competence(t, 1000, 0.01, 2.0)
    assert np.all(np.diff(linear) > 0) and np.all(np.diff(sqrt[:-1]) > 0)
    assert np.all(sqrt[1:-1] > linear[1:-1])


@pytest.mark.parametrize("order", ["easy_first", "hard_first", "random"])
def test_a_competence_sampler_never_draws_above_its_competence(axis, base, order):
    sampler = paced(axis, "competence", order, STEPS)
    state = sampler.init(jax.random.key(3))
    levels = np.asarray(state["levels"])
    for step in range(0, STEPS + 1, 7):
        ids, probs = draws(sampler, state, base, step, jax.random.key(step))
        allowed = max(float(curricula.competence(step, 0.6 * STEPS, 0.05, 2.0)), levels.min())
        assert levels[ids].max() <= allowed + 1e-6, (order, step)
        assert probs[levels > allowed + 1e-6].sum() == 0.0
    if order == "easy_first":  # the levels are the CDF of the difficulty, and step 0 plays one value per attribute
        np.testing.assert_allclose(levels, cdf_levels(axis.scores, axis.prior), rtol=1e-6)
        ids, _ = draws(sampler, state, base, 0, jax.random.key(0))
        assert set(axis.scores[ids]) == {1.0}


@pytest.mark.parametrize("kind", ["competence", "baby_steps", "one_pass"])
def test_random_order_plays_as_many_distinct_examples_as_its_curriculum(axis, base, kind):
    curriculum, control = paced(axis, kind, "easy_first", STEPS), paced(axis, kind, "random", STEPS)
    s_curriculum, s_control = curriculum.init(jax.random.key(0)), control.init(jax.random.key(1))
    differs = False
    for step in range(STEPS + 1):
        a, b = support(curriculum, s_curriculum, base, step), support(control, s_control, base, step)
        assert a.sum() == b.sum(), step
        differs |= bool(np.any(a != b))
        ids, _ = draws(control, s_control, base, step, jax.random.key(step), n=64)
        assert b[ids].all()  # drawn only from what the control admits
    assert differs  # and it is another order, not the curriculum again


def test_baby_steps_accumulate_buckets_and_one_pass_moves_through_them(axis, base):
    bucket = buckets(axis.scores, axis.prior, 4)
    n = bucket.max() + 1
    assert n >= 3
    baby, one = paced(axis, "baby_steps", "easy_first", STEPS), paced(axis, "one_pass", "easy_first", STEPS)
    sb, so = baby.init(jax.random.key(0)), one.init(jax.random.key(0))
    for step in range(0, STEPS, 5):
        b = int(stage(step, HP["pace"] * STEPS, n))  # the sampler's own float32 length: boundaries agree
        np.testing.assert_array_equal(support(baby, sb, base, step), bucket <= b)
        np.testing.assert_array_equal(support(one, so, base, step), bucket == b)
    assert support(baby, sb, base, STEPS).all()  # every bucket once the pace has run out


def test_hard_first_starts_on_the_hardest_objects(axis, base):
    sampler = paced(axis, "competence", "hard_first", STEPS)
    ids, _ = draws(sampler, sampler.init(jax.random.key(0)), base, 0, jax.random.key(0))
    assert set(axis.scores[ids]) == {axis.scores.max()}


def test_pacing_vmaps_over_its_continuous_knobs(axis, base):
    sampler = paced(axis, "competence", "easy_first", STEPS)
    state = sampler.init(jax.random.key(0))
    hp = {"initial": jnp.full(3, 0.05), "power": jnp.array([1.0, 2.0, 2.0]), "pace": jnp.array([0.5, 0.5, 2.0])}
    probs = jax.vmap(lambda hp: sampler.env(state, base, jnp.int32(30), hp).probs)(hp)
    sizes = np.asarray((probs > 0).sum(-1))
    assert sizes[1] >= sizes[0] > sizes[2]  # sqrt ahead of linear; a 4x longer pace behind both


def test_update_records_the_pacing_and_that_nothing_was_drawn_above_it(axis, base):
    sampler = paced(axis, "competence", "easy_first", STEPS)
    state = sampler.init(jax.random.key(0))
    shifts = []
    for step in range(40):
        ids, _ = draws(sampler, state, base, step, jax.random.key(step), n=32)
        stats = Stats(ids=jnp.asarray(ids), groups=jnp.zeros(32, jnp.int32), loss=jnp.ones(32), correct=jnp.zeros(32, bool),
                      weights=jnp.ones(32), step=jnp.int32(step))
        state = sampler.update(state, stats, HP)
        summary = sampler.summary(state, HP)
        assert float(summary["curriculum_above"]) == 0.0
        assert float(summary["curriculum_competence"]) == pytest.approx(float(curricula.competence(step, 60, 0.05, 2.0)), rel=1e-6)
        shifts.append(float(summary["curriculum_shift"]))
    assert shifts[0] == 0.0 and max(shifts) > 0.0  # the mix moves when a new level enters
