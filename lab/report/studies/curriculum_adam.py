"""`lab study curriculum-adam --out DIR [--small]`: does a curriculum help, or does it make up for a badly tuned Adam?

Every scheduler of the `curriculum` section trains against the uniform baseline over a grid of
Adam's learning rate x beta2 (x epsilon in full mode), several seeds each (Weber et al. 2023,
../shared/science/paper-details.md §1). One compiled call per scheduler trains its whole grid and
every seed (lab.experiment.execute.train_runs, the grid as continuous hparams); schedulers
that differ only in continuous knobs (linear and sqrt competence; the commentary, drifting or
shuffled) share their call. Every run of a seed starts from the same agents, so differences at
one Adam setting are paired.

DIR/metrics.parquet   tidy: scheduler, lr, beta2, eps, seed, step, split, metric, value
DIR/summary.csv       per scheduler and Adam setting: final test accuracy (mean, std over seeds), its advantage
DIR/heatmap.png       final test accuracy per scheduler over the Adam grid
DIR/advantage.png     advantage over uniform at the same setting, and over the best-tuned uniform, bands over seeds
DIR/mechanism.png     Adam's update size relative to uniform, the speed of the data mix, the weights' mean, over training
DIR/report.md         the figures, the table and the verdict
DIR/configs/*.yaml    the resolved config of each scheduler
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import yaml

from lab.core.hparams import concatenate, continuous_keys, hparams_from_config, with_values
from lab.core.trainer import Trainer, seed_keys
from lab.experiment import results
from lab.experiment.build import make_trainer
from lab.experiment.config import Config, load, to_dict
from lab.experiment.execute import train_runs
from lab.experiment.io import check_out, staged
from lab.experiment.run import progress_bar
from lab.report.studies import curriculum_figures as figures
from lab.report.studies.common import Study

# Discrimination among 5 candidates in a world of K=3 attributes x V=5 values, a quarter of them held out
# (compositional split: 94 train, 31 test objects): held-out objects can be told apart, so test accuracy
# says something. The difficulty axis is the values in play per attribute: a world that grows from 1 to 5 values.
WORLD = ["game.kind=discrimination", "game.n_attributes=3", "game.n_values=5", "game.n_distractors=4",
         "game.split=compositional", "game.test_fraction=0.25", "curriculum.axis=values"]
SMALL = WORLD + ["agents.hidden_size=48", "agents.embedding_size=16", "agents.vocab_size=10", "agents.max_len=3",
                 "train.batch_size=64", "train.steps=400", "train.eval_every=50", "train.eval_size=64", "train.seeds=3",
                 "curriculum.meta_every=25", "curriculum.meta_steps=1", "curriculum.meta_batch=32"]
FULL = WORLD + ["agents.hidden_size=64", "agents.vocab_size=10", "agents.max_len=4", "train.batch_size=128",
                "train.steps=3000", "train.eval_every=100", "train.seeds=5"]
GRID_SMALL = {"train.lr": [1e-3, 3e-3, 1e-2], "train.beta2": [0.99, 0.999]}
GRID_FULL = {"train.lr": [3e-4, 1e-3, 3e-3, 1e-2], "train.beta2": [0.9, 0.99, 0.999], "train.eps": [1e-8, 1e-5]}
REFERENCE = {"train.lr": 3e-3, "train.beta2": 0.999, "train.eps": 1e-8}  # the setting the mechanism figure shows

BASELINE = "uniform"
SCHEDULERS = {
    BASELINE: [],
    "competence-linear": ["curriculum.kind=competence", "curriculum.power=1"],
    "competence-sqrt": ["curriculum.kind=competence", "curriculum.power=2"],
    "anti-curriculum": ["curriculum.kind=competence", "curriculum.order=hard_first"],
    "random-order": ["curriculum.kind=competence", "curriculum.order=random"],
    "baby-steps": ["curriculum.kind=baby_steps"],
    "one-pass": ["curriculum.kind=one_pass"],
    "bandit": ["curriculum.kind=bandit"],
    "self-paced": ["curriculum.kind=self_paced"],
    "commentary": ["curriculum.kind=commentary"],
    "commentary-drift": ["curriculum.kind=commentary", "curriculum.drift=1"],
    "commentary-shuffled": ["curriculum.kind=commentary", "curriculum.shuffle=1"],
}
PACED = ("competence-linear", "competence-sqrt", "anti-curriculum", "random-order", "baby-steps", "one-pass")
KEYS = ("lr", "beta2", "eps")  # the Adam grid's columns in the tables
def study_configs(small: bool, overrides: list[str] = (), schedulers=None) -> dict[str, Config]:
    """The validated config of every scheduler (or of `schedulers`, the baseline always first)."""
    names = [BASELINE] + [n for n in (schedulers or SCHEDULERS) if n != BASELINE]
    base = SMALL if small else FULL
    return {name: load(overrides=base + SCHEDULERS[name] + list(overrides)) for name in names}


def adam_grid(small: bool) -> list[dict[str, float]]:
    """The Adam settings, one dict `{train.lr: ..., train.beta2: ..., train.eps: ...}` per cell."""
    grid = {**{"train.eps": [REFERENCE["train.eps"]]}, **(GRID_SMALL if small else GRID_FULL)}
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def static_key(config: Config) -> str:
    """What a compile group shares: the config with every continuous field at its default."""
    tree = to_dict(config)
    for key in continuous_keys(config):
        section, name = key.split(".")
        tree[section][name] = None
    return yaml.safe_dump(tree, sort_keys=True)


def compile_groups(configs: dict[str, Config]) -> list[list[str]]:
    groups: dict[str, list[str]] = {}
    for name, config in configs.items():
        groups.setdefault(static_key(config), []).append(name)
    return list(groups.values())


def initial_agents(trainer: Trainer, keys: jax.Array):
    """`(senders [S, 1, ...], receivers [S, 1, ...])`: the agents `trainer.init` would draw for each seed's key."""
    def one(key):
        key_agents = jax.random.split(trainer.run_keys(key)[0], 4)[0]
        return jax.tree.map(lambda leaf: leaf[None], trainer.agents.init(key_agents))

    # one seed at a time, op by op: compiling the vmapped init costs more than running it (tens of seconds on a CPU)
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *[one(key) for key in keys])


def run_group(configs: dict[str, Config], names: list[str], cells: list[dict], agents, progress: bool) -> pd.DataFrame:
    """Train every scheduler of one compile group over every Adam cell and seed in one call: a tidy table."""
    first = configs[names[0]]
    trainer = make_trainer(first)
    seeds = np.arange(first.train.seed, first.train.seed + first.train.seeds)
    S = len(seeds)
    members = [(name, cell) for name in names for cell in cells]  # run i = member i // S, seed i % S
    hparams = concatenate([with_values(hparams_from_config(configs[name], S), {k: jnp.full(S, v) for k, v in cell.items()})
                           for name, cell in members])
    keys = jnp.tile(seed_keys(first), len(members))
    tiled = jax.tree.map(lambda leaf: jnp.tile(leaf, (len(members),) + (1,) * (leaf.ndim - 1)), agents)
    bar, on_block = progress_bar(trainer.n_evals + 1, f"{' + '.join(names)}: {len(keys)} runs", progress)
    start = time.perf_counter()
    try:
        _, history = train_runs(trainer, keys, hparams, on_block=on_block, agents=tiled)
    finally:
        bar.close()
    if progress:
        print(f"[{' + '.join(names)}] {len(keys)} runs in {time.perf_counter() - start:.0f} s", flush=True)
    table = results.tidy(history, trainer.eval_steps, np.arange(len(keys)))
    run = table.pop("seed").to_numpy()
    member = run // S
    table.insert(0, "seed", seeds[run % S])
    table.insert(0, "scheduler", np.array(names)[[names.index(members[m][0]) for m in range(len(members))]][member])
    for key in KEYS:
        table.insert(1, key, np.array([members[m][1][f"train.{key}"] for m in range(len(members))])[member])
    return table


def final_accuracy(table: pd.DataFrame) -> pd.DataFrame:
    """Final test accuracy per (scheduler, lr, beta2, eps, seed)."""
    last = table[(table["split"] == "test") & (table["metric"] == "accuracy")]
    last = last[last["step"] == last["step"].max()]
    return last.groupby(["scheduler", *KEYS, "seed"], sort=False)["value"].mean().rename("accuracy").reset_index()


def advantages(finals: pd.DataFrame) -> pd.DataFrame:
    """Per run: its accuracy minus the baseline's at the same Adam setting and seed (paired), and minus the best-tuned
    baseline's at that seed (the baseline's best setting by mean over seeds)."""
    base = finals[finals["scheduler"] == BASELINE].set_index([*KEYS, "seed"])["accuracy"]
    means = base.groupby(list(KEYS)).mean()
    best_by_seed = base.loc[means.idxmax()]  # [seed]
    out = finals.copy()
    index = pd.MultiIndex.from_frame(out[[*KEYS, "seed"]])
    out["baseline"] = base.reindex(index).to_numpy()
    out["baseline_tuning"] = means.reindex(pd.MultiIndex.from_frame(out[list(KEYS)])).to_numpy()  # the setting's baseline mean
    out["advantage"] = out["accuracy"] - out["baseline"]
    out["advantage_vs_best"] = out["accuracy"] - best_by_seed.reindex(out["seed"]).to_numpy()
    return out


def summarize(finals: pd.DataFrame) -> pd.DataFrame:
    """One row per scheduler and Adam setting: final test accuracy and both advantages, mean and std over seeds."""
    table = advantages(finals)
    stats = table.groupby(["scheduler", *KEYS], sort=False).agg(
        seeds=("seed", "count"), accuracy_mean=("accuracy", "mean"), accuracy_std=("accuracy", "std"),
        advantage_mean=("advantage", "mean"), advantage_std=("advantage", "std"),
        advantage_vs_best_mean=("advantage_vs_best", "mean"), advantage_vs_best_std=("advantage_vs_best", "std"),
        baseline_tuning=("baseline_tuning", "first"))
    return stats.reset_index()


def best_settings(summary: pd.DataFrame) -> pd.DataFrame:
    """Each scheduler at its own best Adam setting (by mean final test accuracy), in the order of the study."""
    best = summary.loc[summary.groupby("scheduler", sort=False)["accuracy_mean"].idxmax()]
    return best.set_index("scheduler")


def relative_update_size(table: pd.DataFrame, reference: dict | None = None) -> pd.DataFrame:
    """Per scheduler, seed and evaluation step at one Adam setting: each batch statistic, and the update ratio
    (||update|| / lr, mean of sender and receiver) divided by the baseline's at the same step and seed."""
    batch = table[table["split"] == "batch"]
    if reference is not None:
        for key in KEYS:
            batch = batch[np.isclose(batch[key], reference[f"train.{key}"])]
    wide = batch.pivot_table(index=["scheduler", *KEYS, "seed", "step"], columns="metric", values="value").reset_index()
    wide = wide.reindex(columns=[*wide.columns, *(c for c in ("curriculum_shift", "curriculum_weight_mean") if c not in wide)])
    wide["update_ratio"] = 0.5 * (wide["sender_update_ratio"] + wide["receiver_update_ratio"])
    base = wide[wide["scheduler"] == BASELINE].set_index([*KEYS, "seed", "step"])["update_ratio"]
    wide["relative_update"] = wide["update_ratio"].to_numpy() / base.reindex(
        pd.MultiIndex.from_frame(wide[[*KEYS, "seed", "step"]])).to_numpy()
    return wide


def mechanism_numbers(wide: pd.DataFrame, pace_end: float) -> pd.DataFrame:
    """Per scheduler: the mean relative update size while the pacing runs and after it, the step of its largest
    data-mix shift, the relative update there, and the correlation over time of shift and relative update."""
    rows = []
    for name, own in wide[wide["scheduler"] != BASELINE].groupby("scheduler", sort=False):
        curve = own.groupby("step")[["relative_update", "curriculum_shift"]].mean()
        row = {"scheduler": name, "during": curve.loc[curve.index <= pace_end, "relative_update"].mean(),
               "after": curve.loc[curve.index > pace_end, "relative_update"].mean()}
        shift = curve["curriculum_shift"]
        if shift.max() > 0:  # NaN (no data-mix statistic) or 0 (a mix that never moves): no peak to speak of
            row.update(peak_step=shift.idxmax(), at_peak=curve.loc[shift.idxmax(), "relative_update"],
                       correlation=shift.corr(curve["relative_update"]))
        rows.append(row)
    return pd.DataFrame(rows).set_index("scheduler")


def _beats(row, base, z: float = 2.0) -> bool:
    noise = np.sqrt(row["accuracy_std"] ** 2 / row["seeds"] + base["accuracy_std"] ** 2 / base["seeds"])
    return row["accuracy_mean"] - base["accuracy_mean"] > z * (0.0 if np.isnan(noise) else noise)


def verdict(summary: pd.DataFrame, mechanism: pd.DataFrame) -> str:
    """Every claim read off the numbers: who beats the best-tuned baseline, whether the advantage shrinks with tuning,
    and what the update sizes show."""
    best = best_settings(summary)
    base = best.loc[BASELINE]
    setting = lambda row: f"lr={row['lr']:g}, beta2={row['beta2']:g}" + (f", eps={row['eps']:g}" if summary['eps'].nunique() > 1 else "")  # noqa: E731
    text = [f"The best-tuned uniform baseline ({setting(base)}) reaches a final test accuracy of {base['accuracy_mean']:.3f} "
            f"(std {base['accuracy_std']:.3f} over {int(base['seeds'])} seeds)."]
    others = best.drop(index=BASELINE)
    winners = [n for n, row in others.iterrows() if _beats(row, base)]
    losers = [n for n, row in others.iterrows() if _beats(base, row)]
    if winners:
        text.append("Beating it by more than two standard errors, each at its own best setting: " + "; ".join(
            f"{n} ({others.loc[n, 'accuracy_mean']:.3f} at {setting(others.loc[n])})" for n in winners) + ".")
    else:
        text.append("No scheduler, even at its own best Adam setting, beats it by more than two standard errors "
                    f"(best: {others['accuracy_mean'].idxmax()} at {others['accuracy_mean'].max():.3f}).")
    if losers:
        text.append(f"Worse than it by as much: {', '.join(losers)}.")
    curricula = summary[summary["scheduler"] != BASELINE]
    tuning = curricula.groupby(list(KEYS))[["baseline_tuning", "advantage_mean"]].mean().sort_values("baseline_tuning")
    slope = np.polyfit(tuning["baseline_tuning"], tuning["advantage_mean"], 1)[0] if len(tuning) > 1 else np.nan
    worst, best_tuned = tuning.iloc[0], tuning.iloc[-1]
    shrinks = slope < 0 and best_tuned["advantage_mean"] < worst["advantage_mean"]
    trend = ("shrinks" if worst["advantage_mean"] > 0 else "falls further below zero") if shrinks else "does not shrink"
    text.append(
        f"Averaged over the curricula, the advantage over uniform at the same Adam setting is "
        f"{worst['advantage_mean']:+.3f} where the baseline is tuned worst (its accuracy {worst['baseline_tuning']:.3f}) and "
        f"{best_tuned['advantage_mean']:+.3f} where it is tuned best ({best_tuned['baseline_tuning']:.3f}); the slope of "
        f"advantage against baseline accuracy over the {len(tuning)} settings is {slope:+.2f}, so the advantage "
        f"{trend} as Adam gets better tuned.")
    at_worst = curricula[np.isclose(curricula["baseline_tuning"], worst["baseline_tuning"])].set_index("scheduler")
    helped = [n for n, row in at_worst.iterrows()
              if row["advantage_mean"] > 2 * row["advantage_std"] / np.sqrt(row["seeds"]) and row["advantage_mean"] > 0]
    if helped:
        text.append("Where uniform is tuned worst, these help by more than two standard errors of the paired difference: "
                    + "; ".join(f"{n} ({at_worst.loc[n, 'advantage_mean']:+.3f})" for n in helped) + ".")
    paced = mechanism.loc[[n for n in PACED if n in mechanism.index]]
    if len(paced):
        during, after = paced["during"].mean(), paced["after"].mean()
        peaks = paced.dropna(subset=["at_peak"]) if "at_peak" in paced else paced.iloc[:0]
        text.append(f"Mechanism (at lr={REFERENCE['train.lr']:g}, beta2={REFERENCE['train.beta2']:g}): while the hand-crafted "
                    f"curricula change their data mix, Adam's update norm per unit learning rate is {during:.2f} times the "
                    f"baseline's on average, {after:.2f} times after they have reached the full data"
                    + (f"; at the block where the mix shifts fastest it is {peaks['at_peak'].mean():.2f} times "
                       f"(correlation of shift and relative update over time, mean over curricula: "
                       f"{peaks['correlation'].mean():+.2f})" if len(peaks) else "") + ".")
    if {"commentary", "commentary-shuffled"} <= set(best.index):
        a, b = best.loc["commentary"], best.loc["commentary-shuffled"]
        same = not _beats(a, b) and not _beats(b, a)
        text.append(f"The learned weighting reaches {a['accuracy_mean']:.3f} and the same weighting shuffled among the "
                    f"examples of each batch {b['accuracy_mean']:.3f}: {'indistinguishable' if same else 'different'} within "
                    f"two standard errors{', so what it learned does not depend on which example it weighs' if same else ''}.")
    if "commentary-drift" in mechanism.index and "commentary" in mechanism.index:
        d = mechanism.loc["commentary-drift"]
        text.append(f"Letting the commentary's weights drift (no mean-1 normalisation) makes the update size "
                    f"{d['during']:.2f} times the baseline's in the curricula's pacing period (normalised: "
                    f"{mechanism.loc['commentary', 'during']:.2f}).")
    text.append("(Accuracy on held-out objects after the last step; means over seeds; each scheduler's best setting is "
                "chosen by that same mean, for the baseline too.)")
    return " ".join(text)


def report_text(best: pd.DataFrame, verdict_text: str, seconds: float, small: bool, n_cells: int, seeds: int) -> str:
    shown = best[["lr", "beta2", "eps", "accuracy_mean", "accuracy_std", "advantage_vs_best_mean", "advantage_vs_best_std"]]
    return "\n".join([
        f"# Study: curriculum or badly tuned Adam?{' (small mode)' if small else ''}",
        "",
        verdict_text,
        "",
        "![final test accuracy over the Adam grid](heatmap.png)",
        "",
        "![advantage over uniform](advantage.png)",
        "",
        "![Adam's update size and the data mix over training](mechanism.png)",
        "",
        f"Each scheduler at its best of {n_cells} Adam settings ({seeds} seeds each); all settings in summary.csv:",
        "",
        "```",
        shown.to_string(float_format=lambda v: f"{v:.4g}"),
        "```",
        "",
        f"Trained in {seconds:.0f} s.",
        "",
    ])


def curriculum_adam(out: str | Path, small: bool = False, overwrite: bool = False, progress: bool = True,
                    overrides: list[str] = (), schedulers=None) -> Study:
    """Curricula against uniform over an Adam grid: do they beat well-tuned Adam? Writes DIR (module doc)."""
    out = Path(out)
    check_out(out, overwrite)
    configs = study_configs(small, overrides, schedulers)
    cells = adam_grid(small)
    start = time.perf_counter()
    reference = make_trainer(configs[BASELINE])
    agents = initial_agents(reference, seed_keys(configs[BASELINE]))
    frames = [run_group(configs, names, cells, agents, progress) for names in compile_groups(configs)]
    seconds = time.perf_counter() - start
    table = pd.concat(frames, ignore_index=True)
    table["scheduler"] = pd.Categorical(table["scheduler"], categories=list(configs))
    table = table.sort_values(["scheduler"], kind="stable").reset_index(drop=True)
    table["scheduler"] = table["scheduler"].astype(str)
    summary = summarize(final_accuracy(table))
    config = configs[BASELINE]
    wide = relative_update_size(table, REFERENCE)
    mechanism = mechanism_numbers(wide, config.curriculum.pace * config.train.steps)
    text = verdict(summary, mechanism)
    best = best_settings(summary)

    with staged(out, overwrite, kind="study") as staging:
        results.write_parquet(table, staging / "metrics.parquet")
        summary.to_csv(staging / "summary.csv", index=False)
        figures.heatmap(summary, staging / "heatmap.png", list(configs))
        figures.advantage(advantages(final_accuracy(table)), staging / "advantage.png", list(configs), BASELINE)
        figures.mechanism(wide, staging / "mechanism.png", list(configs), BASELINE, REFERENCE)
        (staging / "configs").mkdir()
        for name, c in configs.items():
            (staging / "configs" / f"{name}.yaml").write_text(yaml.safe_dump(to_dict(c), sort_keys=False))
        (staging / "report.md").write_text(report_text(best, text, seconds, small, len(cells), config.train.seeds))
    shown = best.rename(columns={"accuracy_mean": "test accuracy mean", "accuracy_std": "test accuracy std",
                                 "advantage_vs_best_mean": "advantage over best-tuned uniform mean"})
    return Study(table, shown, text, seconds)
