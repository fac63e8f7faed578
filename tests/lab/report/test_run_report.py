"""`lab report RUN` shows the game, the training and the language: one tiny run of one seed, three attributes."""

import re

import pandas as pd
import pytest

import games
from lab import cli, config
from lab.experiment.run import run as lab_run

OVERRIDES = ["game.n_attributes=3", "game.n_values=2", "agents.vocab_size=6", "agents.max_len=4", "agents.hidden_size=32",
             "agents.embedding_size=16", "train.steps=100", "train.eval_every=50", "train.seeds=1", "train.seed=5",
             "train.batch_size=32"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "r"
    lab_run(config.load(overrides=OVERRIDES), out, progress=False)
    assert cli.main(["report", str(out)]) == 0
    return out, (out / "report.md").read_text()


def test_the_title_says_the_game_not_the_folder(report):
    _, text = report
    first = text.splitlines()[0]
    assert first == "# Reconstruction game, 3 attributes x 2 values: 1 seed, 100 training steps"
    assert "numbered 1 to 3" in text and "100 steps of 32 games" in text and "**Seeds.** 5:" in text


def test_one_seed_gets_no_spread_and_an_honest_caption(report):
    _, text = report
    assert "nan" not in text.lower() and " std" not in text and "±1 std" not in text
    assert "one seed: a single run, so no spread over seeds is shown" in text
    assert "Final evaluation (one seed" in text and "| objects | accuracy | topsim |" in text


def test_every_column_is_explained(report):
    _, text = report
    for column in ("accuracy", "topsim", "posdis", "loss", "context independence", "TRE", "words"):
        assert f"* **{column}**:" in text, column


def test_the_lexicon_lists_every_object_with_held_out_marked(report):
    out, text = report
    world = games.world_of(config.load(overrides=OVERRIDES).game)
    lexicon = pd.read_csv(out / "lexicon.csv")
    assert len(lexicon) == len(world.objects) and set(lexicon["seed"]) == {5}
    assert lexicon["held_out"].sum() == len(world.test)
    assert {"object", "attribute 1", "attribute 2", "attribute 3", "message", "held_out"} <= set(lexicon.columns)
    assert lexicon["message"].str.fullmatch(r"[a-e]+|\(silence\)").all()  # letters, never digits
    rows = [line for line in text.splitlines() if re.match(r"\| \d \d \d \|", line)]
    assert len(rows) == len(world.objects)
    assert sum(line.split("|")[2].strip() == "*" for line in rows) == len(world.test)
    assert "| seed | words | topsim | posdis | bosdis | context independence | TRE |" in text
