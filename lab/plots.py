"""Seaborn figures drawn from tidy tables (`seed, step, split, metric, value`)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

LABELS = {
    "accuracy": "accuracy (whole object)",
    "attribute_accuracy": "accuracy (per attribute)",
    "topsim": "topographic similarity",
    "posdis": "positional disentanglement",
    "bosdis": "bag-of-symbols disentanglement",
    "loss": "game loss (nats)",
    "l_info": "information loss (nats)",
    "l_adapt": "co-adaptation loss (nats)",
    "message_length": "message length (symbols)",
    "message_entropy": "message entropy (nats)",
    "vocab_use": "symbols used",
}


def learning_curves(table: pd.DataFrame, path: str | Path, metrics=("accuracy", "topsim", "loss"), hue: str = "split"):
    """One panel per metric against training step; the band is ±1 std over seeds."""
    data = table[table["metric"].isin(metrics)]
    hue_order = [s for s in ("train", "test") if s in set(data["split"])] if hue == "split" else None
    grid = sns.relplot(data=data, x="step", y="value", hue=hue, hue_order=hue_order, col="metric", col_order=[m for m in metrics if m in set(data["metric"])],
                       kind="line", errorbar="sd", facet_kws=dict(sharey=False), height=3.2, aspect=1.2)
    for metric, ax in grid.axes_dict.items():
        ax.set_title(LABELS.get(metric, metric))
        ax.set_xlabel("training step")
        ax.set_ylabel(LABELS.get(metric, metric))
    grid.figure.suptitle("mean over seeds, band = ±1 std", y=1.03, fontsize=9)
    grid.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(grid.figure)
    return path
