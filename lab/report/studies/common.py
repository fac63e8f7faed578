"""What every study returns (a tidy table, a summary, a verdict computed from the numbers, and its time), and the
rule that decides a claim from paired per-seed differences."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd


class Study(NamedTuple):
    table: pd.DataFrame  # tidy, with a `condition` column
    summary: pd.DataFrame  # one row per condition
    verdict: str
    seconds: float


RULE_SE = 2.0  # standard errors an effect must clear to be reproduced
MIN_SEEDS = 5  # fewer seeds decide nothing

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
RULE = (f"effect = mean over seeds of the paired difference (same seed), SE = its standard deviation / sqrt(seeds); "
        f"reproduced when the effect is in the claimed direction by at least {RULE_SE:g} SE; not reproduced when the "
        f"interval effect + {RULE_SE:g} SE stays below the smallest effect that matters (the margin) — which includes an "
        f"effect of {RULE_SE:g} SE or more the other way; otherwise inconclusive, and always inconclusive with fewer than "
        f"{MIN_SEEDS} seeds")


class Judgement(NamedTuple):
    effect: float  # mean of the differences, in the claimed direction when > 0
    se: float  # standard error of that mean over seeds
    seeds: int
    call: str  # REPRODUCED, NOT_REPRODUCED or INCONCLUSIVE


def judge(differences, margin: float, min_seeds: int = MIN_SEEDS) -> Judgement:
    """The RULE on per-seed differences `d_s` (claimed direction: d > 0); `margin` is the smallest effect that matters.

        >>> judge([0.20, 0.22, 0.19, 0.21, 0.18], margin=0.05).call
        'reproduced'
        >>> judge([0.00, 0.01, -0.01, 0.00, 0.01], margin=0.05).call
        'not reproduced'
        >>> judge([0.30, -0.25, 0.40, -0.30, 0.10], margin=0.05).call
        'inconclusive'
    """
    d = np.asarray(differences, np.float64)
    n = len(d)
    effect = float(d.mean()) if n else float("nan")
    se = float(d.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    if n < min_seeds or not np.all(np.isfinite(d)):
        return Judgement(effect, se, n, INCONCLUSIVE)
    if effect > 0 and effect >= RULE_SE * se:
        return Judgement(effect, se, n, REPRODUCED)
    if effect + RULE_SE * se < margin:
        return Judgement(effect, se, n, NOT_REPRODUCED)
    return Judgement(effect, se, n, INCONCLUSIVE)
