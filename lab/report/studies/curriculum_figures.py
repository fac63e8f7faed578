"""The figures of `lab study curriculum-adam`, drawn from its tables (lab.report.studies.curriculum_adam)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def _setting_label(frame: pd.DataFrame) -> pd.Series:
    eps = frame["eps"].nunique() > 1
    return frame.apply(lambda r: f"β2={r['beta2']:g}" + (f" ε={r['eps']:g}" if eps else ""), axis=1)


def heatmap(summary: pd.DataFrame, path: str | Path, order: list[str]):
    """Final test accuracy (mean over seeds) per scheduler: learning rate across, beta2 (and eps) down."""
    data = summary.assign(setting=_setting_label(summary))
    vmin, vmax = data["accuracy_mean"].min(), data["accuracy_mean"].max()
    cols = min(4, len(order))
    rows = int(np.ceil(len(order) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.3 * rows + 0.6), squeeze=False)
    for ax, name in zip(axes.flat, order):
        own = data[data["condition"] == name].pivot_table(index="setting", columns="lr", values="accuracy_mean", sort=False)
        sns.heatmap(own, annot=True, fmt=".2f", cmap="viridis", vmin=vmin, vmax=vmax, cbar=False, ax=ax,
                    annot_kws=dict(fontsize=8))
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("learning rate", fontsize=8)
        ax.set_ylabel("")
        ax.set_xticklabels([f"{float(t.get_text()):g}" for t in ax.get_xticklabels()], fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(order):]:
        ax.axis("off")
    fig.suptitle("final test accuracy, mean over seeds, over Adam's learning rate x beta2", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def advantage(table: pd.DataFrame, path: str | Path, order: list[str], baseline: str):
    """Left: advantage over uniform at the same Adam setting, against how well that setting suits uniform.
    Right: each scheduler at its best setting minus the best-tuned uniform. Bands and bars: ±1 std over seeds."""
    curricula = [n for n in order if n != baseline]
    data = table[table["condition"].isin(curricula)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw=dict(width_ratios=[1.3, 1]))
    palette = dict(zip(curricula, sns.color_palette("tab20", len(curricula))))
    sns.lineplot(data=data, x="baseline_tuning", y="advantage", hue="condition", hue_order=curricula, palette=palette,
                 errorbar="sd", marker="o", ax=left, legend=False)
    left.axhline(0.0, color="black", lw=0.8)
    left.set_xlabel("uniform's final test accuracy at that Adam setting (better tuned ->)")
    left.set_ylabel("test accuracy minus uniform's\n(same Adam setting, same seed)")
    left.set_title("advantage at the same Adam setting", fontsize=10)
    means = data.groupby(["condition", "lr", "beta2", "eps"])["accuracy"].mean().reset_index()
    best = means.loc[means.groupby("condition")["accuracy"].idxmax(), ["condition", "lr", "beta2", "eps"]]
    at_best = data.merge(best, on=["condition", "lr", "beta2", "eps"])
    sns.pointplot(data=at_best, x="condition", y="advantage_vs_best", hue="condition", order=curricula, palette=palette,
                  errorbar="sd", linestyle="none", ax=right, legend=False)
    sns.stripplot(data=at_best, x="condition", y="advantage_vs_best", order=curricula, color="gray", size=3, ax=right)
    right.axhline(0.0, color="black", lw=0.8)
    right.set_xlabel("")
    right.set_ylabel("test accuracy minus the best-tuned uniform's")
    right.set_title("each at its best Adam setting vs the best-tuned uniform", fontsize=10)
    right.tick_params(axis="x", rotation=60, labelsize=8)
    handles = [plt.Line2D([], [], color=palette[n], marker="o", label=n) for n in curricula]
    left.legend(handles=handles, fontsize=7, ncol=2, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def mechanism(wide: pd.DataFrame, path: str | Path, order: list[str], baseline: str, reference: dict):
    """Over training, at one Adam setting: the update size relative to uniform for the hand-crafted and automated
    curricula, how fast their data mix moves, and the commentary's weights (their mean, normalised or drifting)."""
    curricula = [n for n in order if n != baseline]
    palette = dict(zip(curricula, sns.color_palette("tab20", len(curricula))))
    learned = [n for n in curricula if n.startswith("commentary")]
    paced = [n for n in curricula if n not in learned]
    staged = [n for n in paced if n != "bandit"]  # the bandit changes arm nearly every step: its shift dwarfs the others'
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5), sharex=True)
    panels = [
        (axes[0, 0], paced, "relative_update", "update norm / lr, relative to uniform", "hand-crafted and bandit curricula"),
        (axes[1, 0], staged, "curriculum_shift", "data-mix shift per step (total variation)", "how fast the data mix moves"),
        (axes[0, 1], learned, "relative_update", "update norm / lr, relative to uniform", "learned weightings"),
        (axes[1, 1], [n for n in curricula if n in learned or n == "self-paced"], "curriculum_weight_mean",
         "batch mean of the curriculum weights", "the weights' scale (1: normalised)"),
    ]
    for ax, names, metric, ylabel, title in panels:
        data = wide[wide["condition"].isin(names)]
        if metric in data and data[metric].notna().any():
            sns.lineplot(data=data, x="step", y=metric, hue="condition", hue_order=[n for n in names if n in set(data["condition"])],
                         palette=palette, errorbar="sd", ax=ax)
            ax.legend(fontsize=7, ncol=2)
        if metric in ("relative_update", "curriculum_weight_mean"):
            ax.axhline(1.0, color="black", lw=0.8)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.set_xlabel("training step")
        ax.set_title(title, fontsize=10)
    if "bandit" in paced and "curriculum_shift" in wide:
        shift = wide.loc[wide["condition"] == "bandit", "curriculum_shift"].mean()
        axes[1, 0].set_title(f"how fast the data mix moves (the bandit, not shown: {shift:.2f} per step)", fontsize=10)
    fig.suptitle(f"Adam at lr={reference['train.lr']:g}, beta2={reference['train.beta2']:g}: block means of the step "
                 f"statistics, band = ±1 std over seeds", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
