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
its standard error over seeds, its 95% interval against 0 and the margin that matters (MARGINS), and
the minimum detectable effect at the seeds used. The conditions train through the grid runner
(lab.experiment.grid); the probes of every condition and seed are one more compiled call.

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

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from lab import analysis
from lab.core.hparams import hparams_from_config
from lab.core.spec import Spec
from lab.core.trainer import SPLIT_NAMES, Trainer, seed_keys
from lab.experiment import results
from lab.experiment.config import Config
from lab.experiment.run import seeds_of
from lab.report import plots
from lab.report.run import share_of
from lab.report.studies.common import NOT_REPRODUCED, REPRODUCED, Claim, Declaration, Result, run

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
TERMS = ("loss", "l_info", "l_adapt")
LANGUAGE = ("topsim", "posdis", "bosdis")
PROBE = ("accuracy", "loss")  # per split; and the probe's fitting steps, on the train split it is fitted to
MARGINS = {"nats": 0.1, "accuracy": 0.05, "topsim": 0.05}  # the smallest effect that matters, per kind of measure
CLAIMS = (
    Claim("1", "the generalization gap is carried by co-adaptation (L_adapt) more than by information (L_info)",
          "gap l_adapt - gap l_info", MARGINS["nats"], conditions=(BASELINE,), baseline=None, unit=" nats"),
    Claim("2", "controlling co-adaptation makes the language generalize better: test accuracy of a probe listener "
          "fitted on the train objects' messages", "probe test accuracy", MARGINS["accuracy"]),
    Claim("2 (pair)", "... by the pair's own test accuracy", "test accuracy", MARGINS["accuracy"]),
    Claim("3", "controlling co-adaptation makes the language more compositional: topsim on the train objects",
          "train topsim", MARGINS["topsim"]),
    Claim("3 (test)", "... topsim on the test objects", "test topsim", MARGINS["topsim"]),
)


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
    out = analysis.probe_population(Spec(config), stacked, "train", keys, hparams_from_config(config, len(keys)), SPLIT_NAMES)
    seeds = seeds_of(config)
    runs = pd.DataFrame({"condition": np.repeat(names, len(seeds)), "seed": np.tile(seeds, len(names))})
    measured = [(split, metric) for split in SPLIT_NAMES for metric in PROBE] + [("train", "steps")]
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
    for split in SPLIT_NAMES:
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


def _up(text: str) -> str:
    return text[:1].upper() + text[1:]


def undertrained(seeds: pd.DataFrame, baseline: str = BASELINE) -> dict[str, float]:
    """The controls whose probe fits the train objects worse than the baseline's by more than the accuracy margin."""
    fit = seeds.groupby("condition", sort=False)["probe train accuracy"].mean()
    return {name: value for name, value in fit.drop(baseline).items() if value < fit[baseline] - MARGINS["accuracy"]}


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
        return "no, it goes the other way" if row["effect"] + row["mde"] < 0 else "no, or too little to matter"
    return f"can't tell yet: about {row['needed']} seeds would" if row["needed"] <= 1000 else "can't tell: the seeds disagree"


def plain_words(judged: pd.DataFrame) -> str:
    """The claims as questions, each answered per control in words without symbols (a line per answer)."""
    lines = []
    for claim, question in QUESTIONS.items():
        lines.append(f"{claim}. {question}")
        rows = judged[judged["claim"].str.split(" ").str[0] == str(claim)]
        for condition in dict.fromkeys(rows["condition"]):
            if claim > 1:
                lines.append(f"   {_up(CONTROL_WORDS.get(condition, condition))}:")
            for _, row in rows[rows["condition"] == condition].iterrows():
                lines.append(f"   - {_up(MEASURE_WORDS[row['measure']].format(**row))}. {_up(_answer(row))}.")
    return "\n".join(lines)


def train(configs: dict[str, Config], progress: bool, preset: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every condition through the grid runner, then a probe listener for every run: the tidy table, twice (the
    per-seed table is read from it)."""
    from lab.experiment.grid import grid, train_grid

    trained = train_grid(grid(configs), progress, name="coadaptation")
    senders = {run.cell.labels["condition"]: run.state.senders for run in trained.runs}
    table = pd.concat([trained.table, probe_table(configs[BASELINE], senders)], ignore_index=True)
    table = table[["condition", *results.COLUMNS]]
    return table, table


def opening(result: Result) -> str:
    b = result.seeds[result.seeds["condition"] == BASELINE].mean(numeric_only=True)
    gap, d_info, d_adapt = b["gap loss"], b["gap l_info"], b["gap l_adapt"]
    fewer = "; L_info is lower on test partly because the test split has fewer objects to confuse" if d_info < 0 else ""
    return (f"For the {BASELINE}, the generalization gap is {gap:.2f} nats ({b['test loss']:.2f} on test vs "
            f"{b['train loss']:.2f} on train); L_adapt carries {d_adapt:.2f} nats of it ({share_of(d_adapt, gap)}), L_info "
            f"{d_info:.2f} ({share_of(d_info, gap)}{fewer}).")


def notes(result: Result) -> list[str]:
    seeds = result.seeds
    text = []
    behind = undertrained(seeds)
    if behind:
        b = seeds[seeds["condition"] == BASELINE]["probe train accuracy"].mean()
        fits = ", ".join(f"{value:.2f} ({name})" for name, value in behind.items())
        text.append(f"Caution: at this length of training the language of {' and '.join(behind)} is learned less far "
                    f"than the {BASELINE}'s: a probe listener gets {fits} of the train objects right, against {b:.2f} for "
                    f"the {BASELINE}; their test numbers mix generalization with under-training.")
    text.append("In plain words (seeds: independent pairs of agents):\n\n" + plain_words(result.judged))
    return text


STUDY = Declaration(
    name="coadaptation", title="co-adaptation",
    question="Rita et al. 2022's claims on co-adaptation, each judged over seeds with a probe listener; differences are "
             "control minus baseline, seed by seed.",
    presets=PRESETS, conditions=CONDITIONS, claims=CLAIMS, train=train, per_seed=lambda table, configs: per_seed(table),
    opening=opening, notes=notes,
    outputs={"coadaptation.png": lambda r, p: plots.coadaptation_figure(r.table, r.seeds, p, list(r.configs))},
)


def coadaptation(out: str | Path, small: bool = False, overwrite: bool = False, progress: bool = True,
                 overrides: list[str] = (), preset: str | None = None):
    """Rita et al. 2022's claims on co-adaptation, each judged over seeds with a probe listener; writes DIR (module doc)."""
    return run(STUDY, out, small=small, preset=preset, overwrite=overwrite, progress=progress, overrides=overrides)
