"""Faults, silently wrong results (issue 32): a run whose numbers go non-finite stops, keeps its rows, says where.

`train.lr=1e30` makes every run's loss non-finite within its first block of steps; a sweep crosses it with a sane
learning rate, so one cell diverges and the other does not.
"""

from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pandas as pd
import pytest

from lab import cli
from lab.experiment import checkpoint, results
from lab.experiment.sweep import read_results

TINY = ["game.n_attributes=2", "game.n_values=3", "agents.hidden_size=16", "agents.embedding_size=8", "agents.vocab_size=4",
        "agents.max_len=3", "train.batch_size=32", "train.steps=40", "train.eval_every=10"]
SWEEP = """base:
  game: {n_attributes: 2, n_values: 3}
  agents: {hidden_size: 16, embedding_size: 8, vocab_size: 4, max_len: 3}
  train: {steps: 40, eval_every: 10, batch_size: 32}
grid:
  train.lr: [0.003, 1.0e+30]
seeds: 2
"""


@pytest.fixture(scope="module")
def diverged_run(tmp_path_factory):
    """(run dir, exit code, stderr) of `lab run train.lr=1e30`."""
    out = tmp_path_factory.mktemp("diverged") / "run"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(["run", "--out", str(out), "--quiet", *TINY, "train.seeds=2", "train.lr=1e30"])
    return out, code, err.getvalue()


def test_a_diverging_run_exits_3_with_one_line_naming_step_and_quantity(diverged_run):
    """`train.lr=1e30` trained to NaN, wrote a checkpoint of non-finite parameters and exited 0."""
    _, code, err = diverged_run
    lines = err.strip().splitlines()
    assert code == 3 and len(lines) == 1, err
    assert re.search(r"seed \d diverged at step \d+ \((the training loss|the \w+' parameters|the evaluation loss) (is|are) "
                     r"not finite\)", lines[0]), lines[0]


def test_a_diverged_run_keeps_its_rows_up_to_the_divergence(diverged_run):
    out, _, _ = diverged_run
    table = pd.read_parquet(out / "metrics.parquet")
    diverged = results.read_metadata(out / "metrics.parquet")["diverged"]
    assert set(diverged) == {"0", "1"}
    for seed, (step, quantity) in diverged.items():
        rows = table[table["seed"] == int(seed)]
        assert step in (10, 20, 30) and rows["step"].max() == step and "not finite" not in quantity
        assert {0, step} <= set(rows["step"]) and set(rows["split"]) == {"train", "test", "batch"}
    batch = table[(table["split"] == "batch") & (table["metric"] == "loss")]
    assert not np.isfinite(batch["value"]).all()  # written as they are: results.tidy dropped them
    saved = checkpoint.read(out / checkpoint.FILENAME, ["diverged_at"])["diverged_at"]
    assert sorted(saved.tolist()) == sorted(step for step, _ in diverged.values())


def test_the_report_says_the_run_diverged(diverged_run, tmp_path):
    """`lab report` wrote "a generalization gap of nan nats"."""
    out, _, _ = diverged_run
    assert cli.main(["report", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "**Diverged**" in text and "gap of nan" not in text


def test_a_sweep_marks_the_diverged_cell_and_finishes_the_others(tmp_path, capsys):
    sweep, out = tmp_path / "sweep.yaml", tmp_path / "sweep"
    sweep.write_text(SWEEP)
    assert cli.main(["sweep", str(sweep), "--out", str(out), "--quiet"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cell 1 diverged at step" in err[0] and "other cells finished" in err[0], err
    table = read_results(out)
    sane = table[(table["cell"] == 0) & (table["split"] == "train")]
    assert sane["step"].max() == 40 and np.isfinite(sane["value"]).all()
    assert table[table["cell"] == 1]["step"].max() < 40
    assert cli.main(["report", str(out)]) == 0
    assert "**Diverged**: cell 1 diverged" in (out / "report.md").read_text()
    capsys.readouterr()
    assert cli.main(["sweep", str(sweep), "--out", str(out), "--quiet"]) == 3  # resumed: nothing to train, still marked
    assert "finished: 2 of 2 cells" in capsys.readouterr().out
