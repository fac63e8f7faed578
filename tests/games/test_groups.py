"""games.groups: groups by attribute value, by frequency bin, given; a group with no examples is an error."""

import numpy as np
import pytest

import games
from games.fields import ConfigError
from games.groups import by_attribute, by_frequency, check, groups_of


def zipf_world(**kw):
    return games.make_world(3, 4, distribution="zipf", zipf_exponent=1.5, **kw)


def test_attribute_groups_are_the_attribute_values():
    world = games.make_world(3, 4)
    for attribute in range(3):
        groups = groups_of(world, games.GameConfig(n_attributes=3, groups="attribute", group_attribute=attribute))
        np.testing.assert_array_equal(groups, world.objects[:, attribute])
        assert sorted(set(groups[world.train].tolist())) == [0, 1, 2, 3]


@pytest.mark.parametrize("n_bins", [2, 3, 5])
def test_frequency_bins_are_equal_size_and_ordered_by_training_probability(n_bins):
    world = zipf_world()
    groups = by_frequency(world, n_bins)
    train_groups, probs = groups[world.train], world.train_probs
    sizes = np.bincount(train_groups, minlength=n_bins)
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == len(world.train)
    for b in range(n_bins - 1):  # every object of a bin is at least as frequent as every object of the next
        assert probs[train_groups == b].min() >= probs[train_groups == b + 1].max()
    assert np.all(groups[world.test] == n_bins - 1)  # never drawn in training: the rarest bin


def test_frequency_bins_carry_most_of_the_mass_in_the_head():
    world = zipf_world()
    mass = np.bincount(by_frequency(world, 4)[world.train], weights=world.train_probs)
    assert np.all(np.diff(mass) < 0) and mass[0] > 0.5 and mass[-1] < 0.1


def test_given_groups_are_checked():
    world = games.make_world(2, 3, split="none")
    np.testing.assert_array_equal(check(by_attribute(world.objects, 1), world), world.objects[:, 1])
    with pytest.raises(ConfigError, match=r"^groups: group 1 has no train objects"):
        check(np.where(world.objects[:, 0] == 1, 2, 0), world)  # 0 and 2 used, 1 empty
    with pytest.raises(ConfigError, match=r"shape \(9,\)"):
        check(np.zeros(4, int), world)
    with pytest.raises(ConfigError, match="negative"):
        check(-np.ones(9, int), world)


def test_an_attribute_value_missing_from_train_is_a_group_without_examples():
    world = games.make_world(2, 4, n_objects=3, split="none", seed=1)  # 3 objects cannot show 4 values
    with pytest.raises(ConfigError, match=r"^game.group_attribute=0: value \d of that attribute occurs in no train object"):
        groups_of(world, games.GameConfig(n_attributes=2, n_values=4, n_objects=3, split="none", groups="attribute"))


def test_given_needs_the_groups():
    world = games.make_world(2, 3)
    with pytest.raises(ConfigError, match="game.groups='given'"):
        groups_of(world, games.GameConfig(n_attributes=2, n_values=3, groups="given"))
    assert groups_of(world, games.GameConfig(n_attributes=2, n_values=3)) is None
