"""`lab study coadaptation --out DIR [--small | --preset NAME]`: Rita et al. 2022's claims (arXiv 2209.15342), each
judged from the numbers the way the paper measures it.

1. The generalization gap (test loss minus train loss) is carried by co-adaptation (L_adapt), not by
   information (L_info): per seed of the baseline, gap L_adapt - gap L_info > 0.
2. Controlling co-adaptation makes the language generalize better: per control (reset, a population
   of listeners, the ideal listener's reward) and seed, minus the baseline of the same seed, the test
   accuracy of a *probe listener* (a fresh listener fitted to the frozen speaker's messages for the
   train objects, early-stopped on its own loss: lab.analysis.probe), and the pair's own test accuracy.
   The probe is the paper's measure: under the ideal control the pair's listener barely learns, so the
   pair's accuracy says little about the speaker's language.
3. ... and more compositional: the same paired differences of topsim, on the train and on the test objects.

Each claim is decided by the rule of lab.report.studies.common (RULE): the mean paired difference,
its standard error over seeds, reproduced at >= 2 SE in the claimed direction, not reproduced when
effect + 2 SE stays below the smallest effect that matters (MARGINS), else inconclusive; always
inconclusive under 5 seeds. The seeds of a condition train as one vmapped compiled call; the probes
of every condition and seed are one more.

Presets (PRESETS): `small` (5 seeds, 1000 steps: 9 min on 2 busy CPU cores), `full` (the default:
the paper's 6 seeds, 3000 steps: 22 min there), `paper` (the world, channel, agents and optimiser of the
authors' ICLR 2022 paper, for a GPU).

DIR/metrics.parquet   tidy: condition, seed, step, split, metric, value (probe_* metrics at the last step)
DIR/per_seed.csv      final values per (condition, seed): pair, probe, language metrics, decomposition
DIR/summary.csv       per condition: mean and standard error over seeds
DIR/claims.csv        per claim, condition and measure: effect, SE, seeds, margin, call
DIR/coadaptation.png  L_info and L_adapt over training per condition; probe and pair test accuracy, topsim per seed
DIR/report.md         the verdict, the figure and the tables
DIR/configs/*.yaml    the resolved config of each condition
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import yaml

from lab import analysis
from lab.core.hparams import hparams_from_config
from lab.core.spec import Spec
from lab.core.trainer import Trainer, seed_keys
from lab.experiment import divergence, results
from lab.experiment.config import Config, ConfigError, load, to_dict
from lab.experiment.io import check_out, staged
from lab.experiment.run import seeds_of, train
from lab.report import plots
from lab.report.studies.common import MIN_SEEDS, NOT_REPRODUCED, REPRODUCED, RULE, RULE_SE, Study, judge

# K=4 attributes x V=4 values, 80/20 compositional split: 205 train objects, 51 test (unseen combinations).
WORLD = ["game.kind=reconstruction", "game.n_attributes=4", "game.n_values=4", "game.split=compositional",
         "game.test_fraction=0.2"]
AGENTS = ["agents.hidden_size=64", "agents.embedding_size=16", "train.batch_size=128"]  # GRU 64, vocabulary 10, max_len 5
# The setup of the same authors' ICLR 2022 paper on the same codebase (../shared/science/paper-details.md §2: K=4, V=4,
# |W|=20, T=10, LSTM 128, Adam 5e-3, batch 1024, entropy 0.02, 6 seeds; no LayerNorm here, and REINFORCE's baseline is
# the lab's running mean). The NeurIPS paper's own values were not recovered; the number of steps is ours.
PAPER = WORLD + ["agents.vocab_size=20", "agents.max_len=10", "agents.cell=lstm", "agents.hidden_size=128",
                 "agents.embedding_size=128", "train.lr=0.005", "train.batch_size=1024", "train.entropy_coeff=0.02",
                 "train.seeds=6", "train.steps=10000", "train.eval_every=500"]
PRESETS = {
    "small": WORLD + AGENTS + ["train.steps=1000", "train.eval_every=200", "train.seeds=5"],  # ~9 min on 2 busy CPU cores
    "full": WORLD + AGENTS + ["train.steps=3000", "train.eval_every=300", "train.seeds=6"],  # the paper's seeds; ~22 min
    "paper": PAPER,  # for a GPU
}
BASELINE = "baseline"
CONDITIONS = {
    BASELINE: ["train.control=none"],
    "reset": ["train.control=reset", "interventions.reset_every=200", "interventions.listener_max_steps=200"],
    "population": ["population.n_receivers=4"],
    "ideal": ["train.control=ideal", "train.ideal_size=32"],
}
SPLITS = ("train", "test")
TERMS = ("loss", "l_info", "l_adapt")
LANGUAGE = ("topsim", "posdis", "bosdis")
PROBE = ("accuracy", "loss")  # per split; and the probe's fitting steps, on the train split it is fitted to
MARGINS = {"nats": 0.1, "accuracy": 0.05, "topsim": 0.05}  # the smallest effect that matters, per kind of measure
CLAIMS = {
    1: "the generalization gap is carried by co-adaptation (L_adapt) more than by information (L_info)",
    2: "controlling co-adaptation makes the language generalize better",
    3: "controlling co-adaptation makes the language more compositional",
}
MEASURES = {  # claim -> (per-seed column, its words, kind of measure)
    1: [("gap l_adapt - gap l_info", "the gap in L_adapt minus the gap in L_info", "nats")],
    2: [("probe test accuracy", "test accuracy of a probe listener fitted on the train objects' messages", "accuracy"),
        ("test accuracy", "the pair's own test accuracy", "accuracy")],
    3: [("train topsim", "topsim on the train objects", "topsim"), ("test topsim", "topsim on the test objects", "topsim")],
}


def preset_of(small: bool, preset: str | None) -> str:
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r} for the coadaptation study; allowed: {', '.join(PRESETS)}")
    if small and preset not in (None, "small"):
        raise ConfigError(f"--small and --preset {preset} disagree; give one of them")
    return preset or ("small" if small else "full")


def study_configs(preset: str, overrides: list[str] = ()) -> dict[str, Config]:
    """The validated config of every condition; `overrides` apply to all of them."""
    return {name: load(overrides=PRESETS[preset] + extra + list(overrides)) for name, extra in CONDITIONS.items()}


def probe_table(config: Config, senders: dict[str, object]) -> pd.DataFrame:
    """A probe listener for every run of every condition, `senders[condition]: [seeds, 1, ...]`, in one compiled call.

    Each probe is fitted on the train objects and measured on train and test (lab.analysis.probe);
    its messages are drawn with its run's evaluation key, so its loss compares with the logged l_info.
    `config` is any condition's (they share the world, the agents and the probe's settings). Tidy rows
    `condition, seed, step, split, metric, value`: probe_accuracy and probe_loss per split, probe_steps on train.
    """
    names = list(senders)
    stacked = jax.tree.map(lambda *leaves: np.concatenate(leaves), *senders.values())  # [conditions * seeds, 1, ...]
    keys = jax.vmap(lambda key: Trainer.run_keys(key)[2])(seed_keys(config))
    keys = jnp.tile(keys, len(names))
    out = analysis.probe_population(Spec(config), stacked, "train", keys, hparams_from_config(config, len(keys)), SPLITS)
    seeds = seeds_of(config)
    runs = pd.DataFrame({"condition": np.repeat(names, len(seeds)), "seed": np.tile(seeds, len(names))})
    measured = [(split, metric) for split in SPLITS for metric in PROBE] + [("train", "steps")]
    frames = [runs.assign(step=config.train.steps, split=split, metric=f"probe_{metric}",
                          value=np.asarray(getattr(out[split], metric), np.float64)) for split, metric in measured]
    return pd.concat(frames, ignore_index=True)


def per_seed(table: pd.DataFrame) -> pd.DataFrame:
    """Final values per (condition, seed): the pair's accuracy and decomposition, the probe, the language metrics.

    A population's pair metrics are the mean over its listeners.
    """
    wide = results.final(table).pivot_table(index=["condition", "seed"], columns=["split", "metric"], values="value")
    order = list(dict.fromkeys(table["condition"]))
    out = pd.DataFrame(index=wide.index)
    for split in SPLITS:
        out[f"{split} accuracy"] = wide[(split, "accuracy")]
        for metric in PROBE:
            out[f"probe {split} {metric}"] = wide.get((split, f"probe_{metric}"), np.nan)
        if split == "train":
            out["probe steps"] = wide.get(("train", "probe_steps"), np.nan)
        for metric in LANGUAGE:
            out[f"{split} {metric}"] = wide[(split, metric)]
    for term in TERMS:
        out[f"train {term}"], out[f"test {term}"] = wide[("train", term)], wide[("test", term)]
        out[f"gap {term}"] = out[f"test {term}"] - out[f"train {term}"]
    out["gap l_adapt - gap l_info"] = out["gap l_adapt"] - out["gap l_info"]
    out = out.reset_index()
    out["condition"] = pd.Categorical(out["condition"], categories=order)
    return out.sort_values(["condition", "seed"]).reset_index(drop=True).astype({"condition": str})


def summarize(seeds: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard error over seeds of every `per_seed` column, one row per condition, in the table's order."""
    order = list(dict.fromkeys(seeds["condition"]))
    grouped = seeds.drop(columns="seed").groupby("condition", sort=False)
    stats = pd.concat({"mean": grouped.mean(), "se": grouped.sem(ddof=1)}, axis=1).reindex(order)
    stats.columns = [f"{name} {stat}" for stat, name in stats.columns]
    stats = stats[[f"{name} {stat}" for name in seeds.columns[2:] for stat in ("mean", "se")]]
    stats.insert(0, "seeds", seeds.groupby("condition", sort=False)["seed"].count().reindex(order))
    return stats


def claims(seeds: pd.DataFrame, baseline: str = BASELINE) -> pd.DataFrame:
    """Every claim judged by RULE: one row per (claim, condition, measure) with its effect, SE, seeds and call.

    Claim 1 judges the baseline's own per-seed values; claims 2 and 3 the paired differences
    control - baseline of every other condition, seed by seed.
    """
    by = seeds.set_index(["condition", "seed"])
    base = by.loc[baseline]
    rows = []
    for claim, measures in MEASURES.items():
        for column, words, kind in measures:
            compared = [baseline] if claim == 1 else [c for c in dict.fromkeys(seeds["condition"]) if c != baseline]
            for condition in compared:
                values = by.loc[condition][column]
                common = values.index.intersection(base.index)
                d = values[common] if claim == 1 else values[common] - base[column][common]
                j = judge(d.to_numpy(), MARGINS[kind])
                rows.append(dict(claim=claim, condition=condition, measure=column, words=words, baseline=base[column].mean(),
                                 value=values.mean(), effect=j.effect, se=j.se, seeds=j.seeds, margin=MARGINS[kind],
                                 call=j.call))
    return pd.DataFrame(rows)


def _up(text: str) -> str:
    return text[:1].upper() + text[1:]


def undertrained(seeds: pd.DataFrame, baseline: str = BASELINE) -> dict[str, float]:
    """The controls whose probe fits the train objects worse than the baseline's by more than the accuracy margin."""
    fit = seeds.groupby("condition", sort=False)["probe train accuracy"].mean()
    return {name: value for name, value in fit.drop(baseline).items() if value < fit[baseline] - MARGINS["accuracy"]}


def _share(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if abs(whole) > 1e-9 else "n/a"


def _effect(row: pd.Series, unit: str = "") -> str:
    small = f", though below the {row['margin']:g} margin" if row["call"] == REPRODUCED and row["effect"] < row["margin"] else ""
    return f"{row['effect']:+.2f} ± {row['se']:.2f}{unit} over {row['seeds']} seeds: {row['call']}{small}"


def verdict(seeds: pd.DataFrame, judged: pd.DataFrame | None = None, baseline: str = BASELINE) -> str:
    """One paragraph per claim, every number read off `seeds` (per_seed) and `judged` (claims), then the rule."""
    judged = claims(seeds, baseline) if judged is None else judged
    b = seeds[seeds["condition"] == baseline].mean(numeric_only=True)
    gap, d_info, d_adapt = b["gap loss"], b["gap l_info"], b["gap l_adapt"]
    one = judged[judged["claim"] == 1].iloc[0]
    fewer = "; L_info is lower on test partly because the test split has fewer objects to confuse" if d_info < 0 else ""
    text = [f"Claim 1, {CLAIMS[1]}: {one['call']}. For the {baseline}, the gap is {gap:.2f} nats ({b['test loss']:.2f} on "
            f"test vs {b['train loss']:.2f} on train); L_adapt carries {d_adapt:.2f} nats of it ({_share(d_adapt, gap)}), "
            f"L_info {d_info:.2f} ({_share(d_info, gap)}{fewer}); {one['words']}: {_effect(one, ' nats')}."]
    for claim in (2, 3):
        parts = []
        for column, words, _ in MEASURES[claim]:
            rows = judged[(judged["claim"] == claim) & (judged["measure"] == column)]
            each = "; ".join(f"{r['condition']} {r['value']:.2f} ({_effect(r)})" for _, r in rows.iterrows())
            parts.append(f"{_up(words)} ({baseline} {rows['baseline'].iloc[0]:.2f}): {each}")
        text.append(f"Claim {claim}, {CLAIMS[claim]}. " + ". ".join(parts) + ".")
    behind = undertrained(seeds, baseline)
    if behind:
        fits = ", ".join(f"{value:.2f} ({name})" for name, value in behind.items())
        text.append(f"Caution: at this length of training the language of {' and '.join(behind)} is learned less far "
                    f"than the {baseline}'s: a probe listener gets {fits} of the train objects right, against "
                    f"{b['probe train accuracy']:.2f} for the {baseline}; their test numbers mix generalization with "
                    f"under-training.")
    margins = ", ".join(f"{v:g} {'nats' if k == 'nats' else k}" for k, v in MARGINS.items())
    text.append(f"(Differences are control minus {baseline}, seed by seed. Rule: {RULE}. Margins: {margins}.)")
    return "\n\n".join(text)


QUESTIONS = {  # each claim as a linguist would ask it
    1: "Do the agents fail on new objects because the listener only knows its partner's habits, rather than because the "
       "language lumps new objects together?",
    2: "Does keeping the listener from settling into its partner's habits give a language that works better on new objects?",
    3: "Does it give a more compositional language, where similar objects get similar messages?",
}
CONTROL_WORDS = {"reset": "replacing the listener by a newcomer from time to time",
                 "population": "letting the speaker talk to four listeners in turn",
                 "ideal": "rewarding the speaker by how well a perfect reader of its language would understand it"}
MEASURE_WORDS = {
    "gap l_adapt - gap l_info": "from the training objects to new ones, the listener's misreadings grow by {effect:+.2f} "
                                "nats more than the language's ambiguity does",
    "probe test accuracy": "a newcomer taught only on the training objects understands {value:.0%} of the new objects "
                           "(the baseline's speaker: {baseline:.0%})",
    "test accuracy": "the pair itself understands {value:.0%} of the new objects (baseline: {baseline:.0%})",
    "train topsim": "the structure score (topsim) on the training objects is {value:.2f} (baseline: {baseline:.2f})",
    "test topsim": "the structure score on the new objects is {value:.2f} (baseline: {baseline:.2f})",
}


def _answer(row: pd.Series) -> str:
    if row["call"] == REPRODUCED:
        return "yes" if row["effect"] >= row["margin"] else "yes, though by little"
    if row["call"] == NOT_REPRODUCED:
        return "no, it goes the other way" if row["effect"] <= -RULE_SE * row["se"] else "no, or too little to matter"
    return "too few seeds to tell" if row["seeds"] < MIN_SEEDS else "can't tell: the seeds disagree"


def plain_words(judged: pd.DataFrame) -> str:
    """The claims as questions, each answered per control in words without symbols (a line per answer)."""
    lines = []
    for claim, question in QUESTIONS.items():
        lines.append(f"{claim}. {question}")
        rows = judged[judged["claim"] == claim]
        for condition in dict.fromkeys(rows["condition"]):
            if claim > 1:
                lines.append(f"   {_up(CONTROL_WORDS.get(condition, condition))}:")
            for _, row in rows[rows["condition"] == condition].iterrows():
                lines.append(f"   - {_up(MEASURE_WORDS[row['measure']].format(**row))}. {_up(_answer(row))}.")
    return "\n".join(lines)


def report_text(seeds: pd.DataFrame, judged: pd.DataFrame, summary: pd.DataFrame, verdict_text: str, figure: str,
                timing: dict[str, float], preset: str) -> str:
    shown = summary[[c for c in summary.columns if c.endswith("mean") or c == "seeds"]]
    shown.columns = [c.removesuffix(" mean") for c in shown.columns]
    table = judged.drop(columns="words")
    times = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timing.items())
    return "\n".join([
        f"# Study: co-adaptation (preset {preset})",
        "",
        verdict_text,
        "",
        "In plain words (seeds: independent pairs of agents):",
        "",
        plain_words(judged),
        "",
        f"![L_info and L_adapt over training; probe and pair test accuracy, topsim per seed]({figure})",
        "",
        "Claims, as decided (effect: mean paired difference; se: its standard error over seeds):",
        "",
        "```",
        table.to_string(index=False, float_format=lambda v: f"{v:.3f}"),
        "```",
        "",
        "Final evaluation, mean over seeds (standard errors in summary.csv, every seed in per_seed.csv); nats except "
        "accuracies and the language metrics. `probe` is a fresh listener fitted, early-stopped on its own loss, to the "
        "frozen speaker's messages for the train objects; `gap` is test minus train.",
        "",
        "```",
        shown.T.to_string(float_format=lambda v: f"{v:.3f}"),
        "```",
        "",
        f"Seeds per condition: {int(seeds.groupby('condition')['seed'].count().min())}. Time: {times} "
        f"({sum(timing.values()):.0f} s in all).",
        "",
    ])


def coadaptation(out: str | Path, small: bool = False, overwrite: bool = False, progress: bool = True,
                 overrides: list[str] = (), preset: str | None = None) -> Study:
    """Rita et al. 2022's claims on co-adaptation, each judged over seeds with a probe listener; writes DIR (module doc)."""
    out = Path(out)
    check_out(out, overwrite)
    preset = preset_of(small, preset)
    configs = study_configs(preset, overrides)
    timing, frames, senders, notes = {}, [], {}, []
    for name, config in configs.items():
        if progress:
            print(f"[{name}] {config.train.seeds} seeds x {config.train.steps} steps", flush=True)
        start = time.perf_counter()
        _, state, table, diverged, _ = train(config, progress)
        if diverged:
            notes.append(f"{name}: {divergence.describe(diverged)} (its rows end there)")
        timing[name] = time.perf_counter() - start
        frames.append(table.assign(condition=name))
        senders[name] = state.senders
    if progress:
        print(f"[probes] {sum(c.train.seeds for c in configs.values())} probe listeners", flush=True)
    start = time.perf_counter()
    frames.append(probe_table(configs[BASELINE], senders))
    timing["probes"] = time.perf_counter() - start
    table = pd.concat(frames, ignore_index=True)[["condition", *results.COLUMNS]]
    seeds = per_seed(table)
    summary, judged = summarize(seeds), claims(seeds)
    text = verdict(seeds, judged)
    if notes:  # the claims compare seeds at their last evaluation: a diverged one's is where it diverged
        text += "\n\nDiverged, marked and kept: " + "; ".join(notes) + "."
    seconds = sum(timing.values())

    with staged(out, overwrite, kind="study") as staging:
        results.write_parquet(table, staging / "metrics.parquet")
        seeds.to_csv(staging / "per_seed.csv", index=False)
        summary.to_csv(staging / "summary.csv")
        judged.to_csv(staging / "claims.csv", index=False)
        plots.coadaptation_figure(table, seeds, staging / "coadaptation.png", list(configs))
        (staging / "configs").mkdir()
        for name, config in configs.items():
            (staging / "configs" / f"{name}.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
        (staging / "report.md").write_text(report_text(seeds, judged, summary, text, "coadaptation.png", timing, preset))
    return Study(table, summary, text, seconds)
