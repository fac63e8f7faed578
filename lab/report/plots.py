"""Seaborn figures drawn from tidy tables (`seed, step, split, metric, value`)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

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


def sweep_curves(table: pd.DataFrame, path: str | Path, hue: str, metrics=("accuracy", "topsim", "loss"), band: str = "seeds"):
    """Learning curves of a sweep: one row per split, one panel per metric, a line per `hue` value."""
    data = table[table["metric"].isin(metrics)]
    splits = [s for s in ("train", "test") if s in set(data["split"])]
    grid = sns.relplot(data=data, x="step", y="value", hue=hue, row="split", row_order=splits, col="metric",
                       col_order=[m for m in metrics if m in set(data["metric"])], kind="line", errorbar="sd",
                       facet_kws=dict(sharey=False), height=2.8, aspect=1.3)
    for (split, metric), ax in grid.axes_dict.items():
        ax.set_title(f"{split}: {LABELS.get(metric, metric)}", fontsize=9)
        ax.set_xlabel("training step")
        ax.set_ylabel(LABELS.get(metric, metric))
    grid.figure.suptitle(f"mean, band = ±1 std over {band}", y=1.02, fontsize=9)
    grid.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(grid.figure)
    return path


def final_against(last: pd.DataFrame, key: str, path: str | Path, metrics=("accuracy", "topsim", "loss")):
    """Final metrics (rows of the last evaluation) against one swept key, mean ± 1 std, one panel per metric."""
    data = last[last["metric"].isin(metrics)]
    splits = [s for s in ("train", "test") if s in set(data["split"])]
    grid = sns.catplot(data=data, x=key, y="value", hue="split", hue_order=splits, col="metric",
                       col_order=[m for m in metrics if m in set(data["metric"])], kind="point", errorbar="sd",
                       sharey=False, height=3.0, aspect=1.1)
    for metric, ax in grid.axes_dict.items():
        ax.set_title(LABELS.get(metric, metric), fontsize=9)
        ax.set_ylabel(f"final {LABELS.get(metric, metric)}")
    grid.figure.suptitle(f"final evaluation against {key}: mean, bar = ±1 std over seeds and the other swept keys",
                         y=1.03, fontsize=9)
    grid.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(grid.figure)
    return path


def heatmaps(means: dict[str, pd.DataFrame], path: str | Path, title: str):
    """One annotated heatmap per metric of a two-key grid: `means[metric]` indexed by key 1, columns key 2."""
    fig, axes = plt.subplots(1, len(means), figsize=(4.2 * len(means), 3.4), squeeze=False)
    for ax, (metric, matrix) in zip(axes[0], means.items()):
        sns.heatmap(matrix, annot=True, fmt=".2f", cmap="viridis", ax=ax, cbar_kws=dict(shrink=0.8))
        ax.set_title(LABELS.get(metric, metric), fontsize=9)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def decomposition_curves(table: pd.DataFrame, path: str | Path, col: str = "condition", col_order=None):
    """L_info and L_adapt on train and test against step, one panel per `col` value (shared y, nats)."""
    data = table[table["metric"].isin(("l_info", "l_adapt"))].copy()
    data["term"] = data["metric"].map({"l_info": "information L_info", "l_adapt": "co-adaptation L_adapt"})
    col_order = col_order or list(dict.fromkeys(data[col]))
    grid = sns.relplot(data=data, x="step", y="value", hue="term", hue_order=["information L_info", "co-adaptation L_adapt"],
                       style="split", style_order=["train", "test"], col=col, col_order=col_order, kind="line",
                       errorbar="sd", height=3.0, aspect=1.05, col_wrap=min(4, len(col_order)))
    for name, ax in grid.axes_dict.items():
        ax.set_title(str(name))
        ax.set_xlabel("training step")
        ax.set_ylabel("loss term (nats)")
    grid.figure.suptitle("game loss = L_info + L_adapt, per split: mean over seeds, band = ±1 std", y=1.03, fontsize=9)
    grid.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(grid.figure)
    return path
