"""Object sets, splits and input distributions: partitions, coverage, determinism, known values."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from games import distributions, objects, splits


def assert_partition(n_objects, train, test, test_fraction):
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.union1d(train, test), np.arange(n_objects))
    assert len(test) == round(n_objects * test_fraction)
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)  # sorted, no repeats


def assert_every_value_in_train(objs, train):
    for k in range(objs.shape[1]):
        assert set(objs[train, k]) == set(objs[:, k]), f"attribute {k} loses a value to test"


# -- compositional ----------------------------------------------------------------------------------


def test_compositional_split_partitions_and_keeps_every_value_in_train():
    objs = objects.all_objects(3, 4)
    train, test = splits.compositional_split(objs, 4, 0.3, seed=0)
    assert_partition(len(objs), train, test, 0.3)
    assert_every_value_in_train(objs, train)


def test_compositional_split_is_deterministic_in_the_seed():
    objs = objects.all_objects(3, 4)
    first, again, other = (splits.compositional_split(objs, 4, 0.3, seed=s) for s in (7, 7, 8))
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])


def test_compositional_split_needs_two_attributes():
    with pytest.raises(ValueError, match="n_attributes >= 2"):
        splits.compositional_split(objects.all_objects(1, 5), 5, 0.2, seed=0)


def test_compositional_split_refuses_an_impossible_fraction():
    # 2x2 grid: at most 2 of the 4 objects can leave train while every value stays in it
    with pytest.raises(ValueError, match="impossible compositional split"):
        splits.compositional_split(objects.all_objects(2, 2), 2, 0.9, seed=0)


@settings(max_examples=60, deadline=None)
@given(
    n_attributes=st.integers(2, 3),
    n_values=st.integers(2, 4),
    test_fraction=st.floats(0.0, 0.5),
    seed=st.integers(0, 2**16),
)
def test_compositional_split_property_on_full_grids(n_attributes, n_values, test_fraction, seed):
    # a full grid with K >= 2 keeps a "diagonal" of V objects covering every value, so half fits in test
    objs = objects.all_objects(n_attributes, n_values)
    train, test = splits.compositional_split(objs, n_values, test_fraction, seed)
    assert_partition(len(objs), train, test, test_fraction)
    assert_every_value_in_train(objs, train)


@settings(max_examples=60, deadline=None)
@given(
    n_attributes=st.integers(2, 3),
    n_values=st.integers(2, 4),
    keep=st.floats(0.3, 1.0),
    test_fraction=st.floats(0.0, 0.6),
    seed=st.integers(0, 2**16),
)
def test_compositional_split_property_on_sampled_sets(n_attributes, n_values, keep, test_fraction, seed):
    """On a sampled object set the split either holds every property or says why it cannot."""
    n_objects = max(1, int(keep * n_values**n_attributes))
    objs = objects.sample_objects(n_attributes, n_values, n_objects, seed)
    try:
        train, test = splits.compositional_split(objs, n_values, test_fraction, seed)
    except ValueError as error:
        assert "impossible compositional split" in str(error)
        return
    assert_partition(n_objects, train, test, test_fraction)
    assert_every_value_in_train(objs, train)


# -- iid ----------------------------------------------------------------------------------------------


def test_iid_split_sizes_and_determinism():
    train, test = splits.iid_split(50, 0.2, seed=3)
    assert_partition(50, train, test, 0.2)
    again = splits.iid_split(50, 0.2, seed=3)
    other = splits.iid_split(50, 0.2, seed=4)
    assert np.array_equal(test, again[1]) and not np.array_equal(test, other[1])


def test_split_dispatch_none_uses_everything_and_rejects_unknown_kinds():
    objs = objects.all_objects(2, 3)
    train, test = splits.split(objs, 3, "none", 0.5, seed=0)
    assert np.array_equal(train, np.arange(9)) and np.array_equal(test, np.arange(9))
    with pytest.raises(ValueError, match="unknown split"):
        splits.split(objs, 3, "random", 0.5, seed=0)


# -- objects --------------------------------------------------------------------------------------------


def test_all_objects_enumerates_the_space_once():
    objs = objects.all_objects(3, 4)
    assert objs.shape == (64, 3)
    assert len(np.unique(objs, axis=0)) == 64
    assert np.array_equal(objects.encode(objs, 4), np.arange(64))


def test_sample_objects_distinct_count_range_and_seed():
    objs = objects.sample_objects(4, 5, 100, seed=1)
    assert objs.shape == (100, 4)
    assert len(np.unique(objs, axis=0)) == 100
    assert objs.min() >= 0 and objs.max() < 5
    assert np.array_equal(objs, objects.sample_objects(4, 5, 100, seed=1))
    assert not np.array_equal(objs, objects.sample_objects(4, 5, 100, seed=2))


def test_sample_objects_every_object_when_n_is_v_to_the_k():
    assert np.array_equal(objects.sample_objects(2, 3, 9, seed=0), objects.all_objects(2, 3))


def test_sample_objects_refuses_more_than_v_to_the_k():
    with pytest.raises(ValueError, match="exceeds"):
        objects.sample_objects(2, 3, 10, seed=0)


# -- distributions -----------------------------------------------------------------------------------------


def test_zipf_sums_to_one_and_follows_a_power_law():
    exponent = 1.3
    probs = distributions.zipf(12, exponent, seed=5)
    assert probs.sum() == pytest.approx(1.0, abs=1e-6)
    by_rank = np.sort(probs)[::-1]
    ranks = np.arange(1, 13)
    np.testing.assert_allclose(by_rank / by_rank[0], ranks ** -exponent, rtol=1e-5)


def test_zipf_ranks_depend_on_the_seed():
    assert not np.array_equal(distributions.zipf(12, 1.0, seed=0), distributions.zipf(12, 1.0, seed=1))


def test_group_skew_scales_whole_groups():
    objs = objects.all_objects(2, 2)  # attribute 0 splits the four objects in two pairs
    probs = distributions.group_skew(objs, attribute=0, weights=[3.0, 1.0])
    np.testing.assert_allclose(probs, [0.375, 0.375, 0.125, 0.125], rtol=1e-6)


# -- validation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["compositional", "iid"])
def test_validation_is_held_out_of_train_disjoint_and_deterministic(kind):
    from games import make_world

    world = make_world(4, 4, split=kind, test_fraction=0.2, validation_fraction=0.1, seed=3)
    plain = make_world(4, 4, split=kind, test_fraction=0.2, seed=3)
    parts = [world.train, world.validation, world.test]
    assert sum(map(len, parts)) == 256 and np.array_equal(np.sort(np.concatenate(parts)), np.arange(256))
    assert len(world.validation) == round(256 * 0.1) and np.all(np.diff(world.validation) > 0)
    assert np.array_equal(world.test, plain.test)  # the test split does not move
    assert np.array_equal(np.union1d(world.train, world.validation), plain.train)
    again, other = make_world(4, 4, split=kind, test_fraction=0.2, validation_fraction=0.1, seed=3), \
        make_world(4, 4, split=kind, test_fraction=0.2, validation_fraction=0.1, seed=4)
    assert np.array_equal(again.validation, world.validation) and not np.array_equal(other.validation, world.validation)
    assert len(world.train_probs) == len(world.train)
    if kind == "compositional":  # validation objects are unseen combinations too
        assert_every_value_in_train(world.objects, world.train)


def test_validation_fraction_is_checked_at_the_boundary():
    from games.config import GameConfig
    from games.fields import ConfigError

    assert GameConfig(validation_fraction=0.1).n_train == 256 - 51 - 26
    with pytest.raises(ConfigError, match="game.validation_fraction=0.1: needs a split"):
        GameConfig(split="none", validation_fraction=0.1).validate()
    with pytest.raises(ConfigError, match="leaves no train object"):
        GameConfig(test_fraction=0.5, validation_fraction=0.5).validate()
