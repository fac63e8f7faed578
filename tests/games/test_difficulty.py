"""Difficulty axes: scores, CDF levels and buckets; the discrimination game's episode knobs (distractors shown, shared cap)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import games
from games.difficulty import buckets, cdf_levels, make_axis
from games.registry import game_class


def test_values_axis_counts_the_values_an_object_needs_and_its_cdf_is_the_mass_no_harder():
    config = games.GameConfig(n_attributes=2, n_values=4, split="none")
    axis = make_axis("values", games.world_of(config), config)
    objects = games.world_of(config).train_objects
    np.testing.assert_array_equal(axis.scores, objects.max(-1) + 1)
    levels = cdf_levels(axis.scores, axis.prior)
    for v in range(1, 5):  # v values per attribute in play: v^2 of the 16 objects
        assert levels[axis.scores == v] == pytest.approx(v * v / 16)


def test_rarity_follows_the_skewed_distribution():
    config = games.GameConfig(n_attributes=2, n_values=4, distribution="zipf", zipf_exponent=1.5)
    world = games.world_of(config)
    axis = make_axis("rarity", world, config)
    assert np.argmin(axis.scores) == np.argmax(world.train_probs)
    levels = cdf_levels(axis.scores, axis.prior)
    assert levels[np.argmax(world.train_probs)] == pytest.approx(world.train_probs.max() / world.train_probs.sum(), rel=1e-5)


@pytest.mark.parametrize("n", [2, 3, 4, 7])
def test_buckets_are_ordered_by_difficulty_and_of_near_equal_mass(n):
    scores = np.random.default_rng(n).permutation(40).astype(float)  # no ties
    prior = np.full(40, 1 / 40)
    b = buckets(scores, prior, n)
    assert b.max() + 1 == n
    for k in range(n - 1):
        assert scores[b == k].max() < scores[b == k + 1].min()
    sizes = np.bincount(b)
    assert sizes.max() - sizes.min() <= 1


def test_few_levels_get_a_bucket_each_and_tied_scores_stay_together():
    few = np.array([1, 1, 1, 1, 1, 1, 2, 3], float)
    np.testing.assert_array_equal(buckets(few, np.full(8, 1 / 8), 4), [0, 0, 0, 0, 0, 0, 1, 2])
    many = np.array([1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 6], float)  # a tie heavier than 1/4, more levels than buckets
    b = buckets(many, np.full(11, 1 / 11), 4)
    assert len(set(b[:6])) == 1 and b.max() + 1 <= 4 and np.all(np.diff(b) >= 0)


def test_each_game_has_its_own_axes():
    assert game_class("reconstruction").AXES == ("values", "rarity")
    assert set(game_class("discrimination").AXES) == {"values", "rarity", "distractors", "similarity"}
    assert game_class("features").AXES == ("rarity", "distractors")
    config = games.GameConfig(n_attributes=2, n_values=4)
    with pytest.raises(ValueError, match="no difficulty axis 'distractors'"):
        make_axis("distractors", games.world_of(config), config)


@pytest.fixture(scope="module")
def discrimination():
    game = games.make_game("discrimination", 3, 4, 8, 3, n_distractors=4)
    objects = games.all_objects(3, 4)
    return game, game.default_params(objects)


def test_shown_distractors_follow_shown_probs_and_the_target_is_always_shown(discrimination):
    game, params = discrimination
    ids = jnp.arange(256) % params.objects.shape[0]
    for n_shown in (1, 2, 4):
        env = params.replace(shown_probs=jax.nn.one_hot(n_shown - 1, 4))
        ep = game.episodes(jax.random.key(n_shown), env, ids)
        shown = np.asarray(ep.shown)
        assert np.all(shown.sum(-1) == n_shown + 1)
        assert np.all(shown[np.arange(256), np.asarray(ep.target_index)])
    mixed = game.episodes(jax.random.key(9), params.replace(shown_probs=jnp.array([0.5, 0.0, 0.0, 0.5])), ids)
    counts = np.asarray(mixed.shown).sum(-1) - 1
    assert set(counts) == {1, 4} and 0.35 < np.mean(counts == 1) < 0.65


def test_the_shared_cap_keeps_distractors_dissimilar_when_it_can(discrimination):
    game, params = discrimination
    ids = jnp.arange(128) % params.objects.shape[0]
    ep = game.episodes(jax.random.key(0), params.replace(shared_probs=jax.nn.one_hot(0, 3)), ids)  # cap 0: share nothing
    shared = np.sum(np.asarray(ep.candidates) == np.asarray(ep.target)[:, None, :], axis=-1)  # [B, C]
    distractor = np.ones_like(shared, bool)
    distractor[np.arange(128), np.asarray(ep.target_index)] = False
    assert shared[distractor].max() == 0
    free = game.episodes(jax.random.key(0), params, ids)
    shared_free = np.sum(np.asarray(free.candidates) == np.asarray(free.target)[:, None, :], axis=-1)
    assert shared_free[distractor].max() >= 1  # without the cap, similar distractors occur


def test_the_game_as_configured_is_unchanged_by_the_new_knobs(discrimination):
    game, params = discrimination
    ids = jnp.arange(64)
    plain = game.episodes(jax.random.key(3), params, ids)
    hardest = game.episodes(jax.random.key(3), params.replace(shown_probs=jax.nn.one_hot(3, 4), shared_probs=jax.nn.one_hot(2, 3)), ids)
    assert np.asarray(plain.shown).all() and np.asarray(hardest.shown).all()
    np.testing.assert_array_equal(np.asarray(plain.candidates), np.asarray(hardest.candidates))
    np.testing.assert_array_equal(np.asarray(plain.target_index), np.asarray(hardest.target_index))
