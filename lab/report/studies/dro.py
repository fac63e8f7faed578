"""`lab study dro --out DIR [--small]`: when some meanings are rare, do agents still communicate about them, and does
robust optimisation help? ERM against Group DRO, CVaR, KL-DRO and RP-DRO (lab.dro) on Zipf-skewed training inputs.

The agents train on targets drawn from a Zipf distribution over the train objects and are
evaluated uniformly, every train object once. The groups are frequency bins of equal size (bin 0
the most frequent); worst-group accuracy is that of the worst bin, typically the rarest. Each
objective is one compiled call in which its seeds and its knob values (eta, alpha, tau) are
vmapped. For every run two models are reported: the final one, and the one minmax model
selection picks among the checkpoints (lab.experiment.selection; no group labels).

DIR/metrics.parquet            tidy: condition, objective, seed, step, split, metric, value
DIR/runs.csv                   per run and model (final, minmax): average, per-bin, worst-group and test accuracy
DIR/summary.csv                per condition and model: mean and standard error over seeds
DIR/average_vs_worst.png       average against worst-group accuracy, a point per condition
DIR/accuracy_by_frequency.png  accuracy in each frequency bin, a line per condition
DIR/report.md                  the figures, the table and the verdict
DIR/configs/*.yaml             the resolved config of each objective
"""

from __future__ import annotations

import time
from pathlib import Path

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import yaml

from lab.core.hparams import hparams_from_config, with_values
from lab.core.trainer import seed_keys
from lab.experiment import results, selection
from lab.experiment.build import make_trainer
from lab.experiment.config import Config, load, to_dict
from lab.experiment.execute import train_runs
from lab.experiment.io import check_out, staged
from lab.experiment.run import progress_bar
from lab.report.studies.common import Study

# K=3 attributes x V=4 values, a compositional split (51 train objects), Zipf(1.5) over train: the most frequent object
# is drawn ~400 times as often as the rarest; 4 frequency bins of 12-13 objects.
WORLD = ["game.kind=reconstruction", "game.n_attributes=3", "game.n_values=4", "game.split=compositional",
         "game.distribution=zipf", "game.zipf_exponent=1.5", "game.groups=frequency", "game.frequency_bins=4",
         "agents.vocab_size=16", "agents.max_len=3", "train.lr=0.01", "objective.adversary_lr=0.01"]
SMALL = WORLD + ["agents.hidden_size=64", "agents.embedding_size=16", "train.batch_size=64", "train.steps=1000",
                 "train.eval_every=100", "train.eval_size=64", "train.seeds=3"]
FULL = WORLD + ["agents.hidden_size=128", "train.batch_size=128", "train.steps=3000", "train.eval_every=150",
                "train.seeds=5"]
# objective -> (its knob, the values vmapped in one call); Michel et al.'s tau grid for RP-DRO
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
SE_RULE = 2.0  # a difference counts when it exceeds this many standard errors


def study_configs(small: bool, overrides: list[str] = ()) -> dict[str, Config]:
    """The validated config of every objective; `overrides` apply to all of them."""
    base = SMALL if small else FULL
    return {kind: load(overrides=base + [f"objective.kind={kind}"] + list(overrides)) for kind in KNOBS}


def condition_name(kind: str, knob: str | None, value) -> str:
    return kind if knob is None else f"{kind} {knob}={value:g}"


def run_objective(config: Config, knob: str | None, values: list, progress: bool = True):
    """Train every (knob value, seed) of one objective in one compiled call: (trainer, tidy table, per-run frame)."""
    trainer = make_trainer(config)
    seeds = np.arange(config.train.seed, config.train.seed + config.train.seeds)
    n = len(values) * len(seeds)
    keys = jnp.concatenate([seed_keys(config)] * len(values))  # the same seeds for every knob value: paired
    hp = hparams_from_config(config, n)
    if knob is not None:
        hp = with_values(hp, {f"objective.{knob}": np.repeat(np.asarray(values, np.float32), len(seeds))})
    snapshots = selection.Snapshots()
    bar, advance = progress_bar(trainer.n_evals + 1, f"{config.objective.kind}: {n} runs", progress)

    def on_block(index, state, metrics):
        snapshots(index, state, metrics)
        advance(index)

    try:
        _, history = train_runs(trainer, keys, hp, on_block=on_block)
    finally:
        bar.close()
    run_values = np.repeat(np.asarray(values, object), len(seeds))
    run_seeds = np.tile(seeds, len(values))
    names = [condition_name(config.objective.kind, knob, v) for v in run_values]
    table = results.tidy(history, trainer.eval_steps, np.arange(n))
    run = table.pop("seed").to_numpy()
    table.insert(0, "seed", run_seeds[run])
    table.insert(0, "condition", np.asarray(names, object)[run])
    chosen = selection.select(trainer, snapshots, n_runs=n)
    return trainer, table, per_run(trainer, chosen, names, run_seeds)


def per_run(trainer, chosen: selection.Selection, names: list[str], seeds: np.ndarray) -> pd.DataFrame:
    """One row per (run, model): accuracy on every train object uniformly, per frequency bin, the worst bin, and test."""
    groups = trainer.groups[trainer.world.train]  # [n_train] frequency bins
    n_bins = int(groups.max()) + 1
    last = len(chosen.robust[0]) - 1
    rows = []
    for run, (name, seed) in enumerate(zip(names, seeds)):
        for model, index in (("final", last), ("minmax", chosen.index[run])):
            correct, test = chosen.correct["train"][run, index], chosen.correct["test"][run, index]
            by_bin = [float(correct[groups == g].mean()) for g in range(n_bins)]
            step = trainer.config.train.steps if model == "final" else int(chosen.step[run])
            rows.append({"condition": name, "seed": int(seed), "model": model, "step": step,
                         "average accuracy": float(correct.mean()), "worst-group accuracy": min(by_bin),
                         **{f"bin {g} accuracy": a for g, a in enumerate(by_bin)}, "test accuracy": float(test.mean())})
    return pd.DataFrame(rows)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard error over seeds of every accuracy, one row per (condition, model), in the order of `runs`."""
    values = [c for c in runs.columns if c.endswith("accuracy")]
    order = list(dict.fromkeys(runs["condition"]))
    grouped = runs.groupby(["condition", "model"], sort=False)
    mean, se = grouped[values].mean(), grouped[values].sem(ddof=1)
    out = pd.concat({"mean": mean, "se": se}, axis=1)
    out.columns = [f"{name} {stat}" for stat, name in out.columns]
    out.insert(0, "seeds", grouped["seed"].count())
    out = out[["seeds"] + [f"{v} {s}" for v in values for s in ("mean", "se")]]
    index = pd.MultiIndex.from_tuples([(c, m) for c in order for m in MODELS if (c, m) in out.index], names=["condition", "model"])
    return out.reindex(index)


def _compare(row: pd.Series, base: pd.Series, metric: str) -> tuple[float, float]:
    """(difference of means, its standard error) of `metric` between a condition and the baseline."""
    se = np.sqrt(row[f"{metric} se"] ** 2 + base[f"{metric} se"] ** 2)
    return row[f"{metric} mean"] - base[f"{metric} mean"], 0.0 if np.isnan(se) else float(se)


def _word(difference: float, se: float, up: str, down: str) -> str:
    if difference > SE_RULE * se:
        return up
    if difference < -SE_RULE * se:
        return down
    return "unchanged"


def verdict(summary: pd.DataFrame, model: str = "final", baseline: str = "erm") -> str:
    """One paragraph, every claim read off `summary`: how ERM does on the rare bin, which objectives change that, at what cost.

    An objective "raises" (or "lowers") worst-group accuracy when its mean differs from ERM's by
    more than SE_RULE standard errors of the difference (the seeds' standard errors combined).
    """
    s = summary.xs(model, level="model")
    b = s.loc[baseline]
    bins = sorted(c[: -len(" accuracy mean")] for c in s.columns if c.startswith("bin ") and c.endswith("mean"))
    text = [f"Under ERM ({model} models), accuracy falls from {b[f'{bins[0]} accuracy mean']:.2f} on the most frequent "
            f"objects ({bins[0]}) to {b[f'{bins[-1]} accuracy mean']:.2f} on the rarest ({bins[-1]}); average accuracy "
            f"{b['average accuracy mean']:.2f}, worst-group {b['worst-group accuracy mean']:.2f}."]
    effects = []
    for name, row in s.drop(index=baseline).iterrows():
        d_worst, se_worst = _compare(row, b, "worst-group accuracy")
        d_avg, se_avg = _compare(row, b, "average accuracy")
        lowest = min(bins, key=lambda g: row[f"{g} accuracy mean"])
        effects.append((d_worst, name, f"{name}: worst-group {row['worst-group accuracy mean']:.2f} ({d_worst:+.2f} ± "
                        f"{se_worst:.2f}, {_word(d_worst, se_worst, 'raised', 'lowered')}; lowest on average: {lowest}), "
                        f"average {row['average accuracy mean']:.2f} ({d_avg:+.2f} ± {se_avg:.2f}, "
                        f"{_word(d_avg, se_avg, 'raised', 'lowered')})", _word(d_worst, se_worst, "raised", "lowered")))
    raised = sorted((e for e in effects if e[3] == "raised"), reverse=True)
    if raised:
        text.append(f"Worst-group accuracy rises over ERM with {', '.join(e[1] for e in raised)} (the largest gain: "
                    f"{raised[0][1]}, {raised[0][0]:+.2f}).")
    elif effects:
        closest = max(effects)
        text.append(f"No objective raises worst-group accuracy over ERM by more than {SE_RULE:g} standard errors; the "
                    f"closest is {closest[1]} ({closest[0]:+.2f}).")
    if effects:
        text.append("Against ERM, per condition: " + "; ".join(e[2] for e in effects) + ".")
    text.append(f"(Differences are means over {int(b['seeds'])} seeds ± the standard error of the difference; "
                f"\"raises\" means by more than {SE_RULE:g} standard errors. Every knob value is its own comparison, so "
                f"expect about one in twenty spurious calls at this threshold.)")
    return " ".join(text)


def plot_average_vs_worst(summary: pd.DataFrame, path: Path) -> Path:
    data = summary.reset_index()
    data["objective"] = data["condition"].str.split(" ").str[0]
    fig, axes = plt.subplots(1, len(MODELS), figsize=(11, 4.5), sharex=True, sharey=True)
    palette = dict(zip(dict.fromkeys(data["objective"]), sns.color_palette("tab10")))
    for ax, model in zip(axes, MODELS):
        rows = data[data["model"] == model]
        for _, row in rows.iterrows():
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
    return path


def plot_accuracy_by_frequency(runs: pd.DataFrame, path: Path, model: str = "final") -> Path:
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
    return path


def report_text(summary: pd.DataFrame, verdicts: dict[str, str], seconds: float, small: bool) -> str:
    shown = summary[[c for c in summary.columns if c.endswith("mean") or c == "seeds"]]
    shown.columns = [c.replace(" accuracy mean", "") for c in shown.columns]
    return "\n".join([
        f"# Study: rare meanings and DRO{' (small mode)' if small else ''}",
        "",
        "Zipf-skewed training inputs, evaluation on every train object once; groups are frequency bins (bin 0 the most "
        "frequent). Final models, then the checkpoint minmax selection picks without group labels.",
        "",
        f"**Final models.** {verdicts['final']}",
        "",
        f"**Minmax-selected models.** {verdicts['minmax']}",
        "",
        "![average vs worst-group accuracy](average_vs_worst.png)",
        "",
        "![accuracy by frequency bin](accuracy_by_frequency.png)",
        "",
        "Accuracy, mean over seeds (standard errors in summary.csv):",
        "",
        "```",
        shown.to_string(float_format=lambda v: f"{v:.3f}"),
        "```",
        "",
        "Design notes: every objective's weights multiply the listener's loss and the speaker's REINFORCE term alike "
        "(lab.dro). Group DRO here reweights batches drawn from the skewed distribution; Sagawa et al. also draw the "
        "groups uniformly, which is a curriculum (a sampler) and not part of this comparison. Knob values are compared "
        "one by one; minmax selection uses no group labels, and for objectives without an adversary it is selection by "
        "the error under the training distribution.",
        "",
        f"Trained in {seconds:.0f} s.",
        "",
    ])


def dro(out: str | Path, small: bool = False, overwrite: bool = False, progress: bool = True,
        overrides: list[str] = ()) -> Study:
    """Rare meanings: ERM against Group DRO, CVaR, KL-DRO and RP-DRO under Zipf inputs; writes DIR (module doc)."""
    out = Path(out)
    check_out(out, overwrite)
    configs = study_configs(small, overrides)
    knobs = KNOBS if small else FULL_KNOBS
    start = time.perf_counter()
    tables, runs = [], []
    for kind, config in configs.items():
        knob, values = knobs[kind]
        if progress:
            print(f"[{kind}] {len(values)} x {config.train.seeds} runs x {config.train.steps} steps", flush=True)
        _, table, frame = run_objective(config, knob, values, progress)
        tables.append(table.assign(objective=kind))
        runs.append(frame)
    seconds = time.perf_counter() - start
    table = pd.concat(tables, ignore_index=True)
    table = table[["condition", "objective", *[c for c in table.columns if c not in ("condition", "objective")]]]
    runs = pd.concat(runs, ignore_index=True)
    summary = summarize(runs)
    verdicts = {model: verdict(summary, model) for model in MODELS}

    with staged(out, overwrite, kind="study") as staging:
        results.write_parquet(table, staging / "metrics.parquet")
        runs.to_csv(staging / "runs.csv", index=False)
        summary.to_csv(staging / "summary.csv")
        plot_average_vs_worst(summary, staging / "average_vs_worst.png")
        plot_accuracy_by_frequency(runs, staging / "accuracy_by_frequency.png")
        (staging / "configs").mkdir()
        for kind, config in configs.items():
            (staging / "configs" / f"{kind}.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
        (staging / "report.md").write_text(report_text(summary, verdicts, seconds, small))
    flat = summary.copy()
    flat.index = [f"{c} ({m})" for c, m in summary.index]
    return Study(table, flat, f"Final models: {verdicts['final']}\nMinmax-selected: {verdicts['minmax']}", seconds)
