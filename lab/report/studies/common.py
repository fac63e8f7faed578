"""What every study shares: the rule that decides a claim, and the declaration a study is.

The rule (RULE, `judge`): per seed, the difference between a condition and the baseline trained with
the same seed (or a condition's own value, for a claim about one condition); its mean over seeds is
the effect, its standard deviation / sqrt(seeds) the standard error (SE). With t the 97.5% quantile
of Student's t at seeds - 1 degrees of freedom (the 95% interval effect ± t SE):

* reproduced: the interval lies wholly on the claimed side of 0;
* not reproduced: the interval lies wholly below the margin, the smallest effect that matters in
  the claimed direction (which includes an effect clearly the other way);
* inconclusive: otherwise.

Every verdict carries its minimum detectable effect, MDE = (t + t_80) SE with t_80 the 80% quantile:
a true effect this large is called reproduced four times in five at these seeds. An inconclusive
verdict says how many seeds would decide an effect of the margin's size (power 80%, the spread of the
differences as observed). Two seeds decide nothing (t = 12.7); the interval is wide with few seeds, and
the rule says so rather than a fixed minimum number of seeds.

A study is a declaration (`Declaration`): the overrides of each preset, its conditions (the first is the
baseline), optional continuous values crossed with them, its claims (`Claim`: a per-seed measure, the
conditions compared, the margin) and its figures. `run` trains the grid (lab.experiment.grid), reduces it
to one row per (condition, seed) (`final_values`, or the study's own `per_seed`), judges every claim and
writes the study directory:

DIR/metrics.parquet   tidy: condition (+ swept values), seed, step, split, metric, value
DIR/per_seed.csv      one row per (condition, seed): the measures the claims read
DIR/summary.csv       per condition: seeds, mean and standard error of every measure
DIR/claims.csv        per claim and condition: value, baseline, effect, se, seeds, margin, mde, seeds_needed, call
DIR/*.png             the figures
DIR/report.md         the verdict, the figures and the tables
DIR/configs/*.yaml    the resolved config of every condition
"""

from __future__ import annotations

import functools
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import pandas as pd
import yaml

from lab.experiment import results
from lab.experiment.config import Config, ConfigError, load, to_dict
from lab.experiment.grid import Grid, diverged_note, grid, train_grid
from lab.experiment.io import check_out, staged


class Study(NamedTuple):
    table: pd.DataFrame  # tidy, with a `condition` column
    summary: pd.DataFrame  # one row per condition
    verdict: str
    seconds: float


# -- the rule --------------------------------------------------------------------------------------------------------

LEVEL, POWER = 0.975, 0.80  # the interval's one-sided level (a 95% interval); the power of the MDE

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
HIGHER, LOWER, SAME = "higher", "lower", "the same within the margin"
RULE = ("effect = mean over seeds of the paired difference (same seed), SE = its standard deviation / sqrt(seeds), "
        "t = Student's 97.5% quantile at seeds - 1 degrees of freedom; reproduced when the 95% interval effect ± t SE lies "
        "wholly on the claimed side of 0; not reproduced when it lies wholly below the margin (the smallest effect that "
        "matters), which includes an effect clearly the other way; otherwise inconclusive. MDE (minimum detectable effect) "
        "= (t + t_80) SE: an effect this large is called reproduced with probability 0.8 at these seeds")


@functools.lru_cache(maxsize=None)
def t_quantile(q: float, seeds: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(q, seeds - 1)) if seeds > 1 else float("inf")


def detectable(sd: float, seeds: int) -> float:
    """The minimum detectable effect of the rule at `seeds` paired differences of standard deviation `sd`."""
    return float((t_quantile(LEVEL, seeds) + t_quantile(POWER, seeds)) * sd / np.sqrt(seeds))


def seeds_needed(sd: float, margin: float, most: int = 1000) -> int:
    """The fewest seeds whose MDE is at most `margin`, for differences of standard deviation `sd` (`most` + 1: more)."""
    if not (np.isfinite(sd) and margin > 0):
        return most + 1
    for n in range(2, most + 1):
        if detectable(sd, n) <= margin:
            return n
    return most + 1


class Judgement(NamedTuple):
    effect: float  # mean of the differences, in the claimed direction when > 0
    se: float  # standard error of that mean over seeds
    seeds: int
    margin: float  # the smallest effect that matters
    mde: float  # minimum detectable effect at these seeds
    needed: int  # seeds whose MDE reaches the margin (0 when decided)
    call: str  # REPRODUCED, NOT_REPRODUCED or INCONCLUSIVE


def judge(differences, margin: float) -> Judgement:
    """RULE on per-seed differences `d_s` (claimed direction: d > 0); `margin` is the smallest effect that matters.

        >>> judge([0.20, 0.22, 0.19, 0.21, 0.18], margin=0.05).call
        'reproduced'
        >>> judge([0.00, 0.01, -0.01, 0.00, 0.01], margin=0.05).call
        'not reproduced'
        >>> j = judge([0.30, -0.25, 0.40, -0.30, 0.10], margin=0.05)
        >>> j.call, j.needed
        ('inconclusive', 316)
    """
    d = np.asarray(differences, np.float64)
    n = len(d)
    effect = float(d.mean()) if n else float("nan")
    sd = float(d.std(ddof=1)) if n > 1 else float("nan")
    se = float(sd / np.sqrt(n)) if n > 1 else float("nan")
    mde = detectable(sd, n) if n > 1 else float("inf")
    if n < 2 or not np.all(np.isfinite(d)):
        return Judgement(effect, se, n, margin, mde, seeds_needed(sd, margin) if n > 1 else 0, INCONCLUSIVE)
    half = t_quantile(LEVEL, n) * se
    if effect - half > 0:
        return Judgement(effect, se, n, margin, mde, 0, REPRODUCED)
    if effect + half < margin:
        return Judgement(effect, se, n, margin, mde, 0, NOT_REPRODUCED)
    return Judgement(effect, se, n, margin, mde, seeds_needed(sd, margin), INCONCLUSIVE)


def compare(differences, margin: float) -> tuple[str, Judgement]:
    """A question without a claimed direction, by the same interval: HIGHER, LOWER, SAME (the interval inside
    ±margin) or INCONCLUSIVE, with the judgement of `d > 0`."""
    up = judge(differences, margin)
    half = t_quantile(LEVEL, up.seeds) * up.se if up.seeds > 1 else float("inf")
    if up.call == REPRODUCED:
        return HIGHER, up
    if up.effect + half < 0:
        return LOWER, up
    if abs(up.effect) + half < margin:
        return SAME, up
    # undecided here though judge may have decided `d > 0` (not reproduced): the seeds that would decide
    needed = up.needed or seeds_needed(up.se * np.sqrt(up.seeds), margin)
    return INCONCLUSIVE, up._replace(call=INCONCLUSIVE, needed=needed)


def describe(j: Judgement, unit: str = "", seeds: str = "seeds") -> str:
    """`+0.20 ± 0.01 over 6 seeds (MDE 0.03): reproduced`, with the seeds that would decide when inconclusive; `seeds`
    names the unit of replication."""
    text = f"{j.effect:+.3g} ± {j.se:.2g}{unit} over {j.seeds} {seeds} (MDE {j.mde:.2g}{unit}): {j.call}"
    if j.call == INCONCLUSIVE and j.seeds > 1:
        more = f"about {j.needed}" if j.needed <= 1000 else "more than 1000"
        text += f"; {more} {seeds} would decide an effect of the margin ({j.margin:g}{unit})"
    if j.call == REPRODUCED and j.effect < j.margin:
        text += f", though below the {j.margin:g} margin"
    return text


# -- claims over a per-seed table -------------------------------------------------------------------------------------

class Claim(NamedTuple):
    """A claim read off the per-seed table: `measure` is higher (`sign` +1) or lower (-1) under each of `conditions`
    than under `baseline` of the same seed, by at least `margin` to matter; `baseline=None`: the conditions' own values
    are the differences (a claim about one condition, e.g. a gap > 0). `two_sided`: a question without a direction,
    answered HIGHER, LOWER, SAME (within the margin) or INCONCLUSIVE (`compare`)."""

    name: str  # "1", "speed", ...
    words: str  # the claim in a sentence
    measure: str  # a column of the per-seed table
    margin: float
    conditions: tuple[str, ...] = ()  # () with a baseline: every other condition
    baseline: str | None = "baseline"
    sign: int = 1
    unit: str = ""
    two_sided: bool = False


def judge_claims(seeds: pd.DataFrame, claims) -> pd.DataFrame:
    """One row per (claim, condition): its mean value, the baseline's, the judgement of RULE."""
    by = seeds.set_index(["condition", "seed"])
    present = list(dict.fromkeys(seeds["condition"]))
    rows = []
    for claim in claims:
        if claim.baseline is not None and claim.baseline not in present:
            continue
        compared = claim.conditions or [c for c in present if c != claim.baseline]
        for condition in compared:
            if condition not in present:
                continue
            values = by.loc[condition][claim.measure]
            if claim.baseline is None:
                d, base = values, float("nan")
            else:
                reference = by.loc[claim.baseline][claim.measure]
                common = values.index.intersection(reference.index)
                d, base = values[common] - reference[common], float(reference.mean())
            d = claim.sign * d.to_numpy()
            if claim.two_sided:
                call, j = compare(d, claim.margin)
                j = j._replace(call=call)
            else:
                j = judge(d, claim.margin)
            rows.append(dict(claim=claim.name, condition=condition, measure=claim.measure, words=claim.words,
                             baseline=base, value=float(values.mean()), **j._asdict()))
    return pd.DataFrame(rows)


def claim_text(claim: Claim, judged: pd.DataFrame, seeds: str = "seeds") -> str:
    """One paragraph: the claim, then per condition its value and judgement."""
    rows = judged[judged["claim"] == claim.name]
    if rows.empty:
        return f"Claim {claim.name}, {claim.words}: not measured."
    parts = []
    for _, row in rows.iterrows():
        j = Judgement(*(row[f] for f in Judgement._fields))
        against = "" if claim.baseline is None else f" vs {claim.baseline} {row['baseline']:.3g}"
        parts.append(f"{row['condition']} {row['value']:.3g}{against} ({describe(j, claim.unit, seeds)})")
    direction = "" if claim.sign > 0 else " (lower is the claim)"
    return f"Claim {claim.name}, {claim.words}{direction} [{claim.measure}]: " + "; ".join(parts) + "."


def summarize(seeds: pd.DataFrame, by: tuple[str, ...] = ("condition",)) -> pd.DataFrame:
    """Seeds, mean and standard error of every numeric per-seed column, one row per condition, in the table's order."""
    by = list(by)
    grouped = seeds.drop(columns="seed").groupby(by, sort=False)
    numeric = [c for c in seeds.columns if c not in by + ["seed"] and pd.api.types.is_numeric_dtype(seeds[c])]
    stats = pd.concat({"mean": grouped[numeric].mean(), "se": grouped[numeric].sem(ddof=1)}, axis=1)
    stats.columns = [f"{name} {stat}" for stat, name in stats.columns]
    stats = stats[[f"{name} {stat}" for name in numeric for stat in ("mean", "se")]]
    stats.insert(0, "seeds", seeds.groupby(by, sort=False)["seed"].count())
    return stats


# -- a study as a declaration -----------------------------------------------------------------------------------------

class Result(NamedTuple):
    """What a study's hooks see: the declaration, the preset, the conditions' configs, the trained grid, its tidy
    table, the per-seed table, the judged claims, the time each part took."""

    spec: "Declaration"
    preset: str
    configs: dict[str, Config]
    grid: Grid | None
    table: pd.DataFrame
    seeds: pd.DataFrame
    judged: pd.DataFrame
    timing: dict[str, float]


def final_values(grid: Grid, configs: dict[str, Config]) -> pd.DataFrame:
    """The default per-seed table: the last evaluation, one column `"{split} {metric}"` per (split, metric), a
    population's pairs averaged; the labels of the grid (condition, swept values) and the seed first."""
    table = grid.table
    labels = [c for c in table.columns if c not in (*results.COLUMNS, *results.AGENT_COLUMNS)]
    last = results.final(table)
    last = last[last["split"] != "batch"]
    wide = last.pivot_table(index=labels + ["seed"], columns=["split", "metric"], values="value", sort=False)
    wide.columns = [f"{split} {metric}" for split, metric in wide.columns]
    return wide.reset_index()


@dataclass(frozen=True)
class Declaration:
    """A study: what trains (presets x conditions x values x seeds), what is claimed, what is drawn.

    `conditions` and `values` may also be functions of the preset. Hooks, each optional: `per_seed(grid, configs)
    -> DataFrame` (one row per condition and seed; default `final_values`), `watch(cells) -> on_block` for each
    compiled call (lab.experiment.grid.train_grid), `train(configs, progress, preset) -> (what per_seed reads, tidy
    table)` instead of one grid (what it returns names its grid runs `cell_runs`, for the divergence report),
    `opening(result) -> str` before the claims (the baseline's problem, in numbers), `notes(result) -> [paragraphs]`
    after them, `outputs[name](result, path)` (a figure or table written as DIR/name; the report shows the .png ones),
    `check(result) -> str | None`: a precondition of the claims (a regime check), whose message replaces the claims
    when it fails.
    """

    name: str
    title: str
    question: str  # the report's first paragraph: what the study asks and how
    presets: dict[str, list[str]]  # preset -> overrides every condition gets
    conditions: dict[str, list[str]] | Callable[[str], dict]  # condition -> its overrides; the first is the baseline
    claims: tuple[Claim, ...] = ()
    values: dict[str, list] | Callable[[str], dict] = field(default_factory=dict)  # crossed with every condition
    per_seed: Callable[[Grid, dict], pd.DataFrame] = final_values
    watch: Callable | None = None
    train: Callable | None = None
    opening: Callable[[Result], str] | None = None
    notes: Callable[[Result], list[str]] | None = None
    outputs: dict[str, Callable[[Result, Path], Any]] = field(default_factory=dict)
    check: Callable[[Result], str | None] | None = None
    default: str = "full"  # the preset without --small or --preset
    seeds: str = "seeds"  # what the unit of replication is called in the verdict

    def conditions_of(self, preset: str) -> dict[str, list[str]]:
        return self.conditions(preset) if callable(self.conditions) else self.conditions

    def values_of(self, preset: str) -> dict[str, list]:
        return self.values(preset) if callable(self.values) else self.values

    def preset(self, small: bool = False, preset: str | None = None) -> str:
        if preset is not None and preset not in self.presets:
            raise ConfigError(f"study {self.name!r} has no preset {preset!r}; allowed: {', '.join(self.presets)}")
        if small and preset not in (None, "small"):
            raise ConfigError(f"--small and --preset {preset} disagree; give one of them")
        return preset or ("small" if small else self.default)

    def configs(self, preset: str, overrides: list[str] = (), only=None) -> dict[str, Config]:
        """The validated config of every condition (or of `only`, the baseline always first); `overrides` apply to all."""
        conditions = self.conditions_of(preset)
        baseline = next(iter(conditions))
        names = list(conditions) if only is None else [baseline] + [n for n in only if n != baseline]
        unknown = [n for n in names if n not in conditions]
        if unknown:
            raise ConfigError(f"study {self.name!r} has no condition {unknown[0]!r}; allowed: {', '.join(conditions)}")
        return {name: load(overrides=self.presets[preset] + conditions[name] + list(overrides)) for name in names}


def sketch(preset: str) -> str:
    return (" This is the small preset: a sketch that shows the study runs, with too few seeds and steps to be evidence "
            "either way." if preset == "small" else "")


def verdict(result: Result) -> str:
    """The claims, each judged, then the study's notes, then the rule; or the failed precondition."""
    spec = result.spec
    text = [spec.opening(result)] if spec.opening is not None else []
    failed = spec.check(result) if spec.check is not None else None
    if failed:
        return "\n\n".join(text + [failed + sketch(result.preset)])
    text += [claim_text(claim, result.judged, spec.seeds) for claim in spec.claims]
    if spec.notes is not None:
        text += spec.notes(result)
    text.append(f"(Rule: {RULE}.){sketch(result.preset)}")
    return "\n\n".join(text)


def verdict_of(spec: Declaration, seeds: pd.DataFrame, preset: str = "full") -> str:
    """The verdict `run` would write for a per-seed table measured elsewhere (a notebook's own runs)."""
    return verdict(Result(spec, preset, {}, None, pd.DataFrame(), seeds, judge_claims(seeds, spec.claims), {}))


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (every thread): on a busy machine, a better measure of a study's
    cost than its wall time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def report_text(result: Result, verdict_text: str, summary: pd.DataFrame) -> str:
    spec = result.spec
    shown = summary[[c for c in summary.columns if c.endswith("mean") or c == "seeds"]]
    shown.columns = [c.removesuffix(" mean") for c in shown.columns]
    judged = result.judged.drop(columns="words") if len(result.judged) else result.judged
    times = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in result.timing.items())
    return "\n".join([
        f"# Study: {spec.title} (preset {result.preset})", "", spec.question, "", verdict_text, "",
        *[f"![{name}]({name})\n" for name in spec.outputs if name.endswith(".png")],
        "Claims, as decided (effect: mean paired difference; se: its standard error over seeds; mde: minimum detectable "
        "effect; seeds_needed: seeds that would decide an effect of the margin, when inconclusive):", "",
        "```", judged.to_string(index=False, float_format=lambda v: f"{v:.3g}"), "```", "",
        "Per condition, mean over seeds (standard errors in summary.csv, every seed in per_seed.csv):", "",
        "```", shown.T.to_string(float_format=lambda v: f"{v:.3f}"), "```", "",
        f"Time: {times} ({sum(result.timing.values()):.0f} s in all; CPU time of the process {cpu_seconds():.0f} s, "
        f"{os.cpu_count()} cores, load average at the end {os.getloadavg()[0]:.1f}).", "",
    ])


def run(spec: Declaration, out: str | Path, small: bool = False, preset: str | None = None, overwrite: bool = False,
        progress: bool = True, overrides: list[str] = (), conditions=None) -> Study:
    """Train the study's grid (every condition, or `conditions` and the baseline), judge its claims, write DIR (module
    doc); returns the table, summary and verdict."""
    out = Path(out)
    check_out(out, overwrite)
    preset = spec.preset(small, preset)
    configs = spec.configs(preset, overrides, conditions)
    start = time.perf_counter()
    if spec.train is not None:
        trained, table = spec.train(configs, progress, preset)
    else:
        trained = train_grid(grid(configs, spec.values_of(preset)), progress, spec.watch, spec.name)
        table = trained.table
    diverged = diverged_note(trained.runs if isinstance(trained, Grid) else getattr(trained, "cell_runs", []))
    timing = {"training": time.perf_counter() - start}
    start = time.perf_counter()
    seeds = spec.per_seed(trained, configs)
    timing["measures"] = time.perf_counter() - start
    result = Result(spec, preset, configs, trained, table, seeds, judge_claims(seeds, spec.claims), timing)
    text = verdict(result)
    if diverged:  # the claims compare seeds at their last evaluation: a diverged one's is where it diverged
        text += f"\n\nDiverged, marked and kept: {diverged}."
    labels = [c for c in ("condition", *spec.values_of(preset)) if c in seeds.columns]
    summary = summarize(seeds, tuple(labels))
    with staged(out, overwrite, kind="study") as staging:
        results.write_parquet(table, staging / "metrics.parquet")
        seeds.to_csv(staging / "per_seed.csv", index=False)
        summary.to_csv(staging / "summary.csv")
        result.judged.to_csv(staging / "claims.csv", index=False)
        for name, write in spec.outputs.items():
            write(result, staging / name)
        (staging / "configs").mkdir()
        for name, config in configs.items():
            (staging / "configs" / f"{name.replace(' ', '_').replace('/', '-')}.yaml").write_text(
                yaml.safe_dump(to_dict(config), sort_keys=False))
        (staging / "report.md").write_text(report_text(result, text, summary))
    return Study(table, summary, text, sum(timing.values()))
