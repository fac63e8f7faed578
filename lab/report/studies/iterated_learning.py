"""`lab study iterated-learning --out DIR [--small]`: does structure rise when a language is passed on through a
bottleneck, and what does a pressure to stay expressive add? (Kirby et al. 2015; neural iterated learning, Ren et al.
2020; ../shared/science/teaching.md §3, 06)

Chains of generations (lab.transmission.chain), NIL's world: K=2 attributes x V=8 values (64 objects, a compositional
split holds 16 out), messages of 2 symbols from 8 (and EOS), a referential game of 15 candidates. Each generation a
fresh speaker imitates the previous one (cross-entropy on its sampled messages, as NIL's learning phase), then
optionally plays the game with a fresh listener (the expressivity phase: the listener alone first, then both, as
NIL's interacting phase), and is measured. Four conditions cross the two pressures:

* bottleneck + expressivity (NIL): the learner sees one message for each of 24 of the 48 train objects;
* bottleneck: the same, without the expressivity phase (Kirby 2015's compression alone);
* expressivity: every train object shown, with the expressivity phase (no transmission bottleneck);
* neither: every train object shown, no expressivity phase.

Per generation and chain: topsim, posdis, bosdis, the share of distinct messages, the ease of teaching and the
expressivity of the language (a fresh listener taught it for a fixed number of steps: its mean accuracy, its final
accuracy on the train objects), its hold-out accuracy (that listener on the held-out objects), and its kind
(degenerate, holistic, compositional; lab.transmission.language.kind_of).

Claims (expected, with sources, in teaching.md), each judged by the shared rule over seeds (a seed is one chain per
condition; the measures of the "end" are means over the last quarter of the generations):

1. structure rises through the bottleneck: topsim at the end above the first generation's, under both pressures;
   and above the expressivity condition's (no bottleneck) at the end (Kirby 2015, NIL);
2. the expressivity pressure keeps the language expressive: bottleneck + expressivity above bottleneck alone in
   expressivity (compression alone drifts to degenerate languages, Kirby 2015);
3. iterated learning generalizes better: hold-out accuracy of bottleneck + expressivity above expressivity alone (NIL).

DIR/metrics.parquet    tidy: condition, seed, step (the generation), split (all, train, test, learning), metric, value
DIR/per_seed.csv       per (condition, seed): the measures of the first generation and of the end
DIR/generations.csv    the figures' numbers: per condition and generation, means and standard errors, kind shares
DIR/generations.png    topsim, expressivity, hold-out accuracy, ease of teaching per generation, a line per condition
DIR/kinds.png          share of degenerate / holistic / compositional languages per generation, a panel per condition
DIR/summary.csv, claims.csv, report.md, configs/*.yaml
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import jax
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lab.core.hparams import hparams_from_config
from lab.core.trainer import seed_keys
from lab.experiment.build import make_trainer
from lab.experiment.config import Config
from lab.experiment.run import progress_bar, seeds_of
from lab.report.studies.common import Claim, Declaration, Result, run
from lab.transmission.chain import Chains, run_chains
from lab.transmission.language import KINDS

# NIL's world and channel (teaching.md §3, 06): K=2 x V=8, vocabulary 8 (+ EOS), 2 positions, 15 candidates; 16 objects
# held out (NIL: 8; 16 let the held-out game show 15 candidates and measure hold-out accuracy in steps of 1/16, not
# 1/8); GRU 64 agents. Learning: cross-entropy on one message per object.
WORLD = ["game.kind=discrimination", "game.n_distractors=14", "game.n_attributes=2", "game.n_values=8",
         "game.split=compositional", "game.test_fraction=0.25", "agents.vocab_size=9", "agents.max_len=2",
         "agents.hidden_size=64", "agents.embedding_size=16", "train.batch_size=64", "train.lr=0.003",
         "transmission.data=offline", "transmission.loss=cross_entropy", "transmission.samples_per_object=1",
         "transmission.lr=0.003", "transmission.batch_size=64", "transmission.teach_steps=200", "iterated.start=random",
         "iterated.listener_steps=200"]
PRESETS = {
    "small": WORLD + ["iterated.generations=6", "transmission.steps=400", "train.seeds=4"],
    "full": WORLD + ["iterated.generations=12", "transmission.steps=600", "train.seeds=8"],
}
BOTTLENECK = 24  # objects each learner sees, of the 48 train objects
INTERACT = {"small": 300, "full": 600}  # steps of the expressivity phase's joint game


def conditions(preset: str) -> dict[str, list[str]]:
    play = f"iterated.interact_steps={INTERACT[preset]}"
    return {
        "bottleneck + expressivity": [f"transmission.n_objects={BOTTLENECK}", play],
        "bottleneck": [f"transmission.n_objects={BOTTLENECK}", "iterated.interact_steps=0"],
        "expressivity": ["transmission.n_objects=0", play],
        "neither": ["transmission.n_objects=0", "iterated.interact_steps=0"],
    }


NIL = "bottleneck + expressivity"
MARGINS = {"topsim": 0.05, "accuracy": 0.05}
CLAIMS = (
    Claim("1a", "structure rises through the bottleneck: topsim at the end above the first generation's", "topsim gain",
          MARGINS["topsim"], conditions=(NIL, "bottleneck"), baseline=None),
    Claim("1b", "with the bottleneck the language ends more structured than without it", "topsim end",
          MARGINS["topsim"], conditions=(NIL,), baseline="expressivity"),
    Claim("2", "the expressivity phase keeps the transmitted language expressive", "expressivity end",
          MARGINS["accuracy"], conditions=(NIL,), baseline="bottleneck"),
    Claim("3", "iterated learning generalizes better: hold-out accuracy above that without the bottleneck",
          "hold-out accuracy end", MARGINS["accuracy"], conditions=(NIL,), baseline="expressivity"),
)
# a chain's measures: (split, metric) in the tidy table
MEASURES = {"topsim": ("all", "topsim"), "posdis": ("all", "posdis"), "bosdis": ("all", "bosdis"),
            "distinct": ("all", "distinct"), "kind": ("all", "kind"), "ease_of_teaching": ("train", "ease_of_teaching"),
            "expressivity": ("train", "expressivity"), "holdout_accuracy": ("test", "accuracy"),
            "pair_accuracy": ("train", "pair_accuracy"), "learning_loss": ("learning", "loss")}
SHOWN = {"topsim": "topsim", "expressivity": "expressivity", "holdout_accuracy": "hold-out accuracy",
         "ease_of_teaching": "ease of teaching", "distinct": "distinct messages / objects"}


class Trained(NamedTuple):
    histories: dict[str, dict]  # condition -> measure -> numpy [seeds, generations + 1]
    seeds: np.ndarray


def train(configs: dict[str, Config], progress: bool = True, preset: str = "full") -> tuple[Trained, pd.DataFrame]:
    """Each condition's chains, one compiled call of all its seeds."""
    base = next(iter(configs.values()))
    keys, seeds = seed_keys(base), seeds_of(base)
    bar, advance = progress_bar(len(configs), f"iterated-learning: {len(configs)} conditions x {len(seeds)} chains", progress)
    histories = {}
    try:
        for i, (name, config) in enumerate(configs.items()):
            chains = Chains(config, make_trainer(config) if config.iterated.interact_steps > 0 else None)
            _, histories[name] = run_chains(chains, keys, hparams_from_config(config, len(seeds)))
            advance(i)
    finally:
        bar.close()
    trained = Trained(histories, seeds)
    return trained, tidy(trained)


def tidy(trained: Trained) -> pd.DataFrame:
    rows = []
    for condition, history in trained.histories.items():
        for name, values in history.items():
            split, metric = MEASURES[name]
            seed, generation = np.meshgrid(trained.seeds, np.arange(values.shape[1]), indexing="ij")
            rows.append(pd.DataFrame({"condition": condition, "seed": seed.ravel(), "step": generation.ravel(), "split": split,
                                      "metric": metric, "value": np.asarray(values, np.float64).ravel()}))
    table = pd.concat(rows, ignore_index=True)
    return table[np.isfinite(table["value"])].reset_index(drop=True)


def end(values: np.ndarray) -> np.ndarray:
    """`[seeds]`: the mean over the last quarter of the generations (at least one) of `values [seeds, generations + 1]`."""
    last = max(1, (values.shape[1] - 1) // 4)
    return values[:, -last:].mean(axis=1)


def per_seed(trained: Trained, configs) -> pd.DataFrame:
    """One row per (condition, seed): the start, the first generation and the end of each measure."""
    rows = []
    for condition, h in trained.histories.items():
        for s, seed in enumerate(trained.seeds):
            row = {"condition": condition, "seed": int(seed)}
            for name, label in SHOWN.items():
                row[f"{label} start"] = float(h[name][s, 0])
                row[f"{label} first"] = float(h[name][s, 1])
                row[f"{label} end"] = float(end(h[name])[s])
            row["topsim gain"] = row["topsim end"] - row["topsim first"]
            for k, kind in enumerate(KINDS):
                row[f"{kind} at the end"] = float(h["kind"][s, -1] == k)
            rows.append(row)
    return pd.DataFrame(rows)


def generations(table: pd.DataFrame) -> pd.DataFrame:
    """The figures' numbers: per condition and generation, mean and standard error of each measure, and kind shares."""
    wanted = {MEASURES[name][1]: label for name, label in SHOWN.items()}
    shown = table[table["metric"].isin(wanted) & table["split"].isin(("all", "train", "test"))]
    shown = shown.assign(metric=shown["metric"].map(wanted))
    grouped = shown.groupby(["condition", "step", "metric"], sort=False)["value"]
    out = pd.concat({"mean": grouped.mean(), "se": grouped.sem(ddof=1)}, axis=1).unstack("metric")
    out.columns = [f"{metric} {stat}" for stat, metric in out.columns]
    out = out[[f"{label} {stat}" for label in SHOWN.values() for stat in ("mean", "se")]]
    kinds = table[table["metric"] == "kind"]
    for k, kind in enumerate(KINDS):
        out[f"share {kind}"] = kinds.assign(hit=kinds["value"] == k).groupby(["condition", "step"], sort=False)["hit"].mean()
    return out.reset_index().rename(columns={"step": "generation"})


def generations_figure(result: Result, path: Path) -> None:
    numbers = generations(result.table)
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    for ax, label in zip(axes, ("topsim", "expressivity", "hold-out accuracy", "ease of teaching")):
        for condition, own in numbers.groupby("condition", sort=False):
            ax.plot(own["generation"], own[f"{label} mean"], marker=".", label=condition)
            ax.fill_between(own["generation"], own[f"{label} mean"] - own[f"{label} se"],
                            own[f"{label} mean"] + own[f"{label} se"], alpha=0.2)
        ax.set(xlabel="generation (0: the start)", title=label)
    axes[0].legend(fontsize=7)
    fig.suptitle("mean over chains, band = ±1 standard error", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def kinds_figure(result: Result, path: Path) -> None:
    numbers = generations(result.table)
    conditions = list(dict.fromkeys(numbers["condition"]))
    fig, axes = plt.subplots(1, len(conditions), figsize=(3.4 * len(conditions), 3.0), sharey=True, squeeze=False)
    for ax, condition in zip(axes[0], conditions):
        own = numbers[numbers["condition"] == condition]
        ax.stackplot(own["generation"], *[own[f"share {kind}"] for kind in KINDS], labels=KINDS,
                     colors=("tab:grey", "tab:orange", "tab:green"), alpha=0.8)
        ax.set(xlabel="generation", title=condition, ylim=(0, 1))
    axes[0][0].set_ylabel("share of chains")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def opening(result: Result) -> str:
    seeds = result.seeds
    first = seeds.groupby("condition", sort=False)[["topsim first", "expressivity first"]].mean()
    return ("The start: a freshly initialised speaker; after one generation the languages have topsim "
            + ", ".join(f"{c} {v['topsim first']:.2f}" for c, v in first.iterrows())
            + "; expressivity " + ", ".join(f"{c} {v['expressivity first']:.2f}" for c, v in first.iterrows()) + ".")


def notes(result: Result) -> list[str]:
    numbers = generations(result.table)
    last = numbers[numbers["generation"] == numbers["generation"].max()].set_index("condition")
    kinds = "; ".join(f"{c}: " + ", ".join(f"{last.loc[c, f'share {k}']:.2f} {k}" for k in KINDS) for c in last.index)
    shown = numbers[["condition", "generation", *[f"{label} mean" for label in SHOWN.values()]]]
    return [f"Kinds of language at the last generation (shares of chains): {kinds}.",
            "The figures' numbers (means over chains; standard errors and kind shares in generations.csv):\n\n```\n"
            + shown.to_string(index=False, float_format=lambda v: f"{v:.3f}") + "\n```"]


STUDY = Declaration(
    name="iterated-learning", title="iterated learning",
    question="Chains of generations, each learning its speaker's language from the previous one: does structure rise "
             "through a transmission bottleneck, and what does a pressure to stay expressive (a game with a fresh "
             "listener each generation) add? (Kirby et al. 2015; Ren et al. 2020)",
    presets=PRESETS, conditions=conditions, claims=CLAIMS, train=train, per_seed=per_seed, opening=opening, notes=notes,
    outputs={"generations.csv": lambda r, p: generations(r.table).to_csv(p, index=False),
             "generations.png": generations_figure, "kinds.png": kinds_figure},
    seeds="chains",
)


def iterated_learning(out: str | Path, small: bool = False, overwrite: bool = False, progress: bool = True,
                      overrides: list[str] = (), preset: str | None = None):
    """Iterated learning: chains with and without a bottleneck and an expressivity phase, per generation; writes DIR."""
    return run(STUDY, out, small=small, preset=preset, overwrite=overwrite, progress=progress, overrides=overrides)
