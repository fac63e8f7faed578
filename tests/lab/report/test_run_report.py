"""`lab report RUN` shows the game, the training and the language, and `lab export` shares it: one tiny run of one seed."""

import json
import re

import pandas as pd
import pytest
import yaml

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


# -- lab export: the same language as an ELCC-style corpus ----------------------------------------


def test_export_writes_one_corpus_per_seed_with_meanings(report, tmp_path):
    out, _ = report
    corpus = tmp_path / "corpus"
    assert cli.main(["export", str(out), "--format", "elcc", "--out", str(corpus)]) == 0
    assert yaml.safe_load((corpus / "metadata.yml").read_text())["variants"] == {"seed-5": {"seed": 5}}
    folder = corpus / "data" / "seed-5"
    utterances = [json.loads(line) for line in (folder / "corpus.jsonl").read_text().splitlines()]
    structured = [json.loads(line) for line in (folder / "corpus.structured.jsonl").read_text().splitlines()]
    lexicon = pd.read_csv(out / "lexicon.csv")
    assert len(utterances) == len(structured) == len(lexicon)
    for u, s, (_, row) in zip(utterances, structured, lexicon.iterrows()):
        assert all(isinstance(t, int) and 1 <= t < 6 for t in u)  # symbols only: no EOS, no padding
        assert s["utterance"] == u and s["word"] == row["message"] and s["held_out"] == row["held_out"]
        assert " ".join(map(str, s["object"])) == row["object"] and s["attributes"]["1"] == row["attribute 1"]
    meta = json.loads((folder / "metadata.json").read_text())
    tokens = [t for u in utterances for t in u]
    assert meta["analysis"]["n_utterances"] == len(utterances) and meta["analysis"]["n_tokens"] == len(tokens)
    assert meta["analysis"]["n_unique_tokens"] == len(set(tokens)) and meta["config"]["train"]["seed"] == 5
    assert set(meta["language"]) == {"topsim", "posdis", "bosdis", "context_independence", "tree_reconstruction_error"}


def test_export_samples_utterances_of_trained_objects_and_refuses_bad_input(report, tmp_path, capsys):
    out, _ = report
    corpus = tmp_path / "sampled"
    assert cli.main(["export", str(out), "--out", str(corpus), "--utterances", "40"]) == 0
    lines = [json.loads(line) for line in (corpus / "data" / "seed-5" / "corpus.structured.jsonl").read_text().splitlines()]
    assert len(lines) == 40 and not any(line["held_out"] for line in lines)
    assert cli.main(["export", str(out), "--out", str(corpus), "--utterances", "40"]) == 2  # not empty: kept
    assert cli.main(["export", str(out), "--out", str(tmp_path / "x"), "--format", "csv"]) == 2
    assert "allowed values are elcc" in capsys.readouterr().err and not (tmp_path / "x").exists()


@pytest.mark.parametrize("overrides, said, unsaid", [
    ([], "GRU networks with", "transformer"),
    (["agents.cell=transformer", "agents.layers=2"], "transformer networks (2 blocks of width", "hidden units"),
])
def test_the_report_names_the_agents_architecture(overrides, said, unsaid, tmp_path):
    from lab.report.run import describe_run

    text = "\n".join(describe_run(config.load(overrides=overrides), [0], 64, 8, tmp_path))
    assert said in text and unsaid not in text
