"""`lab study coadaptation --out DIR [--small]`: which part of the generalization gap (test loss
minus train loss) is information lost by the language, which is co-adaptation of the listener,
and which co-adaptation controls shrink it (Rita et al. 2022, arXiv 2209.15342).

DIR/metrics.parquet   tidy: condition, seed, step, split, metric, value
DIR/summary.csv       final values per condition, mean and std over seeds
DIR/coadaptation.png  L_info and L_adapt on train and test over training, a panel per condition
DIR/report.md         the figure, the table and the verdict
DIR/configs/*.yaml    the resolved config of each condition
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from lab.experiment import results
from lab.experiment.config import Config, ConfigError, load, to_dict
from lab.experiment.io import staged
from lab.experiment.run import check_out_dir, train
from lab.report import plots
from lab.report.studies.common import Study

# A compositional split of K=4 attributes x V=4 values (205 train, 51 test objects).
WORLD = ["game.kind=reconstruction", "game.n_attributes=4", "game.n_values=4", "game.split=compositional"]
SMALL = WORLD + ["agents.hidden_size=64", "agents.embedding_size=16", "train.batch_size=128", "train.steps=1000",
                 "train.eval_every=100", "train.seeds=3"]
FULL = WORLD + ["train.steps=4000", "train.eval_every=200", "train.seeds=5"]
CONDITIONS = {
    "baseline": ["train.control=none"],
    "reset": ["train.control=reset", "interventions.reset_every=200", "interventions.listener_max_steps=200"],
    "population": ["population.n_receivers=4"],
    "ideal": ["train.control=ideal", "train.ideal_size=32"],
}
TERMS = ("loss", "l_info", "l_adapt")


def study_configs(small: bool, overrides: list[str] = ()) -> dict[str, Config]:
    """The validated config of every condition; `overrides` apply to all of them."""
    base = SMALL if small else FULL
    return {name: load(overrides=base + extra + list(overrides)) for name, extra in CONDITIONS.items()}


def per_seed(table: pd.DataFrame) -> pd.DataFrame:
    """Final values per (condition, seed): test accuracy, and each term on train and test with its gap."""
    last = results.final(table)
    wide = last.pivot_table(index=["condition", "seed"], columns=["split", "metric"], values="value")
    out = pd.DataFrame(index=wide.index)
    out["test accuracy"] = wide[("test", "accuracy")]
    for term in TERMS:
        out[f"train {term}"] = wide[("train", term)]
        out[f"test {term}"] = wide[("test", term)]
        out[f"gap {term}"] = out[f"test {term}"] - out[f"train {term}"]
    return out.reset_index()


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of `per_seed`, one row per condition, in the order of the table."""
    seeds = per_seed(table)
    order = list(dict.fromkeys(table["condition"]))
    stats = seeds.drop(columns="seed").groupby("condition").agg(["mean", "std"]).reindex(order)
    stats.columns = [f"{name} {stat}" for name, stat in stats.columns]
    stats.insert(0, "seeds", seeds.groupby("condition")["seed"].count().reindex(order))
    return stats


def _share(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if abs(whole) > 1e-9 else "n/a"


def verdict(summary: pd.DataFrame, baseline: str = "baseline") -> str:
    """One paragraph, every claim read off `summary`: who carries the baseline's gap, which controls shrink it.

    A control "reduces" the gap when its mean gap is below the baseline's by more than the
    standard error of the difference (std / sqrt(seeds), combined), "increases" it when above by
    as much, and otherwise leaves it unchanged within noise.
    """
    b = summary.loc[baseline]
    gap, d_info, d_adapt = b["gap loss mean"], b["gap l_info mean"], b["gap l_adapt mean"]
    carrier = "co-adaptation (L_adapt)" if abs(d_adapt) >= abs(d_info) else "information (L_info)"
    smaller_test = "; L_info is lower on test partly because the test split has fewer objects to confuse" if d_info < 0 else ""
    text = [
        f"For the {baseline}, the generalization gap (test loss minus train loss) is {gap:.2f} nats "
        f"({b['test loss mean']:.2f} on test vs {b['train loss mean']:.2f} on train): "
        f"the co-adaptation term carries {d_adapt:.2f} nats of it ({_share(d_adapt, gap)}) and the information term "
        f"{d_info:.2f} ({_share(d_info, gap)}{smaller_test}), so the gap is carried by {carrier}."
    ]
    reduced, other = [], []
    for name, row in summary.drop(index=baseline).iterrows():
        noise = np.sqrt(b["gap loss std"] ** 2 / b["seeds"] + row["gap loss std"] ** 2 / row["seeds"])
        noise = 0.0 if np.isnan(noise) else noise
        change = row["gap loss mean"] - gap
        detail = (f"{name} ({row['gap loss mean']:.2f} nats: L_adapt gap {row['gap l_adapt mean']:.2f}, "
                  f"L_info gap {row['gap l_info mean']:.2f}; test accuracy {row['test accuracy mean']:.2f} "
                  f"vs {b['test accuracy mean']:.2f}, train loss {row['train loss mean']:.2f} vs {b['train loss mean']:.2f})")
        if change < -noise:
            reduced.append(detail)
        else:
            other.append(f"{detail} {'increases it' if change > noise else 'leaves it unchanged within seed noise'}")
    if reduced:
        text.append(f"The gap shrinks with {'; '.join(reduced)}.")
    else:
        text.append("No control reduces the gap beyond seed noise.")
    if other:
        text.append(f"{'Of the others, ' if reduced else ''}{'; '.join(other)}.")
    text.append(f"(Means over {int(b['seeds'])} seeds; \"reduces\" means by more than one standard error of the difference.)")
    return " ".join(text)


def report_text(summary: pd.DataFrame, verdict_text: str, figure: str, seconds: float, small: bool) -> str:
    shown = summary[[c for c in summary.columns if c.endswith("mean") or c == "seeds"]]
    return "\n".join([
        f"# Study: co-adaptation{' (small mode)' if small else ''}",
        "",
        verdict_text,
        "",
        f"![L_info and L_adapt over training]({figure})",
        "",
        "Final evaluation, mean over seeds (std in summary.csv); nats except accuracy:",
        "",
        "```",
        shown.to_string(float_format=lambda v: f"{v:.3f}"),
        "```",
        "",
        f"Trained in {seconds:.0f} s.",
        "",
    ])


def coadaptation(out: str | Path, small: bool = False, overwrite: bool = False, progress: bool = True,
                 overrides: list[str] = ()) -> Study:
    """Information vs co-adaptation loss: the baseline and each co-adaptation control over seeds; writes DIR (module doc)."""
    out = Path(out)
    check_out_dir(out, overwrite)
    configs = study_configs(small, overrides)
    start = time.perf_counter()
    frames = []
    for name, config in configs.items():
        if progress:
            print(f"[{name}] {config.train.seeds} seeds x {config.train.steps} steps", flush=True)
        _, _, table = train(config, progress)
        frames.append(table.assign(condition=name))
    seconds = time.perf_counter() - start
    table = pd.concat(frames, ignore_index=True)[["condition", *results.COLUMNS]]
    summary = summarize(table)
    text = verdict(summary)

    with staged(out) as staging:
        results.write_parquet(table, staging / "metrics.parquet")
        summary.to_csv(staging / "summary.csv")
        plots.decomposition_curves(table, staging / "coadaptation.png", col_order=list(configs))
        (staging / "configs").mkdir()
        for name, config in configs.items():
            (staging / "configs" / f"{name}.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
        (staging / "report.md").write_text(report_text(summary, text, "coadaptation.png", seconds, small))
    return Study(table, summary, text, seconds)
