"""`lab study curriculum-adam --out DIR [--small | --preset NAME]`: does a curriculum help, or does it make up for a
badly tuned Adam?

Every scheduler of the `curriculum` section trains against the uniform baseline over a grid of
Adam's learning rate x beta2 (x epsilon in the full preset), several seeds each (Weber et al. 2023,
../shared/science/paper-details.md §1). The grid (lab.experiment.grid) trains each compile group in
one call: a scheduler's whole Adam grid and seeds, and the schedulers that differ only in continuous
knobs (linear and sqrt competence; the commentary, drifting or shuffled) together. A seed draws the
same agents at every setting and under every scheduler, so differences at one setting are paired.

Claims, each judged against uniform of the same seed by the shared rule (lab.report.studies.common):
the scheduler at its own best Adam setting beats uniform at uniform's best (the claim of the curriculum
papers); at the setting where uniform is tuned worst it helps (what a badly tuned Adam leaves room for);
at uniform's best setting it helps. Notes: how the advantage changes with tuning, and Adam's update size.

DIR/metrics.parquet   tidy: condition, train.lr, train.beta2, train.eps, seed, step, split, metric, value
DIR/per_seed.csv      per scheduler and seed: test accuracy at its best setting, at uniform's worst and best
DIR/settings.csv      per scheduler and Adam setting: final test accuracy (mean, std over seeds), its advantages
DIR/heatmap.png       final test accuracy per scheduler over the Adam grid
DIR/advantage.png     advantage over uniform at the same setting, and over the best-tuned uniform, bands over seeds
DIR/mechanism.png     Adam's update size relative to uniform, the speed of the data mix, the weights' mean, over training
DIR/summary.csv, claims.csv, report.md, configs/*.yaml   (lab.report.studies.common)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lab.experiment.grid import Grid
from lab.report.studies import curriculum_figures as figures
from lab.report.studies.common import SAME, Claim, Declaration, Result, compare, describe, run

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
KEYS = ("lr", "beta2", "eps")  # the Adam grid's columns in the study's own tables
MARGIN = 0.02  # test accuracy: the smallest difference that matters


def adam_grid(preset: str) -> dict[str, list]:
    """The Adam settings: dotted key -> values, crossed with every scheduler."""
    return {"train.eps": [REFERENCE["train.eps"]], **(GRID_SMALL if preset == "small" else GRID_FULL)}


def adam_table(table: pd.DataFrame) -> pd.DataFrame:
    """The grid's table with the Adam keys under their short names (KEYS)."""
    return table.rename(columns={f"train.{key}": key for key in KEYS})


def final_accuracy(table: pd.DataFrame) -> pd.DataFrame:
    """Final test accuracy per (condition, lr, beta2, eps, seed)."""
    last = table[(table["split"] == "test") & (table["metric"] == "accuracy")]
    last = last[last["step"] == last["step"].max()]
    return last.groupby(["condition", *KEYS, "seed"], sort=False)["value"].mean().rename("accuracy").reset_index()


def advantages(finals: pd.DataFrame) -> pd.DataFrame:
    """Per run: its accuracy minus the baseline's at the same Adam setting and seed (paired), and minus the best-tuned
    baseline's at that seed (the baseline's best setting by mean over seeds)."""
    base = finals[finals["condition"] == BASELINE].set_index([*KEYS, "seed"])["accuracy"]
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
    """One row per condition and Adam setting: final test accuracy and both advantages, mean and std over seeds."""
    table = advantages(finals)
    stats = table.groupby(["condition", *KEYS], sort=False).agg(
        seeds=("seed", "count"), accuracy_mean=("accuracy", "mean"), accuracy_std=("accuracy", "std"),
        advantage_mean=("advantage", "mean"), advantage_std=("advantage", "std"),
        advantage_vs_best_mean=("advantage_vs_best", "mean"), advantage_vs_best_std=("advantage_vs_best", "std"),
        baseline_tuning=("baseline_tuning", "first"))
    return stats.reset_index()


def best_settings(summary: pd.DataFrame) -> pd.DataFrame:
    """Each condition at its own best Adam setting (by mean final test accuracy), in the order of the study."""
    best = summary.loc[summary.groupby("condition", sort=False)["accuracy_mean"].idxmax()]
    return best.set_index("condition")


def relative_update_size(table: pd.DataFrame, reference: dict | None = None) -> pd.DataFrame:
    """Per condition, seed and evaluation step at one Adam setting: each batch statistic, and the update ratio
    (||update|| / lr, mean of sender and receiver) divided by the baseline's at the same step and seed."""
    batch = table[table["split"] == "batch"]
    if reference is not None:
        for key in KEYS:
            batch = batch[np.isclose(batch[key], reference[f"train.{key}"])]
    wide = batch.pivot_table(index=["condition", *KEYS, "seed", "step"], columns="metric", values="value").reset_index()
    wide = wide.reindex(columns=[*wide.columns, *(c for c in ("curriculum_shift", "curriculum_weight_mean") if c not in wide)])
    wide["update_ratio"] = 0.5 * (wide["sender_update_ratio"] + wide["receiver_update_ratio"])
    base = wide[wide["condition"] == BASELINE].set_index([*KEYS, "seed", "step"])["update_ratio"]
    wide["relative_update"] = wide["update_ratio"].to_numpy() / base.reindex(
        pd.MultiIndex.from_frame(wide[[*KEYS, "seed", "step"]])).to_numpy()
    return wide


def mechanism_numbers(wide: pd.DataFrame, pace_end: float) -> pd.DataFrame:
    """Per condition: the mean relative update size while the pacing runs and after it, the step of its largest
    data-mix shift, the relative update there, and the correlation over time of shift and relative update."""
    rows = []
    for name, own in wide[wide["condition"] != BASELINE].groupby("condition", sort=False):
        curve = own.groupby("step")[["relative_update", "curriculum_shift"]].mean()
        row = {"condition": name, "during": curve.loc[curve.index <= pace_end, "relative_update"].mean(),
               "after": curve.loc[curve.index > pace_end, "relative_update"].mean()}
        shift = curve["curriculum_shift"]
        if shift.max() > 0:  # NaN (no data-mix statistic) or 0 (a mix that never moves): no peak to speak of
            row.update(peak_step=shift.idxmax(), at_peak=curve.loc[shift.idxmax(), "relative_update"],
                       correlation=shift.corr(curve["relative_update"]))
        rows.append(row)
    return pd.DataFrame(rows).set_index("condition")


def per_seed(grid: Grid, configs) -> pd.DataFrame:
    return seeds_of(final_accuracy(adam_table(grid.table)))


def seeds_of(finals: pd.DataFrame) -> pd.DataFrame:
    """Per scheduler and seed: final test accuracy at the scheduler's own best Adam setting (by the mean over seeds),
    and at the settings where uniform is tuned worst and best."""
    means = finals.groupby(["condition", *KEYS], sort=False)["accuracy"].mean()
    base = means.loc[BASELINE]
    settings = {"best-setting test accuracy": None, "test accuracy where uniform is tuned worst": base.idxmin(),
                "test accuracy where uniform is tuned best": base.idxmax()}
    rows = []
    for condition, own in finals.groupby("condition", sort=False):
        by = own.set_index([*KEYS, "seed"])["accuracy"]
        best = means.loc[condition].idxmax()
        row = {column: by.xs(setting or best, level=list(KEYS)) for column, setting in settings.items()}
        frame = pd.DataFrame(row).reset_index().assign(condition=condition, **dict(zip(["best lr", "best beta2", "best eps"], best)))
        rows.append(frame)
    out = pd.concat(rows, ignore_index=True)
    return out[["condition", "seed", *settings, "best lr", "best beta2", "best eps"]]


def settings_table(result: Result) -> pd.DataFrame:
    return summarize(final_accuracy(adam_table(result.table)))


def mechanism_of(result: Result) -> pd.DataFrame:
    config = result.configs[BASELINE]
    return mechanism_numbers(relative_update_size(adam_table(result.table), REFERENCE), config.curriculum.pace * config.train.steps)


def notes(result: Result) -> list[str]:
    """How the advantage changes with tuning, Adam's update size under the paced curricula, and the commentary's
    weighting against the same weights shuffled."""
    mechanism = mechanism_of(result)
    return tuning_note(settings_table(result)) + mechanism_note(mechanism) + commentary_note(result.seeds, mechanism) + [
        "(Test accuracy on held-out objects after the last step. Each scheduler's best setting is chosen by its mean over "
        "the same seeds, for the baseline too, which favours every scheduler alike.)"]


def tuning_note(summary: pd.DataFrame) -> list[str]:
    """Whether the curricula's advantage at the same Adam setting shrinks as that setting suits uniform better."""
    text = []
    curricula = summary[summary["condition"] != BASELINE]
    if len(curricula):
        tuning = curricula.groupby(list(KEYS))[["baseline_tuning", "advantage_mean"]].mean().sort_values("baseline_tuning")
        slope = np.polyfit(tuning["baseline_tuning"], tuning["advantage_mean"], 1)[0] if len(tuning) > 1 else np.nan
        worst, best_tuned = tuning.iloc[0], tuning.iloc[-1]
        shrinks = slope < 0 and best_tuned["advantage_mean"] < worst["advantage_mean"]
        trend = ("shrinks" if worst["advantage_mean"] > 0 else "falls further below zero") if shrinks else "does not shrink"
        text.append(
            f"Averaged over the curricula, the advantage over uniform at the same Adam setting is "
            f"{worst['advantage_mean']:+.3f} where the baseline is tuned worst (its accuracy {worst['baseline_tuning']:.3f}) "
            f"and {best_tuned['advantage_mean']:+.3f} where it is tuned best ({best_tuned['baseline_tuning']:.3f}); the slope "
            f"of advantage against baseline accuracy over the {len(tuning)} settings is {slope:+.2f}, so the advantage "
            f"{trend} as Adam gets better tuned.")
    return text


def mechanism_note(mechanism: pd.DataFrame) -> list[str]:
    """Adam's update size under the paced curricula, relative to uniform's, while they pace and after."""
    text = []
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
    return text


def commentary_note(per_seed: pd.DataFrame, mechanism: pd.DataFrame) -> list[str]:
    """The learned weighting against the same weights shuffled, and against the same weights left to drift."""
    text = []
    seeds = per_seed.set_index(["condition", "seed"])["best-setting test accuracy"]
    present = set(per_seed["condition"])
    if {"commentary", "commentary-shuffled"} <= present:
        word, j = compare((seeds.loc["commentary"] - seeds.loc["commentary-shuffled"]).dropna().to_numpy(), MARGIN)
        text.append(f"The learned weighting against the same weighting shuffled among the examples of each batch, each at "
                    f"its best setting: {word} ({describe(j)})"
                    + (", so what it learned does not depend on which example it weighs." if word == SAME else "."))
    if {"commentary-drift", "commentary"} <= set(mechanism.index):
        text.append(f"Letting the commentary's weights drift (no mean-1 normalisation) makes the update size "
                    f"{mechanism.loc['commentary-drift', 'during']:.2f} times the baseline's in the curricula's pacing period "
                    f"(normalised: {mechanism.loc['commentary', 'during']:.2f}).")
    return text


def _order(result: Result) -> list[str]:
    return list(dict.fromkeys(result.seeds["condition"]))


def heatmap(result: Result, path: Path) -> None:
    figures.heatmap(settings_table(result), path, _order(result))


def advantage(result: Result, path: Path) -> None:
    figures.advantage(advantages(final_accuracy(adam_table(result.table))), path, _order(result), BASELINE)


def mechanism(result: Result, path: Path) -> None:
    figures.mechanism(relative_update_size(adam_table(result.table), REFERENCE), path, _order(result), BASELINE, REFERENCE)


STUDY = Declaration(
    name="curriculum-adam", title="curriculum or badly tuned Adam?",
    question="Every scheduler against uniform sampling over a grid of Adam settings (Weber et al. 2023): does a "
             "curriculum beat a well-tuned Adam, or only a badly tuned one? Test accuracy on held-out objects after the "
             "last step; differences are paired by seed.",
    presets={"small": SMALL, "full": FULL}, conditions=SCHEDULERS, values=adam_grid,
    claims=(
        Claim("best", "the scheduler at its own best Adam setting beats uniform at uniform's best",
              "best-setting test accuracy", MARGIN, baseline=BASELINE),
        Claim("worst", "where uniform is tuned worst, the scheduler at the same setting beats it",
              "test accuracy where uniform is tuned worst", MARGIN, baseline=BASELINE),
        Claim("tuned", "at uniform's best setting, the scheduler at the same setting beats it",
              "test accuracy where uniform is tuned best", MARGIN, baseline=BASELINE),
    ),
    per_seed=per_seed, notes=notes,
    outputs={"heatmap.png": heatmap, "advantage.png": advantage, "mechanism.png": mechanism,
             "settings.csv": lambda result, path: settings_table(result).to_csv(path, index=False)},
)


def curriculum_adam(out: str | Path, small: bool = False, overwrite: bool = False, progress: bool = True,
                    overrides: list[str] = (), schedulers=None, preset: str | None = None):
    """Curricula against uniform over an Adam grid: do they beat well-tuned Adam? Writes DIR (module doc)."""
    return run(STUDY, out, small=small, preset=preset, overwrite=overwrite, progress=progress, overrides=overrides,
               conditions=schedulers)
