"""`lab report DIR` for a sweep directory: figures and report.md from the sweep's tidy table.

The best cell is the one with the highest mean final accuracy over its seeds, on the test
split when the sweep has one, else on train; ties go to the lower mean final loss.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lab.experiment import divergence, results
from lab.experiment.io import add_entries
from lab.experiment.sweep import diverged_cells, read_manifest, read_results
from lab.report import plots

METRICS = ("accuracy", "topsim", "loss")
MAX_HUES = 8  # more cells than this: curves are coloured by the first swept key instead of by cell
MAX_ROWS = 30  # cells shown in the summary table


def _short(keys: list[str]) -> dict[str, str]:
    """`train.lr` -> `lr` where the field name alone is unambiguous."""
    names = [k.split(".", 1)[-1] for k in keys]
    return {k: n if names.count(n) == 1 else k for k, n in zip(keys, names)}


def _format(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "–" if np.isnan(value) else f"{value:.3g}" if abs(value) < 1e-2 and value else f"{value:.3f}"
    return str(value)


def markdown_table(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(_format(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def cell_summary(table: pd.DataFrame, keys: list[str], split: str) -> pd.DataFrame:
    """Per cell: swept values, then mean and std over seeds of each final metric on `split`, best first."""
    last = results.final(table)
    last = last[(last["split"] == split) & last["metric"].isin(METRICS)]
    stats = last.groupby(["cell", "metric"])["value"].agg(["mean", "std"]).unstack("metric")
    stats.columns = [f"{metric} {stat}" for stat, metric in stats.columns]
    stats = stats[[f"{m} {s}" for m in METRICS for s in ("mean", "std") if f"{m} {s}" in stats.columns]]
    stats["seeds"] = last[last["metric"] == "accuracy"].groupby("cell")["seed"].nunique()
    values = table.drop_duplicates("cell").set_index("cell")[keys]
    summary = values.join(stats).reset_index()
    order = [c for c in ("accuracy mean", "loss mean") if c in summary.columns]
    return summary.sort_values(order, ascending=[False, True][:len(order)], kind="stable").reset_index(drop=True)


def ranking_split(table: pd.DataFrame) -> str:
    test = table[(table["split"] == "test") & (table["metric"] == "accuracy")]
    return "test" if len(test) and np.isfinite(test["value"]).any() else "train"


def report(sweep_dir: Path) -> Path:
    sweep_dir = Path(sweep_dir)
    manifest = read_manifest(sweep_dir)
    table = read_results(sweep_dir)
    keys = list(manifest["keys"])
    varying = [k for k in keys if table[k].nunique() > 1]
    short = _short(keys)
    figures = sweep_dir / "figures"
    figures.mkdir(exist_ok=True)
    shown = []

    curves = table.copy()
    n_cells = curves["cell"].nunique()
    if n_cells <= MAX_HUES or not varying:
        curves["cell"] = curves[["cell", *varying]].apply(
            lambda row: f"{row['cell']}: " + ", ".join(f"{short[k]}={_format(row[k])}" for k in varying), axis=1) if varying else curves["cell"].astype(str)
        hue, band = "cell", "seeds"
    else:
        hue, band = varying[0], "seeds and the other swept keys"
    shown.append(("learning curves", plots.sweep_curves(curves, figures / "learning_curves.png", hue, METRICS, band)))

    last = results.final(table)
    for key in varying:
        path = figures / f"final_vs_{key.replace('.', '_')}.png"
        shown.append((f"final metrics against {key}", plots.final_against(last, key, path, METRICS)))

    split = ranking_split(table)
    if len(varying) == 2:
        rows, cols = varying
        chosen = last[(last["split"] == split) & last["metric"].isin(("accuracy", "topsim"))]
        means = {m: chosen[chosen["metric"] == m].pivot_table(index=rows, columns=cols, values="value", aggfunc="mean")
                 for m in ("accuracy", "topsim") if m in set(chosen["metric"])}
        path = plots.heatmaps(means, figures / "heatmap.png", f"final {split} metrics, mean over seeds")
        shown.append((f"{rows} x {cols}", path))

    summary = cell_summary(table, keys, split)
    best = summary.iloc[0]
    best_values = ", ".join(f"{k}={_format(best[k])}" for k in keys)
    n_planned = len(manifest["cells"])
    lines = [
        f"# Sweep report: {sweep_dir.name}",
        "",
        f"{n_cells} of {n_planned} cells finished, {len(manifest['groups'])} compile groups; swept: {', '.join(keys) or 'nothing'}.",
        "",
        f"**Best cell: {int(best['cell'])}** ({best_values}): final {split} accuracy "
        f"{_format(best['accuracy mean'])} ± {_format(best['accuracy std'])} over {int(best['seeds'])} seeds.",
        "",
    ]
    diverged = diverged_cells(sweep_dir)
    if diverged:
        lines += [f"**Diverged**: {divergence.describe(diverged, 'cell')} ({', '.join(map(str, sorted(diverged)))}): "
                  f"their rows end at the evaluation where a run's numbers went non-finite.", ""]
    for title, path in shown:
        lines += [f"![{title}]({Path(path).relative_to(sweep_dir)})", ""]
    lines += [f"Final {split} metrics per cell, mean and std over seeds, best first"
              + (f" (top {MAX_ROWS} of {len(summary)})" if len(summary) > MAX_ROWS else "") + ":", "",
              markdown_table(summary.head(MAX_ROWS)), "",
              f"Table: `pandas.read_parquet('{sweep_dir}/metrics')`; configs and checkpoints: `cells/<cell>/`.", ""]
    path = sweep_dir / "report.md"
    path.write_text("\n".join(lines))
    add_entries(sweep_dir, [path.name, figures.name])  # the folder's marker: the lab wrote these too
    return path
