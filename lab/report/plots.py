"""Seaborn figures drawn from tidy tables (`seed, step, split, metric, value`)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
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


def seed_caption(n_seeds: int) -> str:
    """What a curve over seeds shows, true to their number."""
    if n_seeds == 1:
        return "one seed: a single run, so no spread over seeds is shown."
    return f"mean over {n_seeds} seeds; the band is ±1 standard deviation over seeds."


SPLIT_NAMES = {"train": "train", "test": "held-out"}


def learning_curves(table: pd.DataFrame, path: str | Path, metrics=("accuracy", "topsim", "loss"), hue: str = "split"):
    """One panel per metric against training step: the mean over seeds, the band ±1 std (none for one seed)."""
    data = table[table["metric"].isin(metrics)]
    if hue == "split":
        data = data[data["split"].isin(SPLIT_NAMES)].assign(split=lambda d: d["split"].map(SPLIT_NAMES))
    hue_order = [s for s in SPLIT_NAMES.values() if s in set(data["split"])] if hue == "split" else None
    n_seeds = data["seed"].nunique()
    grid = sns.relplot(data=data, x="step", y="value", hue=hue, hue_order=hue_order, col="metric", col_order=[m for m in metrics if m in set(data["metric"])],
                       kind="line", errorbar="sd" if n_seeds > 1 else None, facet_kws=dict(sharey=False), height=3.2, aspect=1.2)
    for metric, ax in grid.axes_dict.items():
        ax.set_title(LABELS.get(metric, metric))
        ax.set_xlabel("training step")
        ax.set_ylabel(LABELS.get(metric, metric))
    grid.figure.suptitle(seed_caption(n_seeds), y=1.03, fontsize=9)
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


TERM_NAMES = {"l_info": "information L_info", "l_adapt": "co-adaptation L_adapt"}
SEED_POINTS = {"probe test accuracy": "probe listener: test accuracy", "test accuracy": "the pair's own test accuracy",
               "train topsim": "topsim, train objects", "test topsim": "topsim, test objects"}


def decomposition_curves(table: pd.DataFrame, axes, conditions: list[str]) -> None:
    """L_info and L_adapt on train and test against step on `axes`, one per condition; the band is ±1 std over seeds (if several)."""
    data = table[table["metric"].isin(TERM_NAMES)].assign(term=lambda d: d["metric"].map(TERM_NAMES))
    spread = "sd" if data["seed"].nunique() > 1 else None
    for ax, name in zip(axes, conditions):
        sns.lineplot(data=data[data["condition"] == name], x="step", y="value", hue="term", hue_order=list(TERM_NAMES.values()),
                     style="split", style_order=["train", "test"], errorbar=spread, ax=ax, legend=ax is axes[-1])
        ax.set_title(str(name))
        ax.set_xlabel("training step")
        ax.set_ylabel("loss term (nats)")
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def seed_points(seeds: pd.DataFrame, column: str, ax, conditions: list[str]) -> None:
    """A dot per seed of one per-seed column for each condition, with the mean ± 2 standard errors over seeds."""
    sns.stripplot(data=seeds, x="condition", y=column, order=conditions, color="0.55", size=4, jitter=0.12, ax=ax)
    stats = seeds.groupby("condition")[column].agg(["mean", "sem"]).reindex(conditions)
    ax.errorbar(np.arange(len(conditions)), stats["mean"], yerr=2 * stats["sem"], fmt="D", color="black", ms=5, capsize=4)
    ax.set_title(SEED_POINTS.get(column, column), fontsize=9)
    ax.set_xlabel("")
    ax.set_ylabel("")


def coadaptation_figure(table: pd.DataFrame, seeds: pd.DataFrame, path: str | Path, conditions: list[str],
                        columns=tuple(SEED_POINTS)):
    """Top: `decomposition_curves` per condition (shared y). Bottom: final `seed_points` of each of `columns` per condition."""
    fig = plt.figure(figsize=(3.3 * max(len(conditions), len(columns)) + 1.5, 6.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1)
    decomposition_curves(table, top.subplots(1, len(conditions), sharey=True, squeeze=False)[0], conditions)
    top.suptitle("game loss = L_info + L_adapt, per split: mean over seeds, band = ±1 std", fontsize=9)
    for ax, column in zip(bottom.subplots(1, len(columns), squeeze=False)[0], columns):
        seed_points(seeds, column, ax, conditions)
    bottom.suptitle("at the end of training: a dot per seed, diamond and bar = mean ± 2 standard errors", fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
