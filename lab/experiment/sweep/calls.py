"""Training the cells of one compile group in one compiled call: their seeds and hparams stacked into one set of runs."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from lab.core.hparams import concatenate, hparams_from_config
from lab.core.trainer import seed_keys
from lab.experiment import divergence, results
from lab.experiment.build import make_trainer
from lab.experiment.execute import train_runs, setup
from lab.experiment.sweep.plan import Plan, SweepCell


class CellResult(NamedTuple):
    index: int
    table: pd.DataFrame  # cell, <swept keys>, seed, step, split, metric, value
    senders: Any  # parameters stacked over the cell's seeds `[seeds, P, ...]`, numpy leaves
    receivers: Any
    diverged: dict[int, tuple[int, str]]  # {seed: (step, quantity)} of its runs that diverged (lab.experiment.divergence)
    diverged_at: np.ndarray  # [seeds] the step each diverged at, -1 when it did not


def cell_table(cell: SweepCell, history, steps: np.ndarray, keys: tuple[str, ...]) -> pd.DataFrame:
    """The tidy table of `lab run` with the cell's index and swept values in front."""
    p = cell.config.population
    table = results.tidy(history, steps, cell.seeds, (p.n_senders, p.n_receivers))
    columns = {"cell": np.full(len(table), cell.index, np.int64)}
    columns.update({key: [cell.values[key]] * len(table) for key in keys})
    return pd.concat([pd.DataFrame(columns), table], axis=1)


def train_cells(cells: list[SweepCell], keys: tuple[str, ...], size: int | None = None, on_block=None) -> list[CellResult]:
    """Cells of one compile group in one compiled call: their seeds and hparams stacked into one set of runs."""
    setup()  # a Ray task starts in a process of its own
    trainer = make_trainer(cells[0].config)  # the cells agree on every field the trainer reads
    run_keys = jnp.concatenate([seed_keys(c.config) for c in cells])  # [runs]
    hparams = concatenate([hparams_from_config(c.config, c.config.train.seeds) for c in cells])
    state, history = train_runs(trainer, run_keys, hparams, size, on_block=on_block)
    out, start = [], 0
    for cell in cells:
        runs = slice(start, start + cell.config.train.seeds)
        start = runs.stop
        own = jax.tree.map(lambda a: a[runs], history)
        out.append(CellResult(cell.index, cell_table(cell, own, trainer.eval_steps, keys),
                              jax.tree.map(lambda a: a[runs], state.senders), jax.tree.map(lambda a: a[runs], state.receivers),
                              divergence.diverged(own, cell.seeds), own[divergence.KEY]["step"]))
    return out


def chunks(plan: Plan, todo: set[int], chunk: int = 0) -> list[tuple[list[SweepCell], int]]:
    """(cells, padded number of runs) per compiled call: each group's unfinished cells, `chunk` cells at most."""
    calls = []
    for members in plan.groups:
        cells = [plan.cells[i] for i in members if i in todo]
        step = chunk or len(cells) or 1
        pieces = [cells[i:i + step] for i in range(0, len(cells), step)]
        size = max((sum(c.config.train.seeds for c in p) for p in pieces), default=0)
        calls.extend((piece, size) for piece in pieces)
    return calls
