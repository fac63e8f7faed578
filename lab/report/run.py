"""`lab report DIR`: figures and a markdown report for a run directory."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lab.experiment import divergence, results
from lab.experiment.io import add_entries
from lab.experiment.config import ConfigError
from lab.experiment.run import METRICS_FILE
from lab.report import plots
from lab.report.sweep import report as sweep_report


def read_metrics(run_dir: Path) -> pd.DataFrame:
    path = run_dir / METRICS_FILE
    if not path.is_file():
        raise ConfigError(f"{str(run_dir)!r} has no {METRICS_FILE}; is it a run directory written by `lab run`?")
    try:
        table = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise ConfigError(f"{str(path)!r} is not a readable parquet file ({type(error).__name__}); rerun the experiment") from None
    missing = [column for column in results.COLUMNS if column not in table.columns]
    if missing:
        raise ConfigError(f"{str(path)!r} has no column {missing[0]!r}; a run's table has {', '.join(results.COLUMNS)}")
    if table.empty:
        raise ConfigError(f"{str(path)!r} has no rows; rerun the experiment")
    return table


def report(run_dir: Path) -> Path:
    if (run_dir / "manifest.json").is_file():  # a sweep directory written by `lab sweep`
        return sweep_report(run_dir)
    table = read_metrics(run_dir)
    figures = run_dir / "figures"
    figures.mkdir(exist_ok=True)
    curves = plots.learning_curves(table, figures / "learning_curves.png")
    summary = results.summary(table)
    diverged = {int(seed): tuple(at) for seed, at in results.read_metadata(run_dir / METRICS_FILE).get("diverged", {}).items()}
    text = [
        f"# Run report: {run_dir.name}",
        "",
        *([f"**Diverged**: {divergence.describe(diverged)}. A run's rows end at the evaluation where its numbers went "
           f"non-finite; its final values below are those of that evaluation.", ""] if diverged else []),
        f"![learning curves]({curves.relative_to(run_dir)})",
        "",
        "Final evaluation, mean and standard deviation over seeds:",
        "",
        "```",
        summary.to_string(float_format=lambda v: f"{v:.3f}"),
        "```",
        "",
    ]
    if "l_info" in set(table["metric"]):
        text += decomposition_section(table, figures, run_dir)
    path = run_dir / "report.md"
    path.write_text("\n".join(text))
    add_entries(run_dir, [path.name, figures.name])  # the folder's marker: the lab wrote these too
    return path


def gap_table(table: pd.DataFrame) -> pd.DataFrame:
    """Final game loss = L_info + L_adapt on train and test (mean over seeds, nats) and the gap, test - train."""
    last = results.final(table)
    last = last[last["metric"].isin(("loss", "l_info", "l_adapt")) & last["split"].isin(("train", "test"))]
    means = last.groupby(["split", "metric"])["value"].mean().unstack("metric")[["loss", "l_info", "l_adapt"]]
    means.loc["gap (test - train)"] = means.loc["test"] - means.loc["train"]
    return means.rename(columns={"loss": "game loss", "l_info": "L_info", "l_adapt": "L_adapt"})


def decomposition_section(table: pd.DataFrame, figures: Path, run_dir: Path) -> list[str]:
    """Why the language generalizes as it does: the generalization gap split into information and co-adaptation."""
    figure = figures / "decomposition.png"
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    plots.decomposition_curves(table.assign(condition=run_dir.name), [ax], [run_dir.name])
    fig.savefig(figure, dpi=120, bbox_inches="tight")
    plt.close(fig)
    gaps = gap_table(table)
    gap = gaps.loc["gap (test - train)"]
    share = gap["L_adapt"] / gap["game loss"] if abs(gap["game loss"]) > 1e-9 else float("nan")
    return [
        "## Why test games are lost: information or co-adaptation",
        "",
        "The game loss -log rho(x|m) splits into L_info (what the messages cannot tell apart: the loss of the",
        "ideal listener of this speaker) and L_adapt (what this listener adds to it: its co-adaptation with",
        "the speaker on the objects they trained on). Final values, mean over seeds, nats:",
        "",
        f"![L_info and L_adapt]({figure.relative_to(run_dir)})",
        "",
        "```",
        gaps.to_string(float_format=lambda v: f"{v:.3f}"),
        "```",
        "",
        f"Of the generalization gap of {gap['game loss']:.2f} nats, L_adapt carries {gap['L_adapt']:.2f} "
        f"({share:.0%}) and L_info {gap['L_info']:.2f}." if np.isfinite(gap.to_numpy()).all() else
        "The gap is not a finite number: a run diverged (above), so it says nothing about generalization.",
        "",
    ]
