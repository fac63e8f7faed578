"""Tidy results: one row per (seed, step, split, metric) — the shape every figure is drawn from."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ["seed", "step", "split", "metric", "value"]


def tidy(history: dict, steps: np.ndarray, seeds) -> pd.DataFrame:
    """`history[split][metric]: [n_seeds, n_evals]` -> long table with COLUMNS."""
    seeds = np.asarray(seeds)
    frames = []
    for split, metrics in history.items():
        for metric, values in metrics.items():
            values = np.asarray(values, dtype=np.float64).reshape(len(seeds), len(steps))
            frames.append(pd.DataFrame({
                "seed": np.repeat(seeds, len(steps)),
                "step": np.tile(steps, len(seeds)),
                "split": split,
                "metric": metric,
                "value": values.ravel(),
            }))
    table = pd.concat(frames, ignore_index=True)
    table["split"] = table["split"].astype(str)
    table["metric"] = table["metric"].astype(str)
    return table[COLUMNS]


def final(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the last evaluation of each run."""
    keys = [c for c in table.columns if c not in ("step", "split", "metric", "value")]
    last = table.groupby(keys, dropna=False)["step"].transform("max")
    return table[table["step"] == last]


def summary(table: pd.DataFrame, metrics=("accuracy", "topsim", "posdis", "loss"), threshold: float = 0.95) -> pd.DataFrame:
    """Final metrics per split: mean and std over seeds, and how many seeds reach `threshold` accuracy."""
    last = final(table)
    last = last[last["metric"].isin(metrics)]
    stats = last.groupby(["split", "metric"])["value"].agg(["mean", "std"]).unstack("metric")
    stats.columns = [f"{metric} {stat}" for stat, metric in stats.columns]
    accuracy = last[last["metric"] == "accuracy"]
    stats[f"seeds >= {threshold:.0%}"] = accuracy.groupby("split")["value"].apply(lambda v: f"{int((v >= threshold).sum())}/{len(v)}")
    ordered = [f"{m} {s}" for m in metrics for s in ("mean", "std") if f"{m} {s}" in stats.columns]
    return stats[ordered + [f"seeds >= {threshold:.0%}"]]


def write_parquet(table: pd.DataFrame, path: str | Path) -> None:
    """Atomic write: a temporary file in the same folder, then a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        table.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
