"""Faults, sizes that cannot fit (issue 32): refused in one line before anything is allocated; a flag insists."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from lab import cli, config
from lab.experiment import run as run_module, sizes
from lab.experiment.sweep import backends


class Reached(Exception):
    """Training was reached: nothing refused the config."""


def reached(*_, **__):
    raise Reached


@pytest.fixture
def no_training(monkeypatch):
    monkeypatch.setattr(run_module, "train", reached)
    monkeypatch.setattr(backends, "train_cells", reached)


def refused(args, capsys, *words) -> str:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        code = cli.main(args)
    finally:
        seconds, (_, peak) = time.perf_counter() - start, tracemalloc.get_traced_memory()
        tracemalloc.stop()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert seconds < 5 and peak < 64 * 2**20, (seconds, peak)  # before the world is listed
    for word in words:
        assert word in err[0], err[0]
    return err[0]


BIG = {
    # numpy MemoryError listing 10^8 objects
    "V^K = 10^8": (["game.n_attributes=8", "game.n_values=10"], ["game.n_attributes=8", "objects to list"]),
    # ran 3 minutes, then a JAX out-of-memory traceback asking for 137 GB
    "V^K = 10^7": (["game.n_attributes=7", "game.n_values=10"], ["GiB of memory", "the evaluation of every object"]),
    # ran without end
    "max_len 1000": (["agents.max_len=1000"], ["agents.max_len=1000", "compile time"]),
    "steps 1e20": (["train.steps=1e20"], ["train.steps", "32-bit"]),
    "steps 1e9": (["train.steps=1000000000"], ["train.steps=1000000000", "games"]),
}


@pytest.mark.parametrize("case", BIG)
def test_a_config_that_cannot_fit_is_refused_before_allocating(case, tmp_path, capsys, no_training):
    overrides, words = BIG[case]
    refused(["run", "--out", str(tmp_path / "out"), *overrides], capsys, *words)
    assert not (tmp_path / "out").exists()


def test_no_size_check_insists(tmp_path, no_training):
    with pytest.raises(Reached):
        cli.main(["run", "--out", str(tmp_path / "out"), "--no-size-check", "game.n_attributes=7", "game.n_values=10"])


def test_a_sweep_with_a_cell_that_cannot_fit_trains_nothing(tmp_path, capsys, no_training):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("grid: {game.n_attributes: [2, 7]}\nbase: {game: {n_values: 10}}\nseeds: 1\n")
    refused(["sweep", str(sweep), "--out", str(tmp_path / "out")], capsys, "cell 1", "GiB of memory")


def test_the_estimate_grows_with_what_costs_memory():
    """The terms grow with their fields; the default config is far below a laptop's memory."""
    base = config.load()
    small = sizes.estimate(base, runs=8, parallel=2)
    assert small.bytes < 2**30
    for overrides, term in [(["game.n_attributes=5", "game.n_values=8"], "the evaluation of every object"),
                            (["train.batch_size=4096"], "the training step's activations"),
                            (["game.n_attributes=5", "game.n_values=8", "train.eval_size=4096"],
                             "topsim and the decomposition's n^2 pairs"),
                            (["agents.hidden_size=1024"], "parameters and Adam's moments"),
                            (["train.steps=15000"], "the table of every evaluation")]:
        bigger = sizes.estimate(config.load(overrides=overrides), runs=8, parallel=2)
        assert bigger.parts[term][0] > 4 * small.parts[term][0], overrides
