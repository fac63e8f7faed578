"""`lab study merging --out DIR [--small | --preset NAME]`: do the weights of communicating agents average? (DiWA-style)

From pairs pretrained from independent random starts (the ancestors), each ancestor's population
is fine-tuned with varied hyperparameters and seeds (Ramé et al. 2022's DiWA), and two more runs
on different rewards (Ramé et al. 2023's rewarded soups). Then, per ancestor (the unit of replication,
the study's "seed"):

* the baseline's problem: how far apart the single fine-tunings end on the test split (the spread a
  soup could exploit);
* best single (by held-out validation accuracy) vs uniform soup vs greedy soup vs SLERP soup vs
  the logit ensemble of the same runs, on the compositional test split;
* interpolation barriers (senders, receivers, both) between two fine-tunings of one ancestor, and
  between two ancestors (independent starts: symbol-permuted languages, §0 of algorithms.md);
* the rewarded-soups front: the weights interpolated between the run fine-tuned with a message
  length cost and the run fine-tuned with a structure (topsim) reward.

Each claim is judged over ancestors by the shared rule (lab.report.studies.common). Both phases train
through the grid runner (lab.experiment.grid): the pretraining in one call, every fine-tuning in another.

DIR/metrics.parquet      tidy training histories: condition (pretrain / fine-tune), ancestor, member, kind, seed, step, ...
DIR/evaluations.parquet  tidy: condition, ancestor, member, side, alpha, split, metric, value
DIR/per_seed.csv         per (condition, ancestor): the measures the claims read
DIR/runs.csv, barriers.csv, summary.csv, claims.csv, barriers.png, soups.png, front.png, report.md
DIR/ancestors/checkpoint.npz, DIR/fine-tuned/checkpoint.npz (with their lineage), DIR/configs/*.yaml
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

import jax
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from lab import merging as M
from lab.core.spec import Spec
from lab.experiment import cache, checkpoint, results
from lab.experiment.config import Config
from lab.experiment.grid import Cell, stacked_state, train_grid, with_fields
from lab.merging import lineage
from lab.merging.soups import ranking
from lab.report.studies.common import Claim, Declaration, Result, run

# A compositional split of K=4 attributes x V=4 values: 205 train objects (20 of them held out for validation), 51 test.
WORLD = ["game.kind=reconstruction", "game.n_attributes=4", "game.n_values=4", "game.split=compositional",
         "merge.validation=0.1", "agents.hidden_size=64", "agents.embedding_size=16", "train.lr=0.005"]
SIZES = {  # ancestors (independent starts), DiWA runs per ancestor, pretraining and fine-tuning
    "small": dict(ancestors=3, tuned=4, pretrain=["train.steps=1200", "train.eval_every=200", "train.batch_size=128"],
                  tune=["train.steps=300", "train.eval_every=150", "train.batch_size=64"]),
    "full": dict(ancestors=8, tuned=12, pretrain=["train.steps=4000", "train.eval_every=500", "train.batch_size=128"],
                 tune=["train.steps=1500", "train.eval_every=500", "train.batch_size=128"]),
}
LR_SCALES, ENTROPY = (0.5, 1.0, 2.0), (0.005, 0.02)  # DiWA's "mild" draws: multiples of the pretraining lr
LENGTH_COST, TOPSIM_WEIGHT = 1.0, 5.0  # the two proxy rewards of the rewarded soups
TOPSIM_OBJECTS = 100  # objects per split the judge's topsim reads (n^2 pairs of them)
METHODS = ("best single", "uniform soup", "greedy soup", "slerp soup", "ensemble")
MARGINS = {"accuracy": 0.02, "barrier": 0.1, "topsim": 0.02, "length": 0.1}  # the smallest effects that matter


def conditions(preset: str) -> dict[str, list[str]]:
    """The two phases as conditions: pretraining (its seeds are the ancestors) and fine-tuning."""
    s = SIZES[preset]
    return {"pretrain": s["pretrain"] + [f"train.seeds={s['ancestors']}"],
            "fine-tune": s["tune"] + [f"merge.topsim_weight={TOPSIM_WEIGHT}"]}


def population(config: Config, n_ancestors: int, n_tuned: int):
    """The fine-tunings: a table describing each run, and its cell's config.

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
    configs = [with_fields(config, {"train.lr": r.lr, "train.entropy_coeff": r.entropy_coeff, "train.length_cost": r.length_cost,
                                    "merge.topsim_weight": r.topsim_weight, "train.seeds": 1,
                                    "train.seed": 1000 + config.train.seed + i}) for i, r in enumerate(runs.itertuples())]
    return runs, configs


def tidy_scores(scores: dict, **labels) -> list[dict]:
    """Rows of `{split: {metric: value or [n]}}`, one per (split, metric[, alpha index])."""
    rows = []
    for split, metrics in scores.items():
        for metric, value in metrics.items():
            values = np.atleast_1d(np.asarray(value, np.float64))
            for i, v in enumerate(values):
                rows.append(dict(labels, split=split, metric=metric, value=float(v), point=i))
    return rows




class Trained(NamedTuple):
    """Both phases: the ancestors and fine-tunings (lists of `Pair`), the runs' table and lineages, the judge's table."""

    ancestors: list
    tuned: list
    runs: pd.DataFrame
    lineages: list
    evaluations: pd.DataFrame
    notes: list[str]  # the merge warnings raised (each with its barrier)
    cell_runs: list  # lab.experiment.grid.CellRun of both phases


def train(configs: dict[str, Config], progress: bool, preset: str) -> tuple[Trained, pd.DataFrame]:
    """Pretrain the ancestors (one compiled call), fine-tune every run from its ancestor (one more), then judge every
    merge: `(Trained, the tidy training table)`."""
    cache.enable()
    pre, tune = configs["pretrain"], configs["fine-tune"]
    n_anc = pre.train.seeds
    keys = jax.random.split(jax.random.key(pre.train.seed), n_anc)
    scratch = M.as_population(M.Pair(*jax.vmap(Spec(pre).agents.init)(keys)))  # [n, 1, ...]: independent starts
    first = train_grid([Cell({"condition": "pretrain"}, pre, scratch)], progress, name="pretrain")
    ancestors = M.pairs_of(first.runs[0].state.senders, first.runs[0].state.receivers)
    runs, tune_configs = population(tune, n_anc, SIZES[preset]["tuned"])
    starts = M.as_population(jax.tree.map(lambda leaf: leaf[runs["ancestor"].to_numpy()], ancestors))
    cells = [Cell({"condition": "fine-tune", "ancestor": r.ancestor, "member": r.member, "kind": r.kind}, config,
                  jax.tree.map(lambda leaf, i=i: leaf[i:i + 1], starts)) for i, (r, config) in enumerate(zip(runs.itertuples(), tune_configs))]
    second = train_grid(cells, progress, name="fine-tune")
    tuned = M.pairs_of(stacked_state(second.runs, "senders"), stacked_state(second.runs, "receivers"))
    ancestors_list, tuned_list = M.unstack(ancestors), M.unstack(tuned)
    lineages = [lineage.fine_tuned_from(ancestors_list[a], f"ancestors/checkpoint.npz run {a}")[0] for a in runs["ancestor"]]
    judge = M.Judge(second.runs[0].trainer.spec, eval_size=TOPSIM_OBJECTS)
    evaluations, notes = evaluate(judge, ancestors_list, tuned_list, runs, lineages, tune.merge.alpha_grid)
    table = pd.concat([first.table, second.table], ignore_index=True)
    return Trained(ancestors_list, tuned_list, runs, lineages, evaluations, notes, first.runs + second.runs), table


def evaluate(judge: M.Judge, ancestors: list, tuned: list, runs: pd.DataFrame, lineages: list, alphas) -> tuple[pd.DataFrame, list[str]]:
    """Every evaluation of the study as one tidy table; and the merge warnings raised (each with its barrier)."""
    rows, notes = [], []
    n_ancestors = len(ancestors)
    for a in range(n_ancestors):
        members = runs.index[(runs["ancestor"] == a) & (runs["kind"] == "diwa")].tolist()
        pool, family = [tuned[i] for i in members], [lineages[i] for i in members]
        scores = judge(M.stack(pool))
        best = ranking(scores, "validation")[0]
        for i in range(len(pool)):
            rows += tidy_scores(jax.tree.map(lambda v: v[i], scores), condition="single", ancestor=a, member=i)
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


def front_table(table: pd.DataFrame, split: str = "train") -> pd.DataFrame:
    """The rewarded soup at each alpha: mean over ancestors of message length, topsim and accuracy on `split`."""
    f = table[(table["condition"] == "rewarded soup") & (table["split"] == split)
              & table["metric"].isin(["message_length", "topsim", "accuracy"])]
    return f.pivot_table(index=["ancestor", "alpha"], columns="metric", values="value").reset_index()


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




def per_seed(trained: Trained, configs) -> pd.DataFrame:
    """One row per (condition, ancestor), the ancestor as the seed: the test scores of the ancestor, of every method and
    of the single fine-tunings' spread; the barriers of each kind of pair; the rewarded soup against its chord."""
    table = trained.evaluations
    test = table[table["split"] == "test"]
    rows = []
    for condition in ("ancestor",) + METHODS:
        own = test[test["condition"] == condition].pivot_table(index="ancestor", columns="metric", values="value")
        for a, values in own.iterrows():
            rows.append({"condition": condition, "seed": a, **{f"test {m}": values[m] for m in ("accuracy", "loss", "topsim")}})
    singles = test[(test["condition"] == "single") & (test["metric"] == "accuracy")].groupby("ancestor")["value"]
    rows += [{"condition": "single", "seed": a, "test accuracy spread": v} for a, v in (singles.max() - singles.min()).items()]
    for (condition, ancestor), b in barrier_table(table).groupby(["condition", "ancestor"]):
        rows.append({"condition": condition, "seed": ancestor,
                     **{f"{kind} barrier ({side})": value for side, kind, value in
                        b.melt(id_vars="side", value_vars=["accuracy_barrier", "loss_barrier"]).assign(
                            variable=lambda f: f["variable"].str.removesuffix("_barrier")).itertuples(index=False)}})
    front = front_table(table).set_index(["ancestor", "alpha"])
    for a in front.index.unique("ancestor"):
        f = front.loc[a]
        ends = f.loc[[f.index.min(), f.index.max()]]
        mid = f.iloc[np.argmin(np.abs(f.index.to_numpy() - 0.5))]
        rows.append({"condition": "rewarded soup", "seed": a, "topsim above the chord": mid["topsim"] - ends["topsim"].mean(),
                     "length below the chord": ends["message_length"].mean() - mid["message_length"],
                     "length gap (structure - length run)": ends["message_length"].iloc[-1] - ends["message_length"].iloc[0]})
    return pd.DataFrame(rows)


def opening(result: Result) -> str:
    """The baseline's problem, in numbers: how far apart the single fine-tunings of one ancestor end on the test split,
    against what the best single one (chosen on validation) reaches."""
    seeds = result.seeds.set_index(["condition", "seed"])
    spread, best = seeds.loc["single"]["test accuracy spread"], seeds.loc["best single"]["test accuracy"]
    return (f"The baseline's problem: the single fine-tunings of one ancestor end {spread.mean():.3f} apart in test "
            f"accuracy (best minus worst, mean over {len(spread)} ancestors; from {spread.min():.3f} to {spread.max():.3f}), "
            f"while the best single one, chosen on validation, reaches {best.mean():.3f}: "
            + ("a spread a soup could exploit." if spread.mean() >= MARGINS["accuracy"] else
               f"less than the {MARGINS['accuracy']:g} margin, so a soup has little to gain over the best single run."))


def notes(result: Result) -> list[str]:
    seeds = result.seeds.set_index(["condition", "seed"])
    text = []
    for side in ("senders", "receivers"):
        pair = [seeds.loc[c][f"accuracy barrier ({side})"] for c in ("independent starts", "shared ancestor")]
        text.append(f"Merging only the {side}: accuracy barrier {pair[0].mean():.2f} between independent starts, "
                    f"{pair[1].mean():.2f} between fine-tunings of one ancestor.")
    gap = seeds.loc["rewarded soup"]["length gap (structure - length run)"]
    text.append(f"Rewarded soups (weights interpolated from the length-cost run, alpha=0, to the structure-reward run, "
                f"alpha=1; on the train objects, which the rewards were optimised on): the structure run's messages are "
                f"{gap.mean():+.2f} symbols longer on average; at alpha=0.5 the soup is compared with the chord between the "
                f"endpoints.")
    warned = result.grid.notes
    text.append("Merge reports: " + ("; ".join(warned) if warned else "none: every merge shared an ancestor and stayed "
                                     "under the barrier gate") + ".")
    return text


def write_checkpoint(pairs: list, path: Path, lineages: list | None = None) -> None:
    """`path/checkpoint.npz` of the pairs, with their lineage when they were fine-tuned."""
    path.mkdir()
    checkpoint.save(path / checkpoint.FILENAME, *M.as_population(M.stack(pairs)), np.arange(len(pairs)),
                    extra=None if lineages is None else lineage.extra(lineages))


STUDY = Declaration(
    name="merging", title="merging",
    question="Do the weights of communicating agents average? Pairs pretrained from independent starts (the ancestors), "
             "each fine-tuned many times (DiWA); soups, ensembles, interpolation barriers and a rewarded-soups front, "
             "judged over ancestors (an ancestor is the study's seed).",
    presets={"small": WORLD, "full": WORLD}, conditions=conditions,
    claims=(
        Claim("problem", "the single fine-tunings of one ancestor end apart on the test split (a spread a soup could "
              "exploit)", "test accuracy spread", MARGINS["accuracy"], conditions=("single",), baseline=None),
        Claim("barrier", "pairs from independent starts do not average: their accuracy barrier exceeds that of two "
              "fine-tunings of one ancestor", "accuracy barrier (both)", MARGINS["barrier"], conditions=("independent starts",),
              baseline="shared ancestor"),
        Claim("soups", "merging the fine-tunings beats the best single one (chosen on validation) on the test split",
              "test accuracy", MARGINS["accuracy"], conditions=METHODS[1:], baseline="best single"),
        Claim("front topsim", "the rewarded soup at alpha=0.5 lies above the chord in topsim", "topsim above the chord",
              MARGINS["topsim"], conditions=("rewarded soup",), baseline=None),
        Claim("front length", "the rewarded soup at alpha=0.5 speaks shorter than the chord", "length below the chord",
              MARGINS["length"], conditions=("rewarded soup",), baseline=None, unit=" symbols"),
    ),
    train=train, per_seed=per_seed, opening=opening, notes=notes, seeds="ancestors",
    outputs={"evaluations.parquet": lambda r, p: results.write_parquet(r.grid.evaluations, p),
             "runs.csv": lambda r, p: r.grid.runs.to_csv(p, index_label="run"),
             "barriers.csv": lambda r, p: barrier_table(r.grid.evaluations).to_csv(p, index=False),
             "barriers.png": lambda r, p: barrier_figure(r.grid.evaluations, p),
             "soups.png": lambda r, p: soups_figure(r.grid.evaluations, p),
             "front.png": lambda r, p: front_figure(front_table(r.grid.evaluations), p),
             "ancestors": lambda r, p: write_checkpoint(r.grid.ancestors, p),
             "fine-tuned": lambda r, p: write_checkpoint(r.grid.tuned, p, r.grid.lineages)},
)


def merging(out: str | Path, small: bool = False, overwrite: bool = False, progress: bool = True, overrides: list[str] = (),
            preset: str | None = None):
    """Weight averaging: best single vs soups vs ensemble, barriers (shared vs independent), rewarded soups; writes DIR."""
    return run(STUDY, out, small=small, preset=preset, overwrite=overwrite, progress=progress, overrides=overrides)
