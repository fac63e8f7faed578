"""Training the cells of one compile group in one compiled call (lab.experiment.grid.train_group), for the store."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from lab.experiment.execute import setup
from lab.experiment.grid import train_group
from lab.experiment.sweep.plan import Plan, SweepCell


class CellResult(NamedTuple):
    index: int
    table: pd.DataFrame  # cell, <swept keys>, seed, step, split, metric, value
    senders: Any  # parameters stacked over the cell's seeds `[seeds, P, ...]`, numpy leaves
    receivers: Any
    diverged: dict[int, tuple[int, str]]  # {seed: (step, quantity)} of its runs that diverged (lab.experiment.divergence)
    diverged_at: np.ndarray  # [seeds] the step each diverged at, -1 when it did not


def train_cells(cells: list[SweepCell], keys: tuple[str, ...], size: int | None = None, on_block=None) -> list[CellResult]:
    """Cells of one compile group in one compiled call: their seeds and hparams stacked into one set of runs."""
    setup()  # a Ray task starts in a process of its own
    runs = train_group([cell.cell(keys) for cell in cells], size, on_block)
    return [CellResult(cell.index, run.table, run.state.senders, run.state.receivers, run.diverged, run.diverged_at)
            for cell, run in zip(cells, runs)]


def chunks(plan: Plan, todo: set[int], chunk: int = 0) -> list[tuple[list[SweepCell], int]]:
    """(cells, padded population) per compiled call: each group's unfinished cells, `chunk` cells at most."""
    calls = []
    for members in plan.groups:
        cells = [plan.cells[i] for i in members if i in todo]
        step = chunk or len(cells) or 1
        pieces = [cells[i:i + step] for i in range(0, len(cells), step)]
        size = max((sum(c.config.train.seeds for c in p) for p in pieces), default=0)
        calls.extend((piece, size) for piece in pieces)
    return calls
