"""Faults, data loss (issue 32): where the lab writes, what `--overwrite` may delete, and what a kill leaves.

Each test is one fault a tester reproduced on the lab before it was fixed; the commands that must stop before
training call `lab.cli.main` in process with training replaced by a function that fails the test.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from lab import cli
from lab.experiment import io, run as run_module
from lab.experiment.sweep import backends, read_results

TINY = ["game.n_attributes=2", "game.n_values=3", "agents.hidden_size=16", "agents.embedding_size=8", "agents.vocab_size=4",
        "agents.max_len=3", "train.batch_size=32", "train.steps=20", "train.eval_every=10", "train.seeds=1"]
SWEEP = """base:
  game: {n_attributes: 2, n_values: 3}
  agents: {hidden_size: 16, embedding_size: 8, vocab_size: 4, max_len: 3}
  train: {steps: 20, eval_every: 10, batch_size: 32}
grid:
  train.lr: [%s]
seeds: 1
"""


def never(*_, **__):
    raise AssertionError("training started")


@pytest.fixture
def no_training(monkeypatch):
    monkeypatch.setattr(run_module, "train", never)
    monkeypatch.setattr(backends, "train_cells", never)


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# the root only with `lab run`: before the fix, `lab sweep --out / --overwrite` deleted before it trained
CASES = [("run", "."), ("run", ".."), ("run", "HOME"), ("run", "/"), ("sweep", "."), ("sweep", ".."), ("sweep", "HOME")]


@pytest.mark.parametrize("command, where", CASES, ids=[f"{c} {w}" for c, w in CASES])
def test_the_current_directory_home_and_root_survive_overwrite(command, where, tmp_path, monkeypatch, capsys, no_training):
    """`lab run --out . --overwrite` deleted every file of the current directory (so did `..`, `~`, `/`)."""
    home, cwd = tmp_path / "home", tmp_path / "home" / "work"
    cwd.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    where = str(home) if where == "HOME" else where
    (cwd / "notes.txt").write_text("mine")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(SWEEP % "0.003")
    args = ["run", "--out", where, "--overwrite", *TINY] if command == "run" else ["sweep", str(sweep), "--out", where, "--overwrite"]
    assert cli.main(args) == 2
    assert "choose a new folder" in one_line(capsys)
    assert (cwd / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in cwd.iterdir()) == ["notes.txt"] and sorted(p.name for p in home.iterdir()) == ["work"]


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_overwrite_deletes_only_a_folder_the_lab_wrote(command, tmp_path, capsys, no_training):
    """`--overwrite` replaced any folder; now only one with the lab's marker, holding nothing the lab did not write."""
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(SWEEP % "0.003")
    out = tmp_path / "data"
    out.mkdir()
    (out / "thesis.tex").write_text("mine")
    args = ["run", "--out", str(out), "--overwrite", *TINY] if command == "run" else ["sweep", str(sweep), "--out", str(out), "--overwrite"]
    assert cli.main(args) == 2
    assert "not written by the lab" in one_line(capsys)
    io.mark(out, "run", [])  # a lab folder into which the person put a file of their own
    assert cli.main(args) == 2
    assert "'thesis.tex', which the lab did not write" in one_line(capsys)
    assert (out / "thesis.tex").read_text() == "mine"


def test_a_run_into_a_file_path_fails_before_training(tmp_path, capsys, no_training):
    """`--out FILE/sub` failed after training with a traceback, and the results were lost."""
    (tmp_path / "file").write_text("x")
    assert cli.main(["run", "--out", str(tmp_path / "file" / "sub"), *TINY]) == 2
    assert "is a file, not a folder" in one_line(capsys)


def test_the_destination_is_checked_again_when_the_run_is_moved_into_place(tmp_path, monkeypatch, capsys):
    """A run without --overwrite replaced what another process had written to --out while it trained."""
    out = tmp_path / "run"
    train = run_module.train

    def train_while_another_writes(*args, **kwargs):
        out.mkdir()
        (out / "theirs.txt").write_text("written meanwhile")
        return train(*args, **kwargs)

    monkeypatch.setattr(run_module, "train", train_while_another_writes)
    assert cli.main(["run", "--out", str(out), "--quiet", *TINY]) == 2
    assert "results are in" in one_line(capsys)
    assert sorted(p.name for p in out.iterdir()) == ["theirs.txt"]
    moved = tmp_path / "run-2"
    assert {"config.yaml", "metrics.parquet", "checkpoint.npz"} <= {p.name for p in moved.iterdir()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "run-2"]  # no lock, no partial folder


def test_what_a_kill_between_the_renames_left_is_recovered_or_removed(tmp_path, capsys, no_training):
    """A SIGKILL between removing the old run and renaming the new one left a hidden `.X.partial-*` nobody reported."""
    out = tmp_path / "run"
    finished = tmp_path / ".run.partial-abc"
    finished.mkdir()
    (finished / "metrics.parquet").write_text("the finished run")
    io.mark(finished, "run")
    unfinished = tmp_path / ".run.partial-def"
    unfinished.mkdir()
    (unfinished / "metrics.parquet").write_text("half")
    replaced = tmp_path / ".run.old-ghi"
    replaced.mkdir()
    assert cli.main(["run", "--out", str(out), *TINY]) == 2  # recovered, so --out now exists
    err = capsys.readouterr().err
    assert f"recovered '{out}'" in err and ".run.partial-def" in err and ".run.old-ghi" in err
    assert (out / "metrics.parquet").read_text() == "the finished run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_files_and_folders_follow_the_umask(tmp_path):
    """Run folders were 0700 and parquet/npz files 0600 (mkdtemp, mkstemp) while config.yaml was 0644."""
    out = tmp_path / "run"
    assert cli.main(["run", "--out", str(out), "--quiet", *TINY]) == 0
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~mask
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path.name


# `lab sweep` in a process that waits, after its first evaluation block, until the file argv[1] exists: sweep A
# stays mid-training while the test starts sweep B on the same folder.
PAUSED_SWEEP = """
import sys, time
from pathlib import Path
from lab.cli import main
from lab.experiment.sweep import backends
train_cells, release = backends.train_cells, Path(sys.argv[1])

def paused(cells, keys, size=None, on_block=None):
    def wait(*_):
        Path(str(release) + ".waiting").touch()
        while not release.exists():
            time.sleep(0.05)
    return train_cells(cells, keys, size, on_block=wait)

backends.train_cells = paused
sys.exit(main(sys.argv[2:]))
"""


def test_a_sweep_overwriting_a_running_one_is_refused(tmp_path):
    """`lab sweep B --out D --overwrite` while sweep A ran into D: both exited 0 and D held B's manifest with A's cells."""
    a, b, out, release = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "sweep", tmp_path / "release"
    a.write_text(SWEEP % "0.003")
    b.write_text(SWEEP % "0.01")
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    first = subprocess.Popen([sys.executable, "-c", PAUSED_SWEEP, str(release), "sweep", str(a), "--out", str(out), "--quiet"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not Path(str(release) + ".waiting").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.05)
        second = subprocess.run([sys.executable, "-m", "lab.cli", "sweep", str(b), "--out", str(out), "--overwrite", "--quiet"],
                                env=env, capture_output=True, text=True, timeout=300)
    finally:
        release.touch()
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 2 and "another lab command is writing" in second.stderr, second.stderr
    table = read_results(out)
    assert set(table["train.lr"]) == {0.003}
    assert "0.003" in (out / "sweep.yaml").read_text()


def test_a_part_written_for_another_config_is_recomputed(tmp_path, capsys):
    """`store.check_part` checked the cell number and seeds, not the cell's config: B's rerun counted A's parts."""
    a, b, out = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "sweep"
    a.write_text(SWEEP % "0.003")
    b.write_text(SWEEP % "0.01")
    assert cli.main(["sweep", str(a), "--out", str(out), "--quiet"]) == 0
    first = read_results(out)
    other = tmp_path / "other"
    assert cli.main(["sweep", str(b), "--out", str(other), "--quiet"]) == 0
    for name in ("manifest.json", "sweep.yaml"):  # B's plan over A's cells, as the interleaved sweeps left them
        (out / name).write_bytes((other / name).read_bytes())
    capsys.readouterr()
    assert cli.main(["sweep", str(b), "--out", str(out), "--quiet"]) == 0
    assert "holds the rows of another config" in capsys.readouterr().err
    table = read_results(out)
    assert set(table["train.lr"]) == {0.01}
    pd.testing.assert_frame_equal(table, read_results(other))
    assert not first["value"].equals(table["value"])


def test_a_damaged_checkpoint_is_not_a_finished_cell(tmp_path, capsys):
    """A sweep cell whose checkpoint.npz was truncated counted as finished."""
    sweep, out = tmp_path / "a.yaml", tmp_path / "sweep"
    sweep.write_text(SWEEP % "0.003")
    assert cli.main(["sweep", str(sweep), "--out", str(out), "--quiet"]) == 0
    saved = out / "cells" / "000000" / "checkpoint.npz"
    whole = saved.read_bytes()
    saved.write_bytes(whole[: len(whole) // 2])
    capsys.readouterr()
    assert cli.main(["sweep", str(sweep), "--out", str(out), "--quiet"]) == 0
    assert "checkpoint.npz of cell 0 is damaged" in capsys.readouterr().err
    assert saved.read_bytes() == whole  # recomputed: the same numbers
