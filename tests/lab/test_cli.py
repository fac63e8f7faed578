"""`lab run` end to end: the run directory, its tidy table and checkpoint; bad inputs exit 2 and write nothing.

One real run in a subprocess (the installed `lab` command) for the module; the error cases stop
before training and call `lab.cli.main` in process.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import yaml

import games
from lab import checkpoint, cli, config, results
from lab.experiment import io
from lab.experiment.run import read_config

# the YAML file holds the world, the command line the rest: both paths into the config are used
YAML = {"game": {"n_attributes": 2, "n_values": 3}, "agents": {"hidden_size": 32, "embedding_size": 16}}
OVERRIDES = ["agents.vocab_size=8", "agents.max_len=3", "train.batch_size=64", "train.steps=200",
             "train.eval_every=100", "train.seeds=2", "train.seed=3", "train.lr=0.005"]
FILES = {"config.yaml", "metrics.parquet", "checkpoint.npz", io.MARKER}


def lab_command() -> list[str]:
    script = Path(sys.executable).with_name("lab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "lab.cli"]


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("configs") / "tiny.yaml"
    path.write_text(yaml.safe_dump(YAML))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory, config_file):
    """`lab run --overwrite` over a lab folder holding a stale file it wrote: (run_dir, completed process)."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    out.mkdir()
    (out / "stale.txt").write_text("from an earlier run")
    io.mark(out, "run")
    command = lab_command() + ["run", "--out", str(out), "--config", str(config_file), "--overwrite", *OVERRIDES]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return out, done


@pytest.fixture(scope="module")
def expected_config(config_file):
    return config.load(config_file, OVERRIDES)


@pytest.fixture(scope="module")
def table(run):
    return pd.read_parquet(run[0] / "metrics.parquet")


# -- the run directory -----------------------------------------------------------------------------


def test_run_dir_holds_the_three_files_and_nothing_else(run):
    out, _ = run
    assert {p.name for p in out.iterdir()} == FILES  # the stale file went with --overwrite
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no hidden staging directory left


def test_config_yaml_reloads_into_the_same_config(run, expected_config):
    out, _ = run
    assert read_config(out) == expected_config
    assert config.load(out / "config.yaml") == expected_config


def test_metrics_parquet_is_a_tidy_table(table, expected_config):
    t = expected_config.train
    assert list(table.columns[:5]) == results.COLUMNS
    assert set(table["seed"]) == {t.seed, t.seed + 1}
    assert set(table["step"]) == {0, 100, 200}
    assert set(table["split"]) == {"train", "test", "batch"}
    batch = table[table["split"] == "batch"]
    assert set(batch["step"]) == {100, 200} and {"loss", "accuracy", "sender_update_ratio"} <= set(batch["metric"])
    assert {"accuracy", "topsim", "loss"} <= set(table["metric"])
    assert not table.duplicated(["seed", "step", "split", "metric"]).any()
    accuracy = table[(table["metric"] == "accuracy") & (table["split"] != "batch")]["value"]
    assert len(accuracy) == 2 * 3 * 2 and accuracy.between(0, 1).all()


def test_a_summary_is_printed(run):
    _, done = run
    assert "wrote" in done.stdout and "checkpoint.npz" in done.stdout
    for word in ("accuracy mean", "topsim mean", "train", "test", "seeds >= 95%"):
        assert word in done.stdout, (word, done.stdout)


def test_report_splits_the_gap_into_information_and_co_adaptation(run, table, tmp_path):
    out = tmp_path / "tiny"
    shutil.copytree(run[0], out)
    assert cli.main(["report", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "L_info" in text and (out / "figures" / "decomposition.png").is_file()
    assert "mean over 2 seeds; the band is ±1 standard deviation over seeds" in text
    assert "| attribute 1 \\ 2 | attribute 2 = 0 |" in text and "Seed 4:" in text  # two attributes: a lexicon grid per seed
    last = results.final(table)
    mean = lambda split, metric: last[(last["split"] == split) & (last["metric"] == metric)]["value"].mean()  # noqa: E731
    gap = {m: mean("test", m) - mean("train", m) for m in ("loss", "l_info", "l_adapt")}
    assert gap["loss"] == pytest.approx(gap["l_info"] + gap["l_adapt"], abs=1e-4)
    assert f"Of the generalization gap of {gap['loss']:.2f} nats, L_adapt carries {gap['l_adapt']:.2f}" in text


def greedy_accuracy(sender, receiver, objects: np.ndarray) -> float:
    """Reconstruction accuracy of greedy messages, read where each message ends (independent of the trainer's rollout)."""
    objects = jnp.asarray(objects)
    symbols = sender.greedy(objects).symbols  # [n, max_len], 0 after the first EOS
    log_p = receiver.reconstruct(jax.nn.one_hot(symbols, sender.vocab_size))  # [n, max_len, K, V]
    end = games.message_length(symbols) - 1
    guess = jnp.argmax(log_p[jnp.arange(len(objects)), end], axis=-1)  # [n, K]
    return float(jnp.mean(jnp.all(guess == objects, axis=-1)))


def test_checkpoint_gives_the_logged_greedy_accuracy(run, table, expected_config):
    out, _ = run
    g = expected_config.game
    world = games.make_world(g.n_attributes, g.n_values, g.n_objects, g.split, g.test_fraction, g.distribution,
                             g.zipf_exponent, g.seed)
    _, _, seeds = checkpoint.load(out / checkpoint.FILENAME, expected_config)
    np.testing.assert_array_equal(seeds, [3, 4])
    last = table[(table["step"] == expected_config.train.steps) & (table["metric"] == "accuracy") & (table["split"] != "batch")]
    for index, seed in enumerate(seeds):
        sender, receiver = checkpoint.load_agents(out / checkpoint.FILENAME, expected_config, index)
        for split, objects in (("train", world.train_objects), ("test", world.test_objects)):
            logged = last[(last["seed"] == seed) & (last["split"] == split)]["value"].item()
            assert greedy_accuracy(sender, receiver, objects) == pytest.approx(logged, abs=1e-6), (seed, split)


def test_checkpoint_for_another_config_is_refused(run, expected_config):
    out, _ = run
    other = config.replace(expected_config, **{"agents.hidden_size": 16})
    with pytest.raises(ValueError, match="shape"):
        checkpoint.load(out / checkpoint.FILENAME, other)


# -- bad inputs: exit 2, one line naming the field, nothing written --------------------------------

BAD = {
    "unknown key": (["train.learning_rate=0.1"], "train.learning_rate"),
    "unknown section": (["model.depth=2"], "model"),
    "wrong type": (["train.steps=many"], "train.steps"),
    "non-positive size": (["agents.hidden_size=0"], "agents.hidden_size"),
    "max_len 0": (["agents.max_len=0"], "agents.max_len"),
    "test_fraction 0": (["game.test_fraction=0"], "game.test_fraction"),
    "test_fraction 1": (["game.test_fraction=1.0"], "game.test_fraction"),
    "more objects than V^K": (["game.n_objects=10"], "game.n_objects"),
    "unknown game": (["game.kind=negotiation"], "game.kind"),
    "unknown cell": (["agents.cell=rnn"], "agents.cell"),
    "heads that do not divide the width": (["agents.cell=transformer", "agents.heads=3"], "agents.heads"),
    "steps not a multiple of eval_every": (["train.eval_every=150"], "train.eval_every"),
    "malformed override": (["train.lr"], "train.lr"),
    "unknown pairing": (["population.pairing=tournament"], "population.pairing"),
    "no receivers": (["population.n_receivers=0"], "population.n_receivers"),
    "ideal with gumbel": (["train.reward=ideal", "train.mode=gumbel"], "train.reward"),
}


def assert_nothing_written(parent: Path):
    assert list(parent.iterdir()) == [], [p.name for p in parent.iterdir()]


@pytest.mark.parametrize("bad, field", BAD.values(), ids=BAD.keys())
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, config_file, bad, field):
    parent = tmp_path / "runs"
    parent.mkdir()
    code = cli.main(["run", "--out", str(parent / "bad"), "--config", str(config_file), "--quiet", *OVERRIDES, *bad])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and field in lines[0], captured.err
    assert captured.out == ""
    assert_nothing_written(parent)


def test_missing_config_file_exits_2(tmp_path, capsys):
    code = cli.main(["run", "--out", str(tmp_path / "bad"), "--config", str(tmp_path / "nope.yaml")])
    assert code == 2 and "nope.yaml" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_bad_input_through_the_installed_command(tmp_path, config_file):
    out = tmp_path / "bad"
    command = lab_command() + ["run", "--out", str(out), "--config", str(config_file), *OVERRIDES, "agents.cell=rnn"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "agents.cell" in lines[0] and "gru" in lines[0], done.stderr
    assert list(tmp_path.iterdir()) == []


# -- an existing directory -------------------------------------------------------------------------


def test_existing_run_dir_is_kept_without_overwrite(tmp_path, capsys, run, config_file):
    out = tmp_path / "existing"
    shutil.copytree(run[0], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code = cli.main(["run", "--out", str(out), "--config", str(config_file), "--quiet", *OVERRIDES])
    err = capsys.readouterr().err
    assert code == 2 and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["existing"]


def test_out_that_is_a_file_exits_2(tmp_path, capsys):
    out = tmp_path / "file"
    out.write_text("not a directory")
    assert cli.main(["run", "--out", str(out), "--quiet", *OVERRIDES]) == 2
    assert "file" in capsys.readouterr().err
    assert out.read_text() == "not a directory"


def test_a_population_run_writes_sender_and_receiver_columns(tmp_path, config_file):
    """`interventions.reset=true population.n_senders=2 population.n_receivers=3` is a valid run (few steps)."""
    out = tmp_path / "population"
    assert cli.main(["run", "--out", str(out), "--config", str(config_file), "--quiet", *OVERRIDES, "train.steps=20", "train.eval_every=10",
                     "interventions.reset=true", "interventions.reset_every=10", "interventions.refit_steps=20",
                     "population.n_senders=2", "population.n_receivers=3"]) == 0
    table = pd.read_parquet(out / "metrics.parquet")
    pairs = table[(table.metric == "accuracy") & (table.split == "train")]
    assert set(zip(pairs.sender, pairs.receiver)) == {(s, r) for s in range(2) for r in range(3)}
    cfg = read_config(out)
    sender, receiver = checkpoint.load_agents(out / checkpoint.FILENAME, cfg, index=1, sender=1, receiver=2)
    assert sender.vocab_size == cfg.agents.vocab_size
