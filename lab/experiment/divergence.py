"""Runs whose numbers stop being numbers: found at the evaluations, kept up to there, said where.

The runner checks every run at each evaluation, from what its programs return anyway (no extra transfer, nothing
per step): the mean training loss of the block before, whether every parameter of its senders and of its receivers
is finite (one flag each, packed with the evaluation's metrics) and the evaluation's losses. The first evaluation
at which one is not finite is the run's `diverged_at` step. Its rows up to that evaluation are kept as they are
(non-finite values included) and the later ones dropped (lab.experiment.results.tidy); a call whose every run
has diverged or stopped ends there. `lab run` writes what it has, prints one line naming the step and the quantity
and exits 3; `lab sweep` marks the cell (its part's metadata, its checkpoint's `diverged_at`) and goes on.
"""

from __future__ import annotations

import numpy as np

KEY = "divergence"  # history[KEY] = {"step": [runs], "quantity": [runs]}, -1 where a run stayed finite
QUANTITIES = ("the training loss", "the senders' parameters", "the receivers' parameters", "the evaluation loss")


class Tracker:
    """Each run's first non-finite evaluation and what was not finite there."""

    def __init__(self, n: int):
        self.step = np.full(n, -1, np.int64)
        self.quantity = np.full(n, -1, np.int64)

    @property
    def diverged(self) -> np.ndarray:
        return self.step >= 0

    def update(self, step: int, batch: dict | None, finite: dict, metrics: dict, frozen: np.ndarray | None = None) -> None:
        """At the evaluation of `step`: `batch` the step statistics of the block before it (None at the first),
        `finite` the programs' flags `{senders, receivers}: [runs]`, `metrics` `{split: {metric: [runs, ...]}}`,
        `frozen` the runs early stopping froze for that block (their steps report NaN: no step was taken)."""
        n = len(self.step)
        every = lambda a: np.all(np.isfinite(np.asarray(a, np.float64).reshape(n, -1)), axis=1)  # noqa: E731
        checks = (np.ones(n, bool) if batch is None else every(batch["loss"]) | (False if frozen is None else frozen),
                  np.asarray(finite["senders"], bool), np.asarray(finite["receivers"], bool),
                  np.all([every(values["loss"]) for values in metrics.values() if "loss" in values], axis=0))
        for quantity, ok in enumerate(checks):
            newly = (self.step < 0) & ~ok
            self.step[newly], self.quantity[newly] = step, quantity

    def record(self, n: int | None = None) -> dict[str, np.ndarray]:
        return {"step": self.step[:n].copy(), "quantity": self.quantity[:n].copy()}


def diverged(history: dict, seeds) -> dict[int, tuple[int, str]]:
    """{seed: (step, quantity)} of the runs of `history` that diverged."""
    record = history.get(KEY)
    if record is None:
        return {}
    return {int(seed): (int(step), QUANTITIES[int(quantity)])
            for seed, step, quantity in zip(np.asarray(seeds), record["step"], record["quantity"]) if step >= 0}


def describe(runs: dict[int, tuple[int, str]], what: str = "seed") -> str:
    """One line: the first run to diverge, its step and quantity, and how many others did."""
    first = min(runs, key=lambda run: (runs[run][0], run))
    step, quantity = runs[first]
    verb = "are" if quantity.endswith("parameters") else "is"
    more = f", and {len(runs) - 1} more {what}{'s' * (len(runs) > 2)}" if len(runs) > 1 else ""
    return f"{what} {first} diverged at step {step} ({quantity} {verb} not finite){more}"


class Diverged(RuntimeError):
    """A run or sweep that wrote what it had before its numbers went non-finite (`lab` exits 3)."""

    def __init__(self, message: str, table=None):
        super().__init__(message)
        self.table = table
