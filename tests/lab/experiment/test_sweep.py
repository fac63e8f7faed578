"""lab sweep: plans and compile groups, the store, resume after a kill, bad input, Ray, reports.

Training runs in `lab` subprocesses sharing one JAX compilation cache, so the tiny sweep
(2 compile groups of 4 runs) compiles twice for the whole module; every later run of the
same shapes (resumes, `lab run` of a cell's config with 4 seeds, Ray workers) loads it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest

from lab import checkpoint, results
from lab.cli import main
from lab.core.hparams import continuous_keys, hparams_from_config
from lab.experiment.config import Config, ConfigError, load
from lab.experiment.sweep import chunks, load_plan, make_plan, open_store, read_manifest, read_results, run_sweep, static_key
from lab.experiment.grid import SEED_FIELDS

ROOT = Path(__file__).resolve().parents[3]
TINY = ROOT / "sweeps" / "tiny.yaml"
TINY_BASE = {"game": {"n_attributes": 2, "n_values": 3}, "agents": {"hidden_size": 16},
             "train": {"steps": 20, "eval_every": 10, "batch_size": 32}}
ROW_KEYS = ["cell", "agents.cell", "train.lr", *results.COLUMNS[:-1]]


def lab(*args, env, timeout=400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab.cli", *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout)


def same_rows(a: pd.DataFrame, b: pd.DataFrame, keys) -> None:
    """Equal tables up to row order: same keys, bit-identical values (CPU runs are deterministic)."""
    a = a.sort_values(keys).reset_index(drop=True)
    b = b.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[list(b.columns)], b, check_exact=True)
    assert not a.duplicated(keys).any()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp("jax_cache")), JAX_PLATFORMS="cpu")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, env):
    """The tiny sweep run once without interruption: (DIR, table)."""
    out = tmp_path_factory.mktemp("reference") / "sweep"
    proc = lab("sweep", TINY, "--out", out, "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "4 cells x 2 seeds = 8 runs in 2 compile groups" in proc.stdout  # the plan comes first
    return out, read_results(out)


# -- plans ------------------------------------------------------------------------------------

def test_cells_are_the_product_grouped_by_static_fields():
    plan = make_plan({"base": TINY_BASE, "seeds": 3,
                      "grid": {"train.lr": [1e-3, 3e-3, 1e-2], "agents.hidden_size": [8, 16], "train.entropy_coeff": [0.0, 0.1]}})
    assert len(plan.cells) == 12 and plan.n_runs == 36
    assert plan.keys == ("train.lr", "agents.hidden_size", "train.entropy_coeff")
    assert [c.values["train.entropy_coeff"] for c in plan.cells[:2]] == [0.0, 0.1]  # last key varies fastest
    assert len(plan.groups) == 2 and plan.group_fields == ("agents.hidden_size",)
    for members in plan.groups:
        cells = [plan.cells[i] for i in members]
        assert len({c.config.agents.hidden_size for c in cells}) == 1
        assert len({(c.config.train.lr, c.config.train.entropy_coeff) for c in cells}) == 6
    for cell in plan.cells:
        assert cell.config.train.seeds == 3 and list(cell.seeds) == [0, 1, 2]
        assert cell.values == {k: getattr(getattr(cell.config, k.split(".")[0]), k.split(".")[1]) for k in plan.keys}


def test_sixty_four_runs_of_one_static_config_are_one_compiled_call():
    plan = load_plan(ROOT / "sweeps" / "lr_seeds.yaml")
    assert len(plan.cells) == 8 and plan.n_runs == 64 and len(plan.groups) == 1
    calls = chunks(plan, {c.index for c in plan.cells})
    assert len(calls) == 1 and len(calls[0][0]) == 8 and calls[0][1] == 64


def test_chunks_hold_unfinished_cells_and_share_one_padded_size():
    plan = make_plan({"base": TINY_BASE, "seeds": 2, "grid": {"train.lr": [1e-3, 2e-3, 3e-3, 4e-3, 5e-3]}})
    calls = chunks(plan, {0, 1, 3, 4}, chunk=3)
    assert [[c.index for c in cells] for cells, _ in calls] == [[0, 1, 3], [4]]
    assert [size for _, size in calls] == [6, 6]  # the last call is padded to the first's shape


def test_continuous_fields_vary_inside_one_compile_group():
    base = ["interventions.ema=true"]  # merge.kl_beta > 0 needs the EMA anchor
    config = load(overrides=base)
    for key in continuous_keys(Config):  # each reaches the trainer through Hparams, and leaves the compile group alone
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        changed = load(overrides=base + [f"{key}={value / 2 if 0 < value <= 1 else value * 2 + 0.5}"])  # some live in (0, 1]
        assert static_key(changed) == static_key(config), key
        pairs = zip(jax.tree.leaves(hparams_from_config(config)), jax.tree.leaves(hparams_from_config(changed)))
        assert any(not np.array_equal(x, y) for x, y in pairs), key
    for key in SEED_FIELDS:
        assert static_key(load(overrides=base + [f"{key}=3"])) == static_key(config), key
    assert static_key(load(overrides=base + ["agents.hidden_size=8"])) != static_key(config)


# -- bad input ----------------------------------------------------------------------------------

BAD = {
    "malformed YAML": ("grid: {train.lr: [0.1, 0.2}\n", "not valid YAML"),
    "unknown sweep key": ("gird: {train.lr: [0.1]}\n", "unknown key 'gird'"),
    "unknown config key": ("grid: {train.lrr: [0.1]}\n", "unknown config key 'train.lrr'"),
    "unknown key in configs": ("configs: [{agents.size: 3}]\n", "unknown config key 'agents.size'"),
    "empty grid list": ("grid: {train.lr: []}\n", "grid train.lr: empty list"),
    "empty grid": ("grid: {}\n", "nothing to sweep"),
    "wrong type": ("grid: {train.lr: [0.1, fast]}\n", "train.lr='fast': expected float"),
    "bad choice": ("grid: {agents.cell: [gru, rnn]}\n", "allowed values are gru, lstm, transformer"),
    "bad seeds": ("grid: {train.lr: [0.1]}\nseeds: two\n", "seeds='two'"),
    "duplicate cells": ("grid: {train.lr: [0.1, 0.1]}\n", "cells 0 and 1 have the same config"),
    "key in grid and configs": ("grid: {train.lr: [0.1]}\nconfigs: [{train.lr: 0.2}]\n", "the grid also sweeps"),
    "invalid combination": ("base: {train: {steps: 25, eval_every: 10}}\ngrid: {train.lr: [0.1]}\n", "multiple of"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_sweep_files_are_one_line_errors_with_exit_code_2(case, tmp_path, capsys):
    text, fragment = BAD[case]
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert fragment in err and str(path) in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_missing_sweep_file(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and err.count("\n") == 1


def test_dry_run_prints_the_plan_only(tmp_path, capsys):
    assert main(["sweep", str(TINY), "--dry-run", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "4 cells x 2 seeds = 8 runs in 2 compile groups" in out and "group 1: 2 cells, 4 runs  agents.cell=lstm" in out
    assert not (tmp_path / "out").exists()


def test_ray_backend_without_ray_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(ConfigError, match=r"needs Ray: pip install 'lewis-lab\[ray\]'"):
        run_sweep(load_plan(TINY), tmp_path / "out", backend="ray")
    assert not (tmp_path / "out").exists()


# -- the store ------------------------------------------------------------------------------------

def test_store_is_one_parquet_dataset_with_configs_and_checkpoints(reference):
    out, table = reference
    assert list(table.columns) == ["cell", "agents.cell", "train.lr", *results.COLUMNS]
    assert pd.read_parquet(out / "metrics").shape == table.shape  # one line reads it all
    n_metrics = table.groupby("split")["metric"].nunique()
    evaluations = {"train": 3, "test": 3, "batch": 2}  # the training statistics start after the first block
    assert len(table) == sum(4 * 2 * evaluations[split] * n for split, n in n_metrics.items())  # cells x seeds x evaluations x metrics
    assert not table.duplicated(ROW_KEYS).any()
    plan = load_plan(TINY)
    for cell in plan.cells:
        rows = table[table["cell"] == cell.index]
        assert set(rows["seed"]) == {0, 1} and set(rows["step"]) == {0, 10, 20}
        assert (rows["agents.cell"] == cell.config.agents.cell).all() and (rows["train.lr"] == cell.config.train.lr).all()
        folder = out / "cells" / cell.name
        assert load(folder / "config.yaml") == cell.config
        sender, receiver, seeds = checkpoint.load(folder / checkpoint.FILENAME, cell.config)  # allow_pickle=False
        assert list(seeds) == [0, 1] and all(leaf.shape[0] == 2 for leaf in jax.tree.leaves((sender, receiver)))
    manifest = read_manifest(out)
    assert manifest["digest"] == plan.digest and [g["cells"] for g in manifest["groups"]] == [[0, 1], [2, 3]]
    suffixes = {p.suffix for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    assert suffixes <= {".parquet", ".npz", ".yaml", ".json", ".png", ".md"}  # nothing pickled
    accuracy = table[table["metric"] == "accuracy"]["value"]
    assert accuracy.between(0, 1).all()


def test_a_cell_equals_lab_run_of_its_config(tmp_path, env, reference, capsys):
    out, table = reference
    run_dir = tmp_path / "run"
    # 4 seeds: the shape of the cell's compile group (2 cells x 2 seeds), so the compiled call is reused
    proc = lab("run", "--config", out / "cells" / "000001" / "config.yaml", "train.seeds=4", "--out", run_dir, "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    run = pd.read_parquet(run_dir / "metrics.parquet")
    cell = table[table["cell"] == 1][results.COLUMNS]
    same_rows(run[run["seed"].isin([0, 1])].reset_index(drop=True), cell.reset_index(drop=True), results.COLUMNS[:-1])
    assert main(["report", str(run_dir)]) == 0 and (run_dir / "report.md").is_file()  # a run directory still reports


# `lab sweep` in a process that signals itself after the first evaluation block of its second compiled
# call: the first group is stored, the second is mid-training. A signal sent from outside at a polled
# moment would race the second group, which a warm cache finishes in well under a second.
KILLED_SWEEP = """
import os, sys
from lab.cli import main
from lab.experiment.sweep import backends
train_cells, calls = backends.train_cells, []

def signalled(cells, keys, size=None, on_block=None):
    calls.append(len(cells))
    if len(calls) < 2:
        return train_cells(cells, keys, size, on_block=on_block)
    return train_cells(cells, keys, size, on_block=lambda *_: os.kill(os.getpid(), int(sys.argv[1])))

backends.train_cells = signalled
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_killed_sweep_resumes_to_the_rows_of_an_uninterrupted_one(sig, tmp_path, env, reference):
    out = tmp_path / "sweep"
    proc = subprocess.run([sys.executable, "-c", KILLED_SWEEP, str(int(sig)), "sweep", str(TINY), "--out", str(out), "--quiet"],
                          env=env, capture_output=True, text=True, timeout=400)
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "run the same command to resume" in proc.stderr, proc.stderr
    else:
        assert proc.returncode == -signal.SIGKILL, proc.stderr
    group0 = [out / "metrics" / f"cell-00000{i}.parquet" for i in (0, 1)]
    assert sorted(p.name for p in (out / "metrics").glob("cell-*")) == [p.name for p in group0]  # killed mid-way
    written = {p: p.stat().st_mtime_ns for p in group0}

    resumed = lab("sweep", TINY, "--out", out, "--quiet", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "finished: 2 of 4 cells; 2 to run" in resumed.stdout
    assert {p: p.stat().st_mtime_ns for p in group0} == written  # finished cells are not recomputed
    same_rows(read_results(out), reference[1], ROW_KEYS)
    assert not [p for p in (out / "metrics").iterdir() if p.name.startswith(".")]


def test_a_changed_sweep_file_is_refused_unless_overwrite(tmp_path, reference, capsys):
    out = shutil.copytree(reference[0], tmp_path / "sweep")
    before = snapshot(out)
    changed = tmp_path / "changed.yaml"
    changed.write_text(TINY.read_text().replace("[0.003, 0.01]", "[0.003, 0.03]"))
    assert main(["sweep", str(changed), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "different sweep file" in err and "--overwrite" in err and err.count("\n") == 1
    assert snapshot(out) == before  # nothing finished is lost
    plan = load_plan(changed)
    open_store(plan, out, overwrite=True)
    assert read_manifest(out)["digest"] == plan.digest and not list((out / "metrics").iterdir())


def test_corrupt_parts_are_reported_and_recomputed(tmp_path, env, reference, capsys):
    out = shutil.copytree(reference[0], tmp_path / "sweep")
    (out / "metrics" / "cell-000002.parquet").write_bytes(b"not parquet at all")
    part = out / "metrics" / "cell-000003.parquet"
    part.write_bytes(part.read_bytes()[:200])  # truncated by a crash of the disk, say
    kept = {p: p.stat().st_mtime_ns for p in (out / "metrics").glob("cell-00000[01].parquet")}

    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cell-000002.parquet" in err and "lab sweep" in err and err.count("\n") == 1

    proc = lab("sweep", TINY, "--out", out, "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "cell 2: cell-000002.parquet is not readable parquet" in proc.stderr and "cell 3:" in proc.stderr
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    same_rows(read_results(out), reference[1], ROW_KEYS)


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # Ray starts its processes by fork + exec
def test_ray_backend_gives_the_local_table(tmp_path, env, reference):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"JAX_COMPILATION_CACHE_DIR": env["JAX_COMPILATION_CACHE_DIR"], "JAX_PLATFORMS": "cpu"}})
    try:
        table = run_sweep(load_plan(TINY), tmp_path / "ray", backend="ray", progress=False, log=lambda _: None)
    finally:
        ray.shutdown()
    same_rows(table, reference[1], ROW_KEYS)
    assert len(list((tmp_path / "ray" / "cells").glob("*/checkpoint.npz"))) == 4


# -- reports ------------------------------------------------------------------------------------

def test_report_of_a_sweep_shows_figures_and_the_best_cell(tmp_path, reference):
    out = shutil.copytree(reference[0], tmp_path / "sweep")
    assert main(["report", str(out)]) == 0
    text = (out / "report.md").read_text()
    for name in ("learning_curves", "final_vs_agents_cell", "final_vs_train_lr", "heatmap"):
        png = out / "figures" / f"{name}.png"
        assert png.read_bytes()[:4] == b"\x89PNG" and f"(figures/{name}.png)" in text
    table = reference[1]
    last = results.final(table)
    test = last[last["split"] == "test"].pivot_table(index="cell", columns="metric", values="value", aggfunc="mean")
    best = test.sort_values(["accuracy", "loss"], ascending=[False, True]).index[0]
    assert f"**Best cell: {best}**" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 4 and rows[0].startswith(f"| {best} |")
