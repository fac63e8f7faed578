"""`lab study dro --out DIR [--small | --preset NAME]`: when some meanings are rare, do agents still communicate about
them, and does robust optimisation help? ERM against Group DRO, CVaR, KL-DRO and RP-DRO (lab.dro) on Zipf-skewed inputs.

The agents train on targets drawn from a Zipf distribution over the train objects and are
evaluated uniformly, every train object once. The groups are frequency bins of equal size (bin 0
the most frequent); worst-group accuracy is that of the worst bin, typically the rarest. Each
objective is one compiled call in which its seeds and its knob values (eta, alpha, tau) train
together (lab.experiment.grid). For every run two models are reported: the final one, and the one
minmax model selection picks among the checkpoints (lab.experiment.selection; no group labels).

The report opens with the baseline's problem (ERM's worst-group accuracy against its average, per
seed), then judges every objective against ERM of the same seed by the shared rule
(lab.report.studies.common: effect, SE, margin, minimum detectable effect).

DIR/metrics.parquet            tidy: condition, seed, step, split, metric, value
DIR/per_seed.csv               per run: for each model (final, minmax) average, per-bin, worst-group and test accuracy
DIR/summary.csv, claims.csv    per condition: mean and standard error over seeds; the claims as judged
DIR/average_vs_worst.png       average against worst-group accuracy, a point per condition
DIR/accuracy_by_frequency.png  accuracy in each frequency bin, a line per condition
DIR/report.md                  the verdict, the figures and the tables
DIR/configs/*.yaml             the resolved config of each condition
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from lab.experiment import selection
from lab.experiment.config import Config
from lab.experiment.grid import Grid, grid, train_grid
from lab.report.studies.common import Claim, Declaration, Result, compare, describe, run

# K=3 attributes x V=4 values, a compositional split (51 train objects), Zipf(1.5) over train: the most frequent object
# is drawn ~400 times as often as the rarest; 4 frequency bins of 12-13 objects.
WORLD = ["game.kind=reconstruction", "game.n_attributes=3", "game.n_values=4", "game.split=compositional",
         "game.distribution=zipf", "game.zipf_exponent=1.5", "game.groups=frequency", "game.frequency_bins=4",
         "agents.vocab_size=16", "agents.max_len=3", "train.lr=0.01", "objective.adversary_lr=0.01"]
SMALL = WORLD + ["agents.hidden_size=64", "agents.embedding_size=16", "train.batch_size=64", "train.steps=1000",
                 "train.eval_every=100", "train.eval_size=64", "train.seeds=3"]
FULL = WORLD + ["agents.hidden_size=128", "train.batch_size=128", "train.steps=3000", "train.eval_every=150",
                "train.seeds=10"]  # 10 seeds: an MDE near 3 SE (t(9) = 2.26)
# objective -> (its knob, the values trained together); Michel et al.'s tau grid for RP-DRO
KNOBS = {
    "erm": (None, [None]),
    "group_dro": ("eta", [0.01, 0.1]),
    "cvar": ("alpha", [0.1, 0.3]),
    "kl_dro": ("tau", [0.3, 1.0]),
    "rp_dro": ("tau", [0.01, 0.1, 1.0]),
}
FULL_KNOBS = {**KNOBS, "group_dro": ("eta", [0.01, 0.03, 0.1]), "cvar": ("alpha", [0.1, 0.2, 0.5]),
              "kl_dro": ("tau", [0.1, 0.3, 1.0]), "rp_dro": ("tau", [0.001, 0.01, 0.1, 1.0])}
MODELS = ("final", "minmax")
BASELINE = "erm"
MARGIN = 0.05  # worst-group accuracy: the smallest change that matters
PROBLEM = 0.10  # ERM's average minus worst-group accuracy that counts as a problem for the robust objectives to fix


def condition_name(kind: str, knob: str | None, value) -> str:
    return kind if knob is None else f"{kind} {knob}={value:g}"


def conditions(preset: str) -> dict[str, list[str]]:
    """ERM first, then every objective at every value of its knob."""
    knobs = KNOBS if preset == "small" else FULL_KNOBS
    return {condition_name(kind, knob, v): [f"objective.kind={kind}"] + ([f"objective.{knob}={v}"] if knob else [])
            for kind, (knob, values) in knobs.items() for v in values}


def per_seed(grid: Grid, configs) -> pd.DataFrame:
    """One row per (condition, seed): for each model (final, minmax) its step, its accuracy on every train object
    uniformly, per frequency bin, on the worst bin, and on the test objects; and ERM's problem, average - worst."""
    rows = []
    for members, snapshots in zip(grid.groups, grid.watchers):
        runs = [grid.runs[i] for i in members]
        trainer = runs[0].trainer
        chosen = selection.select(trainer, snapshots, n_runs=runs[-1].runs.stop)
        groups = trainer.groups[trainer.world.train]  # [n_train] frequency bins
        last = chosen.robust.shape[1] - 1
        for run in runs:
            for r, seed in zip(range(run.runs.start, run.runs.stop), run.cell.seeds):
                row = {"condition": run.cell.labels["condition"], "seed": int(seed)}
                for model, index in (("final", last), ("minmax", chosen.index[r])):
                    correct = chosen.correct["train"][r, index]
                    by_bin = [float(correct[groups == g].mean()) for g in range(int(groups.max()) + 1)]
                    row.update({f"{model} step": trainer.config.train.steps if model == "final" else int(chosen.step[r]),
                                f"{model} average accuracy": float(correct.mean()), f"{model} worst-group accuracy": min(by_bin),
                                **{f"{model} bin {g} accuracy": a for g, a in enumerate(by_bin)},
                                f"{model} test accuracy": float(chosen.correct["test"][r, index].mean())})
                row["final average - worst-group accuracy"] = row["final average accuracy"] - row["final worst-group accuracy"]
                rows.append(row)
    return pd.DataFrame(rows)  # in the conditions' order: an objective's knob values are one compiled call


def train_objectives(configs: dict[str, Config], progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train the given conditions as the study does (snapshots kept for minmax selection): the tidy table and the
    per-seed table."""
    trained = train_grid(grid(configs), progress, STUDY.watch, "dro")
    return trained.table, per_seed(trained, configs)


def by_model(seeds: pd.DataFrame) -> pd.DataFrame:
    """The per-seed table in long form: one row per (condition, seed, model), columns without the model's prefix."""
    frames = []
    for model in MODELS:
        own = {c: c[len(model) + 1:] for c in seeds.columns if c.startswith(f"{model} ")}
        frames.append(seeds[["condition", "seed", *own]].rename(columns=own).assign(model=model))
    return pd.concat(frames, ignore_index=True)


def summarize(seeds: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard error over seeds of every accuracy, one row per (condition, model), in the order of `seeds`."""
    long = by_model(seeds)
    values = [c for c in long.columns if c.endswith("accuracy")]
    grouped = long.groupby(["condition", "model"], sort=False)
    out = pd.concat({"mean": grouped[values].mean(), "se": grouped[values].sem(ddof=1)}, axis=1)
    out.columns = [f"{name} {stat}" for stat, name in out.columns]
    out.insert(0, "seeds", grouped["seed"].count())
    out = out[["seeds"] + [f"{v} {s}" for v in values for s in ("mean", "se")]]
    order = list(dict.fromkeys(seeds["condition"]))
    return out.reindex(pd.MultiIndex.from_tuples([(c, m) for c in order for m in MODELS], names=["condition", "model"]))


def bins_text(seeds: pd.DataFrame, model: str, baseline: str = BASELINE) -> str:
    b = seeds[seeds["condition"] == baseline].mean(numeric_only=True)
    bins = sorted(c[len(model) + 1: -len(" accuracy")] for c in seeds.columns if c.startswith(f"{model} bin "))
    return (f"under ERM ({model} models) accuracy falls from {b[f'{model} {bins[0]} accuracy']:.2f} on the most frequent "
            f"objects ({bins[0]}) to {b[f'{model} {bins[-1]} accuracy']:.2f} on the rarest ({bins[-1]}); average accuracy "
            f"{b[f'{model} average accuracy']:.2f}, worst-group {b[f'{model} worst-group accuracy']:.2f}")


def opening(result: Result) -> str:
    return f"The baseline's problem: {bins_text(result.seeds, 'final')}; {bins_text(result.seeds, 'minmax')}."


def notes(result: Result) -> list[str]:
    """What each objective costs in average accuracy, the largest gain, and a caution on many comparisons."""
    seeds, judged = result.seeds.set_index(["condition", "seed"]), result.judged
    base = seeds.loc[BASELINE]
    text = []
    problem = judged[judged["claim"] == "problem"]
    if len(problem) and problem["call"].iloc[0] != "reproduced":
        text.append("ERM's worst-group accuracy is not shown to fall below its average by the margin here: the claims "
                    "about fixing it have little to fix.")
    costs = []
    for condition in dict.fromkeys(result.seeds["condition"]):
        if condition == BASELINE:
            continue
        d = seeds.loc[condition]["final average accuracy"] - base["final average accuracy"]
        word, j = compare(d.dropna().to_numpy(), MARGIN)
        costs.append(f"{condition} {word} ({describe(j)})")
    if costs:
        text.append("Average accuracy against ERM (final models): " + "; ".join(costs) + ".")
    gains = judged[(judged["claim"] == "final") & (judged["call"] == "reproduced")].sort_values("effect", ascending=False)
    if len(gains):
        text.append(f"The largest gain in worst-group accuracy: {gains['condition'].iloc[0]} ({gains['effect'].iloc[0]:+.2f}).")
    text.append("(Every knob value is its own comparison, so expect about one in twenty spurious calls in each direction "
                "at this level.)")
    return text


def plot_average_vs_worst(result: Result, path: Path) -> None:
    data = summarize(result.seeds).reset_index()
    data["objective"] = data["condition"].str.split(" ").str[0]
    fig, axes = plt.subplots(1, len(MODELS), figsize=(11, 4.5), sharex=True, sharey=True)
    palette = dict(zip(dict.fromkeys(data["objective"]), sns.color_palette("tab10")))
    for ax, model in zip(axes, MODELS):
        for _, row in data[data["model"] == model].iterrows():
            ax.errorbar(row["average accuracy mean"], row["worst-group accuracy mean"], xerr=row["average accuracy se"],
                        yerr=row["worst-group accuracy se"], fmt="o", color=palette[row["objective"]], capsize=2)
            ax.annotate(row["condition"], (row["average accuracy mean"], row["worst-group accuracy mean"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        low = min(data["worst-group accuracy mean"].min(), data["average accuracy mean"].min()) - 0.05
        ax.plot([low, 1], [low, 1], color="grey", lw=0.6, ls="--")  # worst group = average: no gap between groups
        ax.set_title(f"{model} models" + (" (checkpoint picked by minmax selection)" if model == "minmax" else ""), fontsize=9)
        ax.set_xlabel("average accuracy (every train object once)")
    axes[0].set_ylabel("worst-group accuracy (worst frequency bin)")
    fig.suptitle("mean ± 1 standard error over seeds; dashed: worst group = average", fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_accuracy_by_frequency(result: Result, path: Path, model: str = "final") -> None:
    runs = by_model(result.seeds)
    bins = [c for c in runs.columns if c.startswith("bin ")]
    long = runs[runs["model"] == model].melt(id_vars=["condition", "seed"], value_vars=bins, var_name="bin", value_name="accuracy")
    long["frequency bin"] = long["bin"].str.split(" ").str[1].astype(int)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sns.lineplot(data=long, x="frequency bin", y="accuracy", hue="condition", style="condition", markers=True, dashes=False,
                 errorbar="se", ax=ax)
    ax.set_xticks(sorted(long["frequency bin"].unique()))
    ax.set_xlabel("frequency bin (0 = most frequent objects in training, last = rarest)")
    ax.set_ylabel("accuracy (whole object)")
    ax.set_title(f"{model} models, mean ± 1 standard error over seeds", fontsize=9)
    ax.legend(fontsize=7, ncols=2)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


STUDY = Declaration(
    name="dro", title="rare meanings and DRO",
    question="Zipf-skewed training inputs, evaluation on every train object once; groups are frequency bins (bin 0 the "
             "most frequent). Final models, then the checkpoint minmax selection picks without group labels. Every "
             "objective's weights multiply the listener's loss and the speaker's REINFORCE term alike (lab.dro). Group DRO "
             "reweights batches drawn from the skewed distribution; Sagawa et al. also draw the groups uniformly, which is "
             "a curriculum (a sampler) and not part of this comparison.",
    presets={"small": SMALL, "full": FULL},
    conditions=conditions,
    claims=(
        Claim("problem", "under ERM the rarest meanings are communicated worse than the average (final models)",
              "final average - worst-group accuracy", PROBLEM, conditions=(BASELINE,), baseline=None),
        Claim("final", "the objective raises worst-group accuracy over ERM (final models)", "final worst-group accuracy",
              MARGIN, baseline=BASELINE),
        Claim("minmax", "the objective raises worst-group accuracy over ERM (minmax-selected models)",
              "minmax worst-group accuracy", MARGIN, baseline=BASELINE),
    ),
    per_seed=per_seed, watch=lambda cells: selection.Snapshots(), opening=opening, notes=notes,
    outputs={"average_vs_worst.png": plot_average_vs_worst, "accuracy_by_frequency.png": plot_accuracy_by_frequency},
)


def dro(out: str | Path, small: bool = False, overwrite: bool = False, progress: bool = True, overrides: list[str] = (),
        preset: str | None = None):
    """Rare meanings: ERM against Group DRO, CVaR, KL-DRO and RP-DRO under Zipf inputs; writes DIR (module doc)."""
    return run(STUDY, out, small=small, preset=preset, overwrite=overwrite, progress=progress, overrides=overrides)
