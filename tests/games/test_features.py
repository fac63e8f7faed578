"""games.features: referential discrimination over given feature vectors; its files checked at the boundary, its
world, splits and episodes. (Training it: tests/lab/test_features_game.py.)"""

import numpy as np
import pytest

import games
from games.features import MAX_FEATURE_VALUES, compositional_split, read_features, read_labels
from games.fields import ConfigError


def clustered(path, clusters=6, per=4, d=8, seed=0):
    """`per` noisy copies of `clusters` random centres: `[clusters * per, d]` float32, saved to `path`."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d)) * 2.0
    features = (np.repeat(centres, per, axis=0) + 0.3 * rng.normal(size=(clusters * per, d))).astype(np.float32)
    np.save(path, features)
    return features


def attribute_labels(path, n_values=3, per=2):
    """Two attributes of `n_values` values, every combination `per` times: `[n_values^2 * per, 2]`, saved to `path`."""
    labels = np.array([[a, b] for a in range(n_values) for b in range(n_values) for _ in range(per)], np.int64)
    np.save(path, labels)
    return labels


def config(**fields):
    return games.GameConfig(kind="features", **fields)


# -- files ------------------------------------------------------------------------------------------------


def test_a_good_file_reads_as_it_was_saved(tmp_path):
    features = clustered(tmp_path / "f.npy")
    np.testing.assert_array_equal(read_features(str(tmp_path / "f.npy")), features)


def bad(tmp_path, name, write):
    path = tmp_path / name
    write(path)
    return str(path)


@pytest.mark.parametrize("name, write, message", [
    ("missing.npy", lambda p: None, "no such file"),
    ("text.npy", lambda p: p.write_text("not numpy"), "not an .npy file"),
    ("objects.npy", lambda p: np.save(p, np.array([{"a": 1}, None], dtype=object), allow_pickle=True), "never unpickles"),
    ("double.npy", lambda p: np.save(p, np.zeros((4, 3))), "dtype float64; expected float32"),
    ("flat.npy", lambda p: np.save(p, np.zeros(4, np.float32)), "expected a 2-d array"),
    ("one.npy", lambda p: np.save(p, np.zeros((1, 3), np.float32)), "allowed 2.."),
    ("nan.npy", lambda p: np.save(p, np.array([[0.0, np.nan], [np.inf, 1.0]], np.float32)), "2 values are not finite"),
])
def test_a_bad_features_file_is_one_line_naming_the_field(tmp_path, name, write, message):
    path = bad(tmp_path, name, write)
    with pytest.raises(ConfigError, match=message) as error:
        read_features(path)
    assert str(error.value).startswith("game.features=") and "\n" not in str(error.value)


def test_a_file_too_large_is_refused_from_its_header_before_its_data_is_read(tmp_path):
    path = tmp_path / "huge.npy"
    with open(path, "wb") as f:  # a header claiming 2^26 floats, and no data at all
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (1 << 13, 1 << 13)})
    with pytest.raises(ConfigError, match=f"at most {MAX_FEATURE_VALUES} values"):
        read_features(str(path))


@pytest.mark.parametrize("labels, message", [
    (np.zeros((5, 2), np.int32), "5 rows; game.features has 24"),
    (np.full((24, 2), -1), "values in"),
    (np.zeros((24, 2), np.float32), "expected integers"),
])
def test_bad_labels_are_refused(tmp_path, labels, message):
    clustered(tmp_path / "f.npy")
    np.save(tmp_path / "l.npy", labels)
    with pytest.raises(ConfigError, match=message):
        read_labels(str(tmp_path / "l.npy"), 24)


def test_the_config_checks_the_game_section(tmp_path):
    clustered(tmp_path / "f.npy")
    f = str(tmp_path / "f.npy")
    with pytest.raises(ConfigError, match="set game.features"):
        config(split="iid").validate()
    with pytest.raises(ConfigError, match="needs attributes: give game.labels"):
        config(features=f, groups="attribute").validate()
    with pytest.raises(ConfigError, match="draws its distractors uniformly"):
        config(features=f, split="iid", hard_negatives=True).validate()
    with pytest.raises(ConfigError, match="game.n_distractors=30"):
        config(features=f, split="iid", n_distractors=30).validate()
    with pytest.raises(ConfigError, match="the reconstruction game plays attribute-value objects"):
        games.GameConfig(features=f).validate()
    config(features=f, split="iid").validate()


# -- the world --------------------------------------------------------------------------------------------


def test_the_world_is_the_files_rows_split_and_weighted(tmp_path):
    features = clustered(tmp_path / "f.npy")
    world = games.world_of(config(features=str(tmp_path / "f.npy"), split="iid", test_fraction=0.25))
    np.testing.assert_array_equal(world.objects, features)
    assert world.attributes is None and (world.n_attributes, world.n_values) == (0, 0)
    assert len(world.test) == 6 and np.array_equal(np.union1d(world.train, world.test), np.arange(24))
    assert world.train_probs.shape == (18,) and world.train_probs.sum() == pytest.approx(1.0)


def test_without_labels_the_default_split_draws_at_random_as_iid(tmp_path):
    clustered(tmp_path / "f.npy")
    f = str(tmp_path / "f.npy")
    config(features=f).validate()  # game.split=compositional, the default
    default, iid = games.world_of(config(features=f)), games.world_of(config(features=f, split="iid"))
    np.testing.assert_array_equal(default.test, iid.test)
    assert "at random" in games.game_class("features").describe_split(config(features=f))


def test_a_compositional_split_holds_out_whole_label_combinations(tmp_path):
    labels = attribute_labels(tmp_path / "l.npy")
    train, test = compositional_split(labels, 0.25, seed=1)
    assert len(train) + len(test) == len(labels) and len(test) > 0
    seen = {tuple(row) for row in labels[train]}
    assert not any(tuple(row) in seen for row in labels[test])  # test combinations never occur in train
    for k in range(2):
        assert set(labels[train, k]) == set(labels[:, k])  # every value of every attribute stays in train


def test_labels_become_the_worlds_attributes(tmp_path):
    clustered(tmp_path / "f.npy", clusters=9, per=2)
    labels = attribute_labels(tmp_path / "l.npy")
    world = games.world_of(config(features=str(tmp_path / "f.npy"), labels=str(tmp_path / "l.npy")))
    np.testing.assert_array_equal(world.attributes, labels)
    assert (world.n_attributes, world.n_values) == (2, 3)


# -- episodes ---------------------------------------------------------------------------------------------


def test_candidates_are_the_target_and_distinct_referents_of_the_set(tmp_path):
    import jax

    features = clustered(tmp_path / "f.npy")
    cfg = config(features=str(tmp_path / "f.npy"), split="none", n_distractors=4)
    world = games.world_of(cfg)
    game = games.game_of(cfg, world, vocab_size=6, max_len=3)
    assert (game.n_features, game.n_candidates, game.kind) == (8, 5, "features")
    params = game.default_params(world.objects)
    ids = np.arange(200) % 24
    episodes = jax.jit(game.episodes)(jax.random.key(0), params, ids)
    candidates, target = np.asarray(episodes.candidates), np.asarray(episodes.target)
    np.testing.assert_array_equal(target, features[ids])
    np.testing.assert_array_equal(candidates[np.arange(200), np.asarray(episodes.target_index)], target)
    rows = np.argmax(np.all(candidates[:, :, None, :] == features[None, None], axis=-1), axis=-1)  # [200, 5] row of each
    assert all(len(set(r)) == 5 for r in rows)  # distinct referents, the target among them once
    assert len(np.unique(rows)) == 24  # drawn from the whole set
