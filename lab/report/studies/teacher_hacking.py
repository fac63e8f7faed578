"""`lab study teacher-hacking --out DIR [--small]`: does a student distilled from an imperfect teacher over-fit the teacher
at the expense of the truth, with offline data but not with online data? (Tiapkin et al. 2025, arXiv 2502.02671)

The paper's controlled setup (../shared/science/algorithms.md §F), with Lewis-game languages for language models
(lab.transmission.hacking): an *oracle* language (a compositional table of K=3 attributes x V=4 values, position k
saying attribute k's value, with a little noise: a distribution over messages of full support), a *teacher* distilled from the oracle's messages for a
bottleneck of 16 train objects (supervised fine-tuning on oracle data, so it is imperfect outside them), and a
*student*, first fine-tuned the same way on 8 of those objects (the paper's students start from supervised fine-tuning
on oracle data; its teacher is the larger model, ours the one with more oracle data), then distilled from the teacher
by token-level forward KL (the paper's default) on N train objects, from each data source:

* offline: a fixed corpus of M teacher messages for each of the N objects, reused;
* online_teacher: fresh teacher messages every step, for the same N objects;
* online_student: the student's own messages, scored by the teacher (on-policy, as GKD);
* offline, fewer objects: the same corpus size N x M with 4 times fewer objects and 4 times more messages each
  (less diversity; the paper finds diversity to be what prevents hacking);
* online_teacher and online_student, fewer objects: the online sources on that smaller bottleneck of N / 4 objects.

Over the steps (log-spaced), on the held-out objects: proxy = KL(teacher || student) and golden = KL(oracle ||
student), nats per message, estimated on fixed teacher and oracle messages. Teacher hacking is read the paper's two
ways (lab.transmission.detect): the proxy-golden curve turns (the golden distance rises from its minimum while the
proxy falls), and the golden distance departs from the power law fitted to its early log-log decay, at a step.

Claims, each judged by the shared rule (lab.report.studies.common) over seeds (a seed is one teacher; every condition
of a seed distils the same teacher, from the same initial student, about the same objects):

1. offline data shows hacking: the golden distance ends above its minimum (relative rise), while the proxy falls;
   and the student ends farther from the oracle than its teacher is (a student that merely converged to its teacher
   would end at the teacher's distance);
2. online data removes it: a smaller rise than offline's of the same seed, and a lower final golden distance, at
   both bottlenecks;
3. diversity reduces it: the offline corpus with more objects (fewer messages each) rises less and ends lower than the
   one with fewer objects.

Where this differs from the paper: teacher and student are the same small GRU (the paper's teacher is the larger
model; here it is the one fine-tuned on more oracle data); messages are 3 symbols, not 128 tokens, so a corpus of two
messages per object already covers most of a sharp teacher's mass; golden is measured on held-out objects of a
compositional split. In this regime a student on its way from its start to the teacher passes closer to the oracle
than the teacher is, with online data too (the opening counts the seeds): a U there is not by itself the offline
corpus's doing, which is why claims 2a and 1b compare with online data and with the teacher's own distance. Small runs
with a synonyms oracle (8 messages per object) and with a better teacher (48 objects, an iid split) turned online as
well (December 2026, the report of issue 35).

DIR/metrics.parquet   tidy: condition, seed, step, split (test: held-out objects; train: the student's objects; all:
                      every object; batch: the loss), metric, value
DIR/per_seed.csv      per (condition, seed): the rise, the turn, the departure, final distances, the language's measures
DIR/curves.csv        the figures' numbers: per condition and step, proxy and golden, mean and standard error
DIR/curves.png        proxy and golden against steps, log-log, a panel per condition
DIR/proxy_golden.png  golden against proxy, a line per condition
DIR/summary.csv, claims.csv, report.md, configs/*.yaml
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import jax
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from lab.core.hparams import hparams_from_config
from lab.core.trainer import seed_keys
from lab.experiment.config import Config, ConfigError
from lab.experiment.run import progress_bar, seeds_of
from lab.report.studies.common import Claim, Declaration, Result, run
from lab.transmission import detect
from lab.transmission.hacking import Hacking

# K=3 attributes x V=4 values: 64 objects, a compositional split holds out 13 (51 train); messages of 3 symbols and
# an EOS from 8 symbols and EOS; GRU 64 agents. The oracle: games.languages.shared_alphabet (position k says attribute
# k's value v as symbol v + 1), with noise. The teacher learns it from 16 objects x 4 messages, the student from the
# first 8 of them before its distillation.
WORLD = ["game.n_attributes=3", "game.n_values=4", "game.split=compositional", "game.test_fraction=0.2",
         "agents.vocab_size=9", "agents.max_len=4", "agents.hidden_size=64", "agents.embedding_size=16",
         "transmission.oracle=shared_alphabet", "transmission.oracle_noise=0.05", "transmission.teacher=distilled",
         "transmission.teacher_objects=16", "transmission.teacher_samples=4", "transmission.teacher_steps=1000",
         "transmission.student_objects=8",
         "transmission.loss=forward_kl", "transmission.lr=0.001", "transmission.batch_size=64",
         # the golden distance's early decay: from 0.5% to 4% of the steps (its minimum comes near 4%)
         "transmission.fit_start=0.005", "transmission.fit_end=0.04"]
PRESETS = {
    "small": WORLD + ["transmission.steps=2000", "transmission.evals=20", "train.seeds=4"],
    "full": WORLD + ["transmission.steps=4000", "transmission.evals=28", "train.seeds=8"],
}
N, M = 48, 2  # the corpus: N objects x M messages each (96 rows); "fewer objects" keeps the rows, N / 4 objects x 4 M
CONDITIONS = {
    "offline": ["transmission.data=offline", f"transmission.n_objects={N}", f"transmission.samples_per_object={M}"],
    "online_teacher": ["transmission.data=online_teacher", f"transmission.n_objects={N}"],
    "online_student": ["transmission.data=online_student", f"transmission.n_objects={N}"],
    "offline, fewer objects": ["transmission.data=offline", f"transmission.n_objects={N // 4}",
                               f"transmission.samples_per_object={4 * M}"],
    "online_teacher, fewer objects": ["transmission.data=online_teacher", f"transmission.n_objects={N // 4}"],
    "online_student, fewer objects": ["transmission.data=online_student", f"transmission.n_objects={N // 4}"],
}
BASELINE = "offline"
MARGINS = {"rise": 0.1, "nats": 0.1}  # a 10% rise of the golden distance; a tenth of a nat per message
CLAIMS = (
    Claim("1a", "offline data shows teacher hacking: the golden distance ends above its minimum", "golden rise",
          MARGINS["rise"], conditions=(BASELINE,), baseline=None),
    Claim("1b", "the offline student ends farther from the oracle than its teacher", "golden final - teacher golden",
          MARGINS["nats"], conditions=(BASELINE,), baseline=None, unit=" nats"),
    Claim("2a", "online data removes it: the golden distance rises less than offline", "golden rise", MARGINS["rise"],
          conditions=("online_teacher", "online_student"), baseline=BASELINE, sign=-1),
    Claim("2b", "online data ends closer to the oracle than offline", "golden final", MARGINS["nats"],
          conditions=("online_teacher", "online_student"), baseline=BASELINE, sign=-1, unit=" nats"),
    Claim("2c", "at the smaller bottleneck too, online data ends closer to the oracle than offline", "golden final",
          MARGINS["nats"], conditions=("online_teacher, fewer objects", "online_student, fewer objects"),
          baseline="offline, fewer objects", sign=-1, unit=" nats"),
    Claim("3a", "more diverse data (more objects, fewer messages each) rises less", "golden rise", MARGINS["rise"],
          conditions=(BASELINE,), baseline="offline, fewer objects", sign=-1),
    Claim("3b", "more diverse data ends closer to the oracle", "golden final", MARGINS["nats"], conditions=(BASELINE,),
          baseline="offline, fewer objects", sign=-1, unit=" nats"),
)
# the student's measures over steps, and at the end (lab.transmission.hacking)
SPLITS = {"proxy": ("test", "proxy"), "golden": ("test", "golden"), "proxy_train": ("train", "proxy"),
          "golden_train": ("train", "golden"), "topsim": ("all", "topsim"), "posdis": ("all", "posdis"),
          "bosdis": ("all", "bosdis"), "distinct": ("all", "distinct"), "loss": ("batch", "loss")}
FINAL = {"ease_of_teaching": ("train", "ease_of_teaching"), "train_accuracy": ("train", "accuracy"),
         "test_accuracy": ("test", "accuracy"), "teacher_golden": ("test", "teacher_golden"),
         "teacher_topsim": ("all", "teacher_topsim")}


class Trained(NamedTuple):
    histories: dict[str, dict]  # condition -> name -> numpy [seeds, evals] or [seeds]
    steps: np.ndarray  # the evaluated steps
    seeds: np.ndarray
    configs: dict[str, Config]


def train(configs: dict[str, Config], progress: bool = True, preset: str = "full") -> tuple[Trained, pd.DataFrame]:
    """The teachers (one per seed, shared by every condition), then each condition's students: one compiled call each."""
    base = next(iter(configs.values()))
    if base.transmission.teacher == "trained":
        raise ConfigError("transmission.teacher='trained': this study distils its teachers from the oracle (distilled) or "
                          "lets the oracle teach (oracle); a trained teacher has no oracle to measure golden against")
    keys, seeds = seed_keys(base), seeds_of(base)
    bar, advance = progress_bar(len(configs) + 1, f"teacher-hacking: teachers, then {len(configs)} conditions", progress)
    try:
        lr = hparams_from_config(base, len(seeds))["transmission"]["lr"]
        first = Hacking(base)
        teachers = jax.jit(jax.vmap(first.teacher))(keys, lr) if base.transmission.teacher == "distilled" else None
        language = jax.jit(jax.vmap(first.language))  # one program for every condition's students
        advance(0)
        histories = {}
        for i, (name, config) in enumerate(configs.items()):
            hacking = Hacking(config)
            students, history = jax.jit(jax.vmap(hacking.student))(keys, teachers, lr)
            history.update(language(keys, students, teachers, lr))
            histories[name] = {k: np.asarray(v) for k, v in history.items()}
            steps = hacking.steps_evaluated
            advance(i + 1)
    finally:
        bar.close()
    trained = Trained(histories, steps, seeds, configs)
    return trained, tidy(trained)


def tidy(trained: Trained) -> pd.DataFrame:
    rows = []
    for condition, history in trained.histories.items():
        for name, values in history.items():
            split, metric = (SPLITS | FINAL)[name]
            values = np.asarray(values, np.float64)
            steps = trained.steps if values.ndim == 2 else trained.steps[-1:]
            values = values.reshape(len(trained.seeds), len(steps))
            seed, step = np.meshgrid(trained.seeds, steps, indexing="ij")
            rows.append(pd.DataFrame({"condition": condition, "seed": seed.ravel(), "step": step.ravel(), "split": split,
                                      "metric": metric, "value": values.ravel()}))
    table = pd.concat(rows, ignore_index=True)
    return table[np.isfinite(table["value"])].reset_index(drop=True)


def per_seed(trained: Trained, configs) -> pd.DataFrame:
    """One row per (condition, seed): the turn, the departure, final distances and the language's measures."""
    steps, rows = trained.steps, []
    for condition, h in trained.histories.items():
        t = configs[condition].transmission
        for s, seed in enumerate(trained.seeds):
            u = detect.turn(steps, h["proxy"][s], h["golden"][s], t.tolerance)
            departed = detect.departure(steps, h["golden"][s], t.fit_start * t.steps, t.fit_end * t.steps, t.tolerance)
            law = detect.fit_power_law(steps, h["golden"][s], t.fit_start * t.steps, t.fit_end * t.steps)
            rows.append({
                "condition": condition, "seed": int(seed),
                "golden rise": u.rise / u.golden_min, "turned": float(u.turned), "golden min step": u.step,
                "departure step": np.nan if departed is None else departed,
                "golden exponent": np.nan if law is None else law.exponent,
                "golden min": u.golden_min, "golden final": u.golden_final, "proxy final": float(h["proxy"][s, -1]),
                "proxy change after the minimum": u.proxy_change, "teacher golden": float(h["teacher_golden"][s]),
                "golden final - teacher golden": u.golden_final - float(h["teacher_golden"][s]),
                "golden train final": float(h["golden_train"][s, -1]), "proxy train final": float(h["proxy_train"][s, -1]),
                "topsim": float(h["topsim"][s, -1]), "teacher topsim": float(h["teacher_topsim"][s]),
                "ease of teaching": float(h["ease_of_teaching"][s]), "expressivity": float(h["train_accuracy"][s]),
                "hold-out accuracy": float(h["test_accuracy"][s]),
            })
    return pd.DataFrame(rows)


def curves(table: pd.DataFrame) -> pd.DataFrame:
    """The figures' numbers: per condition and step, mean and standard error over seeds of proxy and golden (held out)."""
    held = table[(table["split"] == "test") & table["metric"].isin(("proxy", "golden"))]
    grouped = held.groupby(["condition", "step", "metric"], sort=False)["value"]
    out = pd.concat({"mean": grouped.mean(), "se": grouped.sem(ddof=1)}, axis=1).unstack("metric")
    out.columns = [f"{metric} {stat}" for stat, metric in out.columns]
    return out[["proxy mean", "proxy se", "golden mean", "golden se"]].reset_index()


def plain_log_ticks(axis) -> None:
    """Plain numbers at 1, 2 and 5 of each decade of a log axis (a range within one decade has no power of 10 to label),
    none at the other minor ticks (they would overlap)."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FormatStrFormatter("%g"))
    axis.set_minor_formatter(NullFormatter())


def curves_figure(result: Result, path: Path) -> None:
    """Proxy and golden distance against steps, log-log, a panel per condition; thin lines are seeds."""
    numbers, seeds = curves(result.table), result.seeds
    conditions = list(dict.fromkeys(numbers["condition"]))
    fig, axes = plt.subplots(1, len(conditions), figsize=(3.6 * len(conditions), 3.4), sharey=True, squeeze=False)
    held = result.table[result.table["split"] == "test"]
    for ax, condition in zip(axes[0], conditions):
        for metric, colour in (("proxy", "tab:blue"), ("golden", "tab:red")):
            own = held[(held["condition"] == condition) & (held["metric"] == metric) & (held["step"] > 0)]
            for _, run in own.groupby("seed"):
                ax.plot(run["step"], run["value"], color=colour, alpha=0.2, lw=0.8)
            mean = numbers[(numbers["condition"] == condition) & (numbers["step"] > 0)]
            ax.plot(mean["step"], mean[f"{metric} mean"], color=colour, lw=2,
                    label=f"{metric}: KL({'teacher' if metric == 'proxy' else 'oracle'} || student)")
        mine = seeds[seeds["condition"] == condition]
        ax.axhline(mine["teacher golden"].mean(), color="tab:red", ls=":", lw=1, label="teacher's golden")
        ax.axvline(mine["golden min step"].median(), color="grey", ls="--", lw=1, label="golden minimum (median)")
        ax.set(xscale="log", yscale="log", xlabel="distillation step", title=condition)
        plain_log_ticks(ax.yaxis)
    axes[0][0].set_ylabel("nats per message, held-out objects")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def proxy_golden_figure(result: Result, path: Path) -> None:
    """Golden against proxy distance (held out), a line per condition (means over seeds), the golden minimum marked."""
    numbers = curves(result.table)
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    for condition, own in numbers.groupby("condition", sort=False):
        line, = ax.plot(own["proxy mean"], own["golden mean"], marker=".", label=condition)
        lowest = own["golden mean"].idxmin()
        ax.plot(own.loc[lowest, "proxy mean"], own.loc[lowest, "golden mean"], "o", mfc="none", ms=10, color=line.get_color())
    ax.set(xscale="log", yscale="log", xlabel="proxy: KL(teacher || student), nats", ylabel="golden: KL(oracle || student), nats",
           title="training runs right to left; circles: golden minimum")
    for axis in (ax.xaxis, ax.yaxis):
        plain_log_ticks(axis)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def opening(result: Result) -> str:
    seeds, table = result.seeds, result.table
    base = seeds[seeds["condition"] == BASELINE]
    start = table[(table["split"] == "test") & (table["metric"] == "golden") & (table["step"] == 0)]["value"].mean()
    n = result.configs[BASELINE].transmission.student_objects
    how = f"fine-tuned on the oracle's messages for {n} objects" if n else "freshly initialised"
    turned = seeds.groupby("condition", sort=False)["turned"].agg(["sum", "size"])
    return (f"The regime: the teachers are imperfect, KL(oracle || teacher) = {base['teacher golden'].mean():.2f} nats per "
            f"message on the held-out objects (mean over {len(base)} seeds); the student ({how}) starts at {start:.2f}. "
            "The golden distance turned (a U while the proxy fell) in "
            + ", ".join(f"{c} {int(r['sum'])} of {int(r['size'])}" for c, r in turned.iterrows())
            + " seeds: where online data turns as well, the U is the student passing closer to the oracle on its way to "
              "the teacher, not the offline corpus's doing, and claims 2a and 3a say how much the data source adds.")


def notes(result: Result) -> list[str]:
    """Per condition: the turn, the departure from the power law, and the figures' numbers at a few steps."""
    seeds, numbers = result.seeds, curves(result.table)
    text = []
    for condition, own in seeds.groupby("condition", sort=False):
        departed = own["departure step"].dropna()
        when = f"at step {departed.median():.0f} (median)" if len(departed) else "in no seed"
        text.append(f"{condition}: the golden distance turned (rose by more than the tolerance while the proxy fell) in "
                    f"{int(own['turned'].sum())} of {len(own)} seeds; its minimum {own['golden min'].mean():.2f} nats at "
                    f"step {own['golden min step'].median():.0f} (median), {own['golden final'].mean():.2f} at the end "
                    f"(the teacher's own: {own['teacher golden'].mean():.2f}); it departed from its early power law "
                    f"(exponent {own['golden exponent'].mean():.2f}) {when}, in {len(departed)} of {len(own)} seeds; the "
                    f"proxy ended at {own['proxy final'].mean():.2f}.")
    shown = numbers[numbers["step"].isin(np.unique(numbers["step"])[::4].tolist() + [numbers["step"].max()])]
    table = shown.pivot_table(index="step", columns="condition", values=["proxy mean", "golden mean"], sort=False)
    table.columns = [f"{metric.split()[0]} {condition}" for metric, condition in table.columns]
    text.append("The figures' numbers (means over seeds, held-out objects; every step in curves.csv):\n\n```\n"
                + table.to_string(float_format=lambda v: f"{v:.3f}") + "\n```")
    return text


STUDY = Declaration(
    name="teacher-hacking", title="teacher hacking",
    question="Oracle -> teacher (distilled from the oracle on a bottleneck, imperfect) -> student (distilled from the "
             "teacher): does the student's distance to the oracle (golden) rise while its distance to the teacher "
             "(proxy) falls, with offline data, and do online data and more diverse data prevent it? (Tiapkin et al. 2025)",
    presets=PRESETS, conditions=CONDITIONS, claims=CLAIMS, train=train, per_seed=per_seed, opening=opening, notes=notes,
    outputs={"curves.csv": lambda r, p: curves(r.table).to_csv(p, index=False), "curves.png": curves_figure,
             "proxy_golden.png": proxy_golden_figure},
    default="full",
)


def teacher_hacking(out: str | Path, small: bool = False, overwrite: bool = False, progress: bool = True,
                    overrides: list[str] = (), preset: str | None = None):
    """Teacher hacking: offline vs online (teacher- and student-generated) distillation, proxy vs golden; writes DIR."""
    return run(STUDY, out, small=small, preset=preset, overwrite=overwrite, progress=progress, overrides=overrides)
