"""The features game trained from the command line: `lab run game.kind=features game.features=F.npy` learns to
discriminate synthetic clustered feature vectors well above chance in every seed; with labels the evaluation
reports the language metrics; a bad file exits 2 with one line and writes nothing.

One run for the module (3 seeds, 200 steps): 9 clusters of 4 noisy copies, one per combination of two
attributes of 3 values (the labels), 36 referents split compositionally on the labels (held-out combinations),
4 distractors: chance is 1/5.
"""

import numpy as np
import pandas as pd
import pytest

from lab import cli

CHANCE = 1 / 5
RUN = ["game.kind=features", "game.n_distractors=4", "agents.hidden_size=32", "agents.embedding_size=16",
       "agents.vocab_size=8", "agents.max_len=3", "train.batch_size=64", "train.steps=200", "train.eval_every=100",
       "train.seeds=3", "--quiet"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("features")
    rng = np.random.default_rng(0)
    labels = np.array([[a, b] for a in range(3) for b in range(3) for _ in range(4)], np.int32)  # [36, 2]
    centres = rng.normal(size=(9, 16)) * 2.0
    features = (centres[labels[:, 0] * 3 + labels[:, 1]] + 0.3 * rng.normal(size=(36, 16))).astype(np.float32)
    np.save(folder / "features.npy", features)
    np.save(folder / "labels.npy", labels)
    return folder / "features.npy", folder / "labels.npy"


@pytest.fixture(scope="module")
def table(files, tmp_path_factory):
    features, labels = files
    out = tmp_path_factory.mktemp("runs") / "features"
    assert cli.main(["run", "--out", str(out), f"game.features={features}", f"game.labels={labels}", *RUN]) == 0
    return pd.read_parquet(out / "metrics.parquet")


def last(table, split, metric):
    rows = table[(table.split == split) & (table.metric == metric) & (table.step == table.step.max())]
    return rows.sort_values("seed")["value"].to_numpy()


def test_it_learns_well_above_chance_in_every_seed(table):
    accuracy = last(table, "train", "accuracy")
    assert len(accuracy) == 3
    assert np.all(accuracy > CHANCE + 0.3), accuracy  # each seed at least 0.5 where chance is 0.2
    assert accuracy.mean() > 0.65, accuracy
    first = table[(table.split == "train") & (table.metric == "accuracy") & (table.step == 0)]["value"]
    assert first.mean() < 0.4  # it started near chance: the rise is learning


def test_labels_give_the_language_metrics(table):
    for metric in ("topsim", "posdis", "bosdis"):
        values = last(table, "train", metric)
        assert len(values) == 3 and np.all(np.isfinite(values)), metric
    assert "l_info" not in set(table.metric)  # a referential game's loss does not decompose (games.lewis)
    assert "attribute_accuracy" not in set(table.metric)


def test_the_readme_command_runs_without_labels(files, tmp_path, capsys):
    """`lab run --out D game.kind=features game.features=F.npy`: the default split draws the held-out rows at random."""
    features, _ = files
    out = tmp_path / "run"
    assert cli.main(["run", "--out", str(out), "game.kind=features", f"game.features={features}", "train.steps=10",
                     "train.eval_every=10", "train.seeds=1", "--quiet"]) == 0
    table = pd.read_parquet(out / "metrics.parquet")
    assert {"accuracy", "loss", "message_length"} <= set(table.metric)
    assert not {"topsim", "posdis", "bosdis"} & set(table.metric)  # no labels, no attributes to measure the language by
    assert "accuracy" in capsys.readouterr().out
    assert cli.main(["report", str(out)]) == 0  # the report names the referents by their rows, measures words only
    text = (out / "report.md").read_text()
    assert "Features game, feature vectors of 16 numbers" in text and "| row 0 |" in text
    lexicon = pd.read_csv(out / "lexicon.csv")
    assert len(lexicon) == 36 and not any(c.startswith("attribute") for c in lexicon.columns)
    capsys.readouterr()
    assert cli.main(["export", str(out), "--out", str(tmp_path / "corpus")]) == 2  # a corpus of objects: refused, one line
    err = capsys.readouterr().err.strip()
    assert "feature vectors" in err and "\n" not in err and not (tmp_path / "corpus").exists()


def test_a_bad_file_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "double.npy"
    np.save(path, np.zeros((8, 4)))
    out = tmp_path / "run"
    assert cli.main(["run", "--out", str(out), f"game.features={path}", *RUN]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "game.features=" in err and "float32" in err
    assert not out.exists()
