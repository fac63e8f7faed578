"""`lab study merging --out DIR [--small]`: do the weights of communicating agents average? (DiWA-style; issue 13)

From pairs pretrained from independent random starts (the ancestors), each ancestor's population
is fine-tuned with varied hyperparameters and seeds (Ramé et al. 2022's DiWA), and two more runs
on different rewards (Ramé et al. 2023's rewarded soups). Then, per ancestor:

* best single (by held-out validation accuracy) vs uniform soup vs greedy soup vs SLERP soup vs
  the logit ensemble of the same runs, on the compositional test split;
* interpolation barriers (senders, receivers, both) between two fine-tunings of one ancestor, and
  between two ancestors (independent starts: symbol-permuted languages, §0 of algorithms.md);
* the rewarded-soups front: the weights interpolated between the run fine-tuned with a message
  length cost and the run fine-tuned with a structure (topsim) reward.

DIR/evaluations.parquet  tidy: condition, ancestor, member, side, alpha, split, metric, value
DIR/training.parquet     tidy training histories (phase pretrain / fine-tune)
DIR/summary.csv          per condition: mean and standard error over ancestors
DIR/barriers.png, soups.png, front.png, report.md (figures, tables, the verdict)
DIR/ancestors/checkpoint.npz, DIR/fine-tuned/checkpoint.npz (with their lineage), DIR/configs/*.yaml
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import yaml

from lab import merging as M
from lab.core.hparams import hparams_from_config, with_values
from lab.experiment import cache, checkpoint, results
from lab.experiment.build import make_trainer
from lab.experiment.config import Config, load, to_dict
from lab.experiment.io import check_out, staged
from lab.experiment.run import progress_bar
from lab.experiment.warp import fine_tune
from lab.merging import lineage
from lab.merging.soups import ranking
from lab.report.studies.common import Study

# A compositional split of K=4 attributes x V=4 values: 205 train objects (20 of them held out for validation), 51 test.
WORLD = ["game.kind=reconstruction", "game.n_attributes=4", "game.n_values=4", "game.split=compositional",
         "merge.validation=0.1", "agents.hidden_size=64", "agents.embedding_size=16", "train.lr=0.005"]
SIZES = {  # ancestors (independent starts), DiWA runs per ancestor, pretraining and fine-tuning
    True: dict(ancestors=3, tuned=4, pretrain=["train.steps=1200", "train.eval_every=200", "train.batch_size=128"],
               tune=["train.steps=300", "train.eval_every=150", "train.batch_size=64"]),
    False: dict(ancestors=5, tuned=12, pretrain=["train.steps=4000", "train.eval_every=500", "train.batch_size=128"],
                tune=["train.steps=1500", "train.eval_every=500", "train.batch_size=128"]),
}
LR_SCALES, ENTROPY = (0.5, 1.0, 2.0), (0.005, 0.02)  # DiWA's "mild" draws: multiples of the pretraining lr
LENGTH_COST, TOPSIM_WEIGHT = 1.0, 5.0  # the two proxy rewards of the rewarded soups
TOPSIM_OBJECTS = 100  # objects per split the judge's topsim reads (n^2 pairs of them)
METHODS = ("best single", "uniform soup", "greedy soup", "slerp soup", "ensemble")
RULE = 2.0  # an effect is called when |mean difference| > RULE standard errors


def study_configs(small: bool, overrides: list[str] = ()) -> dict[str, Config]:
    s = SIZES[small]
    pretrain = load(overrides=WORLD + s["pretrain"] + [f"train.seeds={s['ancestors']}"] + list(overrides))
    tune = load(overrides=WORLD + s["tune"] + [f"merge.topsim_weight={TOPSIM_WEIGHT}"] + list(overrides))
    return {"pretrain": pretrain, "fine-tune": tune}


def population(config: Config, n_ancestors: int, n_tuned: int):
    """Hyperparameters `[n_ancestors * (n_tuned + 2)]` of the fine-tunings and a table describing each run.

    Per ancestor: n_tuned DiWA runs (lr and entropy coefficient drawn from a small grid, their
    own seeds; task reward only), then the `length` run and the `structure` run (at twice the lr).
    """
    rows = []
    for a in range(n_ancestors):
        for i in range(n_tuned):
            rows.append(dict(ancestor=a, member=i, kind="diwa", lr=config.train.resolved().lr * LR_SCALES[i % 3],
                             entropy_coeff=ENTROPY[(i // 3) % 2], length_cost=0.0, topsim_weight=0.0))
        # twice the lr: the pretrained senders are nearly deterministic and REINFORCE moves them slowly
        base = dict(ancestor=a, lr=2 * config.train.resolved().lr, entropy_coeff=config.train.entropy_coeff)
        rows.append(dict(base, member=n_tuned, kind="length", length_cost=LENGTH_COST, topsim_weight=0.0))
        rows.append(dict(base, member=n_tuned + 1, kind="structure", length_cost=0.0, topsim_weight=TOPSIM_WEIGHT))
    runs = pd.DataFrame(rows)
    hp = with_values(hparams_from_config(config, len(runs)), {
        "train.lr": runs["lr"].to_numpy(), "train.entropy_coeff": runs["entropy_coeff"].to_numpy(),
        "train.length_cost": runs["length_cost"].to_numpy(), "merge.topsim_weight": runs["topsim_weight"].to_numpy()})
    return runs, hp


def tidy_scores(scores: dict, **labels) -> list[dict]:
    """Rows of `{split: {metric: value or [n]}}`, one per (split, metric[, alpha index])."""
    rows = []
    for split, metrics in scores.items():
        for metric, value in metrics.items():
            values = np.atleast_1d(np.asarray(value, np.float64))
            for i, v in enumerate(values):
                rows.append(dict(labels, split=split, metric=metric, value=float(v), point=i))
    return rows


def train_phase(trainer, keys, hp, start, progress: bool, name: str):
    bar, on_block = progress_bar(trainer.n_evals + 1, name, progress)
    try:
        return fine_tune(trainer, keys, hp, start, on_block=on_block)
    finally:
        bar.close()


def evaluate(judge: M.Judge, ancestors: list, tuned: list, runs: pd.DataFrame, lineages: list, alphas) -> tuple[pd.DataFrame, list[str]]:
    """Every evaluation of the study as one tidy table; and the merge warnings raised (each with its barrier)."""
    rows, notes = [], []
    n_ancestors = len(ancestors)
    for a in range(n_ancestors):
        members = runs.index[(runs["ancestor"] == a) & (runs["kind"] == "diwa")].tolist()
        pool, family = [tuned[i] for i in members], [lineages[i] for i in members]
        scores = judge(M.stack(pool))
        best = ranking(scores, "validation")[0]
        rows += tidy_scores(judge.pair(ancestors[a]), condition="ancestor", ancestor=a)
        rows += tidy_scores(jax.tree.map(lambda v: v[best], scores), condition="best single", ancestor=a)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", M.MergeWarning)
            for method in ("uniform", "greedy", "slerp"):
                merged = M.merge(judge, pool, family, method, ancestor=ancestors[a])  # barrier at alpha 0.5
                rows += tidy_scores(judge.pair(merged.pair), condition=f"{method} soup", ancestor=a,
                                    members=len(merged.chosen), barrier=merged.barrier["validation"]["accuracy"])
        notes += [f"ancestor {a}: {w.message}" for w in caught]
        rows += tidy_scores(judge.ensemble(M.stack(pool)), condition="ensemble", ancestor=a)
        for side in M.connectivity.SIDES:
            j = (a + 1) % n_ancestors
            shared, independent = M.connectivity.curves(judge, [(pool[0], pool[1]), (ancestors[a], ancestors[j])], side, alphas)
            rows += tidy_scores(shared.scores, condition="shared ancestor", ancestor=a, side=side)
            rows += tidy_scores(independent.scores, condition="independent starts", ancestor=a, side=side)
        length, structure = (tuned[runs.index[(runs["ancestor"] == a) & (runs["kind"] == k)][0]] for k in ("length", "structure"))
        rows += tidy_scores(M.curve(judge, length, structure, "both", alphas).scores, condition="rewarded soup", ancestor=a)
    table = pd.DataFrame(rows)
    table["alpha"] = np.where(table["condition"].isin(["shared ancestor", "independent starts", "rewarded soup"]),
                              np.asarray(alphas)[table["point"].clip(upper=len(alphas) - 1)], np.nan)
    return table.drop(columns="point"), notes


def barrier_table(table: pd.DataFrame, split: str = "train") -> pd.DataFrame:
    """One row per (condition, side, ancestor): the accuracy and loss barriers of its curve on `split`."""
    curves = table[table["condition"].isin(["shared ancestor", "independent starts"]) & (table["split"] == split)]
    rows = []
    for (condition, side, ancestor), c in curves.groupby(["condition", "side", "ancestor"]):
        curve = M.Curve(np.sort(c["alpha"].unique()), {split: {m: c[c["metric"] == m].sort_values("alpha")["value"].to_numpy()
                                                               for m in ("accuracy", "loss")}})
        rows.append(dict(condition=condition, side=side, ancestor=ancestor,
                         accuracy_barrier=M.barrier(curve, split, "accuracy"), loss_barrier=M.barrier(curve, split, "loss")))
    return pd.DataFrame(rows)


def mean_se(values) -> tuple[float, float]:
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")


def summarize(table: pd.DataFrame, barriers: pd.DataFrame) -> pd.DataFrame:
    """Per method: test accuracy and loss, mean and standard error over ancestors; per barrier kind: the barriers."""
    rows = []
    test = table[(table["split"] == "test") & table["condition"].isin(("ancestor",) + METHODS)]
    for condition in ("ancestor",) + METHODS:
        row = dict(condition=condition)
        for metric in ("accuracy", "loss", "topsim"):
            values = test[(test["condition"] == condition) & (test["metric"] == metric)].sort_values("ancestor")["value"]
            row[f"test {metric} mean"], row[f"test {metric} se"] = mean_se(values)
        row["ancestors"] = int(test[test["condition"] == condition]["ancestor"].nunique())
        rows.append(row)
    for (condition, side), b in barriers.groupby(["condition", "side"], sort=False):
        row = dict(condition=f"{condition} ({side})", ancestors=len(b))
        for metric in ("accuracy_barrier", "loss_barrier"):
            row[f"train {metric} mean"], row[f"train {metric} se"] = mean_se(b[metric])
        rows.append(row)
    return pd.DataFrame(rows).set_index("condition")


def paired(table: pd.DataFrame, condition: str, reference: str, metric: str, split: str = "test") -> tuple[float, float]:
    """Mean and standard error over ancestors of `condition - reference` on (split, metric)."""
    t = table[(table["split"] == split) & (table["metric"] == metric)]
    by = lambda c: t[t["condition"] == c].set_index("ancestor")["value"].sort_index()  # noqa: E731
    return mean_se(by(condition) - by(reference))


def call(mean: float, se: float, higher_is_better: bool) -> str:
    """The stated rule: better / worse when |mean| > RULE standard errors, otherwise no detectable difference."""
    if not np.isfinite(se) or abs(mean) <= RULE * se:
        return "no detectable difference"
    return "better" if (mean > 0) == higher_is_better else "worse"


def front_table(table: pd.DataFrame, split: str = "train") -> pd.DataFrame:
    """The rewarded soup at each alpha: mean over ancestors of message length, topsim and accuracy on `split`."""
    f = table[(table["condition"] == "rewarded soup") & (table["split"] == split)
              & table["metric"].isin(["message_length", "topsim", "accuracy"])]
    return f.pivot_table(index=["ancestor", "alpha"], columns="metric", values="value").reset_index()


def verdict(table: pd.DataFrame, barriers: pd.DataFrame, front: pd.DataFrame) -> str:
    text = []
    both = barriers[barriers["side"] == "both"]
    shared_m, shared_se = mean_se(both[both["condition"] == "shared ancestor"]["accuracy_barrier"])
    indep_m, indep_se = mean_se(both[both["condition"] == "independent starts"]["accuracy_barrier"])
    diff_se = float(np.hypot(shared_se, indep_se))
    confirmed = indep_m - shared_m > RULE * diff_se
    text.append(
        f"Barriers (accuracy on the train objects, sender and receiver merged together): between two pairs trained from "
        f"independent random starts {indep_m:.2f} ± {indep_se:.2f}, between two fine-tunings of one ancestor "
        f"{shared_m:.2f} ± {shared_se:.2f} (mean ± standard error over {len(both) // 2} ancestors). "
        + ("Both facts of §0 hold: agents from independent starts speak languages whose weights do not average, "
           "fine-tunings of a shared ancestor do (the difference exceeds its standard error twice)."
           if confirmed else "The difference is within two standard errors: this run does not separate the two cases."))
    for side in ("senders", "receivers"):
        s = barriers[barriers["side"] == side]
        sm, ss = mean_se(s[s["condition"] == "shared ancestor"]["accuracy_barrier"])
        im, is_ = mean_se(s[s["condition"] == "independent starts"]["accuracy_barrier"])
        text.append(f"Merging only the {side}: {im:.2f} ± {is_:.2f} independent vs {sm:.2f} ± {ss:.2f} shared.")
    calls = []
    for method in METHODS[1:]:
        acc_m, acc_se = paired(table, method, "best single", "accuracy")
        loss_m, loss_se = paired(table, method, "best single", "loss")
        calls.append(f"{method} {acc_m:+.3f} ± {acc_se:.3f} accuracy ({call(acc_m, acc_se, True)}), "
                     f"{loss_m:+.2f} ± {loss_se:.2f} nats of loss ({call(loss_m, loss_se, False)})")
    text.append("On the compositional test split, against the best single fine-tuning (chosen by held-out validation "
                "accuracy), paired over ancestors: " + "; ".join(calls) + ".")
    mid = front[np.isclose(front["alpha"], 0.5)].set_index("ancestor")
    ends = front[np.isclose(front["alpha"], 0.0) | np.isclose(front["alpha"], 1.0)]
    lin = ends.groupby("ancestor")[["message_length", "topsim", "accuracy"]].mean()  # the chord at alpha 0.5
    above_topsim = mean_se(mid["topsim"] - lin["topsim"])
    below_length = mean_se(lin["message_length"] - mid["message_length"])
    length_gap = mean_se(ends[np.isclose(ends["alpha"], 1.0)].set_index("ancestor")["message_length"]
                         - ends[np.isclose(ends["alpha"], 0.0)].set_index("ancestor")["message_length"])
    topsim_call, length_call = call(*above_topsim, True), call(*below_length, True)
    if "worse" in (topsim_call, length_call):
        conclusion = "on at least one reward the soup falls below the chord: here interpolating weights does worse than interpolating rewards"
    else:
        conclusion = ("on neither reward does the soup fall below the chord: interpolating the weights does at least as well "
                      "as interpolating the rewards")
    text.append(
        f"Rewarded soups (weights interpolated from the length-cost run, alpha=0, to the structure-reward run, alpha=1; "
        f"on the train objects, which the rewards were optimised on): the structure run's messages are "
        f"{length_gap[0]:+.2f} ± {length_gap[1]:.2f} symbols longer; at alpha=0.5 the soup's topsim is "
        f"{above_topsim[0]:+.3f} ± {above_topsim[1]:.3f} above the chord between the endpoints ({topsim_call}) and its "
        f"messages {below_length[0]:+.2f} ± {below_length[1]:.2f} symbols shorter than the chord ({length_call}): {conclusion}.")
    text.append(f"(Rule: an effect is called when |mean difference| > {RULE:g} standard errors over ancestors.)")
    return " ".join(text)


# -- figures ---------------------------------------------------------------------------------------------


def barrier_figure(table: pd.DataFrame, path: Path, split: str = "train") -> None:
    data = table[table["condition"].isin(["shared ancestor", "independent starts"]) & (table["split"] == split)
                 & table["metric"].isin(["accuracy", "loss"])]
    grid = sns.relplot(data=data, x="alpha", y="value", hue="condition", row="metric", col="side",
                       col_order=list(M.connectivity.SIDES), kind="line", errorbar="sd", marker="o",
                       facet_kws=dict(sharey="row"), height=2.8, aspect=1.2)
    for (metric, side), ax in grid.axes_dict.items():
        ax.set_title(f"merged: {side}", fontsize=9)
        ax.set_xlabel("alpha (0: one endpoint, 1: the other)")
        ax.set_ylabel(f"{split} {metric}")
    grid.figure.suptitle(f"interpolation curves on the {split} objects: mean, band = ±1 std over ancestors", y=1.02, fontsize=9)
    grid.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(grid.figure)


def soups_figure(table: pd.DataFrame, path: Path) -> None:
    data = table[(table["split"] == "test") & table["condition"].isin(("ancestor",) + METHODS)
                 & table["metric"].isin(["accuracy", "loss"])]
    order = ["ancestor", *METHODS]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, metric in zip(axes, ("accuracy", "loss")):
        d = data[data["metric"] == metric]
        sns.stripplot(data=d, x="condition", y="value", order=order, hue="ancestor", palette="tab10", ax=ax, size=6, jitter=0.1)
        sns.pointplot(data=d, x="condition", y="value", order=order, color="black", errorbar="se", ax=ax, markers="_",
                      linestyles="none")
        ax.set_xlabel("")
        ax.set_ylabel(f"test {metric}")
        ax.tick_params(axis="x", rotation=30)
        ax.legend(title="ancestor", fontsize=7, title_fontsize=7)
    fig.suptitle("compositional test split: one point per ancestor, black = mean ± standard error", fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def front_figure(front: pd.DataFrame, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    for ancestor, f in front.groupby("ancestor"):
        f = f.sort_values("alpha")
        axes[0].plot(f["message_length"], f["topsim"], "-", color="grey", alpha=0.5)
        points = axes[0].scatter(f["message_length"], f["topsim"], c=f["alpha"], cmap="viridis", vmin=0, vmax=1, s=25)
        axes[1].plot(f["alpha"], f["accuracy"], "-o", ms=3, label=f"ancestor {ancestor}")
    fig.colorbar(points, ax=axes[0], label="alpha (0: length run, 1: structure run)")
    axes[0].set_xlabel("message length (symbols; the length run's goal: lower)")
    axes[0].set_ylabel("topsim (the structure run's goal: higher)")
    axes[0].set_title("rewarded-soups front, one line per ancestor", fontsize=9)
    axes[1].set_xlabel("alpha")
    axes[1].set_ylabel("accuracy")
    axes[1].set_title("communication along the front", fontsize=9)
    axes[1].legend(fontsize=7)
    fig.suptitle("on the train objects", fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def report_text(summary: pd.DataFrame, verdict_text: str, notes: list[str], seconds: float, small: bool,
                load: tuple[float, float, float]) -> str:
    return "\n".join([
        f"# Study: merging{' (small mode)' if small else ''}",
        "",
        verdict_text,
        "",
        "![barriers](barriers.png)",
        "",
        "![soups](soups.png)",
        "",
        "![front](front.png)",
        "",
        "Mean and standard error over ancestors (methods: test split; barriers: train objects):",
        "",
        "```",
        summary.to_string(float_format=lambda v: f"{v:.3f}"),
        "```",
        "",
        "Merge reports (every merge warns when its lineage has no common ancestor or its barrier at alpha = 0.5 on the validation "
        "objects is above merge.max_barrier):",
        "",
        *([f"* {n}" for n in notes] or ["* none: every merge shared an ancestor and stayed under the gate"]),
        "",
        f"Ran in {seconds:.0f} s (load average over 1/5/15 min at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}, "
        f"{os.cpu_count()} cores).",
        "",
    ])


def merging(out: str | Path, small: bool = False, overwrite: bool = False, progress: bool = True,
            overrides: list[str] = ()) -> Study:
    """Weight averaging: best single vs soups vs ensemble, barriers (shared vs independent), rewarded soups; writes DIR."""
    out = Path(out)
    check_out(out, overwrite)
    cache.enable()
    start_time = time.perf_counter()
    configs = study_configs(small, overrides)
    s = SIZES[small]
    pre, tune = configs["pretrain"], configs["fine-tune"]
    pre_trainer, tune_trainer = make_trainer(pre), make_trainer(tune)
    n_anc = s["ancestors"]
    if progress:
        print(f"[pretrain] {n_anc} pairs from independent random starts x {pre.train.steps} steps", flush=True)
    scratch = M.Pair(*jax.vmap(pre_trainer.agents.init)(jax.random.split(jax.random.key(pre.train.seed), n_anc)))
    keys = jax.vmap(jax.random.key)(jnp.arange(pre.train.seed, pre.train.seed + n_anc))
    ancestors, pre_history = train_phase(pre_trainer, keys, hparams_from_config(pre, n_anc), scratch, progress, "pretrain")
    runs, hp = population(tune, n_anc, s["tuned"])
    if progress:
        print(f"[fine-tune] {len(runs)} runs ({s['tuned']} DiWA + 2 rewarded per ancestor) x {tune.train.steps} steps", flush=True)
    starts = jax.tree.map(lambda leaf: leaf[runs["ancestor"].to_numpy()], ancestors)
    tune_keys = jax.vmap(jax.random.key)(jnp.arange(len(runs)) + 1000 + tune.train.seed)
    tuned, tune_history = train_phase(tune_trainer, tune_keys, hp, starts, progress, "fine-tune")
    ancestors_list, tuned_list = M.unstack(ancestors), M.unstack(tuned)
    lineages = [lineage.fine_tuned_from(ancestors_list[a], f"ancestors/checkpoint.npz run {a}")[0] for a in runs["ancestor"]]
    if progress:
        print("[merge] soups, ensembles, barriers, fronts", flush=True)
    judge = M.Judge(tune_trainer.spec, eval_size=TOPSIM_OBJECTS)
    table, notes = evaluate(judge, ancestors_list, tuned_list, runs, lineages, tune.merge.alpha_grid)
    seconds = time.perf_counter() - start_time
    barriers = barrier_table(table)
    front = front_table(table)
    summary = summarize(table, barriers)
    text = verdict(table, barriers, front)
    training = pd.concat([
        results.tidy(pre_history, pre_trainer.eval_steps, np.arange(n_anc)).assign(phase="pretrain"),
        results.tidy(tune_history, tune_trainer.eval_steps, np.arange(len(runs))).assign(phase="fine-tune"),
    ], ignore_index=True)

    with staged(out, overwrite, kind="study") as staging:
        results.write_parquet(table, staging / "evaluations.parquet")
        results.write_parquet(training, staging / "training.parquet")
        runs.to_csv(staging / "runs.csv", index_label="run")
        barriers.to_csv(staging / "barriers.csv", index=False)
        summary.to_csv(staging / "summary.csv")
        barrier_figure(table, staging / "barriers.png")
        soups_figure(table, staging / "soups.png")
        front_figure(front, staging / "front.png")
        for name, pairs, extra in (("ancestors", ancestors, None), ("fine-tuned", tuned, lineage.extra(lineages))):
            (staging / name).mkdir()
            checkpoint.save(staging / name / checkpoint.FILENAME, *M.as_population(pairs), np.arange(len(jax.tree.leaves(pairs)[0])),
                            extra=extra)
        (staging / "configs").mkdir()
        for name, config in configs.items():
            (staging / "configs" / f"{name}.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
        (staging / "report.md").write_text(report_text(summary, text, notes, seconds, small, os.getloadavg()))
    table = table.assign(seed=table["ancestor"])
    return Study(table, summary, text, seconds)
