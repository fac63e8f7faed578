"""`lab report DIR`: figures and a markdown report for a run directory."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lab.experiment import results
from lab.experiment.config import ConfigError
from lab.experiment.run import METRICS_FILE
from lab.report import plots
from lab.report.sweep import report as sweep_report


def read_metrics(run_dir: Path) -> pd.DataFrame:
    path = run_dir / METRICS_FILE
    if not path.is_file():
        raise ConfigError(f"{str(run_dir)!r} has no {METRICS_FILE}; is it a run directory written by `lab run`?")
    try:
        return pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise ConfigError(f"{str(path)!r} is not a readable parquet file ({type(error).__name__}); rerun the experiment") from None


def report(run_dir: Path) -> Path:
    if (run_dir / "manifest.json").is_file():  # a sweep directory written by `lab sweep`
        return sweep_report(run_dir)
    table = read_metrics(run_dir)
    figures = run_dir / "figures"
    figures.mkdir(exist_ok=True)
    curves = plots.learning_curves(table, figures / "learning_curves.png")
    summary = results.summary(table)
    text = "\n".join([
        f"# Run report: {run_dir.name}",
        "",
        f"![learning curves]({curves.relative_to(run_dir)})",
        "",
        "Final evaluation, mean and standard deviation over seeds:",
        "",
        "```",
        summary.to_string(float_format=lambda v: f"{v:.3f}"),
        "```",
        "",
    ])
    path = run_dir / "report.md"
    path.write_text(text)
    return path

