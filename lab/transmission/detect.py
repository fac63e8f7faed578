"""Detecting teacher hacking in curves of proxy and golden distance over distillation steps (numpy, on the host).

Tiapkin et al. 2025 (../shared/science/algorithms.md §F) detect it two ways, both here:

* the proxy-golden curve turns (`turn`): as the proxy (distance to the teacher) keeps falling, the
  golden metric (distance to the oracle) reaches a minimum and rises again, a U in the proxy-golden plot;
* the golden metric departs from polynomial convergence (`departure`): fit log golden = log a + b log
  step on its early decay (steps in [fit_start, fit_end]); the departure is the first later step from
  which log golden stays above the fit by more than log(1 + tolerance) (and 3 times the fit's own
  residual spread) for `patience` evaluations in a row, or to the end.

A curve that flattens onto a floor also departs from a power law: the departure says when the
decay stopped following its early law, the turn whether it went back up while the proxy fell.

    >>> steps = np.geomspace(1, 1000, 30)
    >>> departure(steps, 2.0 * steps ** -0.5, 5, 50, 0.1) is None
    True
    >>> bent = np.where(steps < 200, 2.0 * steps ** -0.5, 2.0 * 200 ** -0.5 * (steps / 200) ** 0.5)
    >>> int(departure(steps, bent, 5, 50, 0.1))
    239
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class PowerLaw(NamedTuple):
    log_a: float
    exponent: float  # b: value ~ a step^b (b < 0 for a decay)
    spread: float  # root mean square residual of the fit, in log units


def fit_power_law(steps, values, start: float, end: float) -> PowerLaw | None:
    """Least squares of log value on log step over the steps in [start, end] with step > 0 and value > 0 (None with
    fewer than 3 such points)."""
    steps, values = np.asarray(steps, np.float64), np.asarray(values, np.float64)
    used = (steps >= start) & (steps <= end) & (steps > 0) & (values > 0) & np.isfinite(values)
    if used.sum() < 3:
        return None
    x, y = np.log(steps[used]), np.log(values[used])
    exponent, log_a = np.polyfit(x, y, 1)
    spread = float(np.sqrt(np.mean((y - (log_a + exponent * x)) ** 2)))
    return PowerLaw(float(log_a), float(exponent), spread)


def departure(steps, values, start: float, end: float, tolerance: float, patience: int = 2) -> float | None:
    """The first step after `end` from which `values` stay above the power law fitted on [start, end] (module doc), or
    None: no departure, or too few points to fit."""
    steps, values = np.asarray(steps, np.float64), np.asarray(values, np.float64)
    law = fit_power_law(steps, values, start, end)
    if law is None:
        return None
    later = np.flatnonzero(steps > end)
    threshold = max(np.log1p(tolerance), 3.0 * law.spread)
    with np.errstate(divide="ignore", invalid="ignore"):
        above = np.log(values[later]) - (law.log_a + law.exponent * np.log(steps[later])) > threshold
    for i in range(len(later)):
        run = above[i: i + patience]
        if run.all() and (len(run) == patience or i + len(run) == len(later)):
            return float(steps[later[i]])
    return None


class Turn(NamedTuple):
    step: float  # the step of the golden metric's minimum
    golden_min: float
    golden_final: float
    rise: float  # golden_final - golden_min (>= 0)
    proxy_change: float  # proxy_final - proxy at the golden minimum (< 0: the proxy kept falling)
    turned: bool  # rise > tolerance * golden_min while the proxy fell


def turn(steps, proxy, golden, tolerance: float) -> Turn:
    """Whether the proxy-golden curve turns (module doc): the golden metric's minimum, its rise after it by the end, and
    what the proxy did meanwhile."""
    steps, proxy, golden = (np.asarray(a, np.float64) for a in (steps, proxy, golden))
    lowest = int(np.nanargmin(golden))
    rise = float(golden[-1] - golden[lowest])
    proxy_change = float(proxy[-1] - proxy[lowest])
    return Turn(float(steps[lowest]), float(golden[lowest]), float(golden[-1]), rise, proxy_change,
                bool(rise > tolerance * golden[lowest] and proxy_change < 0))
