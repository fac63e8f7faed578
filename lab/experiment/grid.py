"""A labelled grid of runs (conditions x continuous values x seeds) trained in compile groups into one tidy table.

The one way the lab trains many configs: `lab sweep` (each of its cells) and every study. A *cell* is
one config with its seeds and its labels (the columns its rows carry in front of the tidy table:
`condition`, a swept value, ...). Cells that agree on every static field (all but the continuous
fields of lab.core.hparams and the seed fields) form a *compile group*: one trainer and one compiled
call (lab.experiment.execute.train_runs) over all their (cell, seed) runs, their continuous
values stacked as `Hparams`. Seed s is `jax.random.key(s)`, so a cell's rows are those `lab run`
writes for its config.

    >>> from lab.experiment.config import load
    >>> base = load(overrides=["train.steps=20", "train.eval_every=10", "train.seeds=2"])
    >>> cells = grid({"plain": base}, {"train.lr": [1e-3, 3e-3]})
    >>> [c.labels for c in cells], len(compile_groups(cells))
    ([{'condition': 'plain', 'train.lr': 0.001}, {'condition': 'plain', 'train.lr': 0.003}], 1)
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from lab.core.hparams import concatenate, continuous_keys, hparams_from_config
from lab.core.trainer import Trainer, seed_keys
from lab.experiment import divergence, results
from lab.experiment.build import make_trainer
from lab.experiment.config import Config, ConfigError, from_dict, to_dict
from lab.experiment.execute import train_runs
from lab.experiment.run import progress_bar

# which runs a cell holds, not how they run: cells differing only here share a compile group
SEED_FIELDS = frozenset({"train.seed", "train.seeds"})


@dataclass(frozen=True, eq=False)
class Cell:
    """One config, its seeds (`train.seed`, ... `+ train.seeds - 1`) and its labels; `agents`, when given, are the runs'
    starting parameters `(senders [seeds, P, ...], receivers [seeds, Q, ...])` (fine-tuning), else fresh ones."""

    labels: dict[str, Any]
    config: Config
    agents: Any = None

    @property
    def seeds(self) -> np.ndarray:
        t = self.config.train
        return np.arange(t.seed, t.seed + t.seeds)


def flat(config: Config) -> dict[str, Any]:
    """`{section.field: value}` of a config."""
    return {f"{s}.{k}": v for s, fields in to_dict(config).items() for k, v in fields.items()}


def with_fields(config: Config, values: dict[str, Any]) -> Config:
    """The config with some dotted fields replaced, validated."""
    tree = to_dict(config)
    for key, value in values.items():
        section, _, name = key.partition(".")
        if name not in tree.get(section, {}):
            raise ConfigError(f"unknown config key {key!r}")
        tree[section][name] = value
    return from_dict(tree)


def static_key(config: Config) -> str:
    """What must agree for two configs to share one compiled call: all but continuous and seed fields."""
    static = {k: v for k, v in flat(config).items() if k not in continuous_keys(config) | SEED_FIELDS}
    return json.dumps(static, sort_keys=True, default=str)


def grid(conditions: dict[str, Config], values: dict[str, list] | None = None, label: str = "condition") -> list[Cell]:
    """Every condition crossed with every point of `values` (dotted key -> list), labelled `{label: name, key: value}`."""
    values = values or {}
    cells = []
    for name, config in conditions.items():
        for point in itertools.product(*values.values()):
            chosen = dict(zip(values, point))
            cells.append(Cell({label: name, **chosen}, with_fields(config, chosen) if chosen else config))
    return cells


def compile_groups(cells: list[Cell]) -> list[list[int]]:
    """Indices of the cells of each compile group, in order of first appearance."""
    groups: dict[tuple, list[int]] = {}
    for i, cell in enumerate(cells):
        groups.setdefault((static_key(cell.config), cell.agents is None), []).append(i)
    return list(groups.values())


class CellRun(NamedTuple):
    """What training one cell left: its rows, its runs' final state (numpy, leading axis its seeds), its trainer, and
    which of its runs diverged (lab.experiment.divergence: their rows end there)."""

    cell: Cell
    table: Any  # pandas: labels, seed, step, split, metric, value (+ sender, receiver when P x Q > 1)
    state: Any  # TrainState [seeds, ...]
    trainer: Trainer
    runs: slice  # its runs' positions in its compiled call
    diverged: dict[int, tuple[int, str]]  # {seed: (step, quantity)} of its runs that diverged
    diverged_at: np.ndarray  # [seeds] the step each diverged at, -1 when it did not


def cell_table(cell: Cell, history, steps: np.ndarray):
    """The tidy table of `lab run` with the cell's labels in front."""
    p = cell.config.population
    table = results.tidy(history, steps, cell.seeds, (p.n_senders, p.n_receivers))
    labels = pd.DataFrame({key: [value] * len(table) for key, value in cell.labels.items()}, index=table.index)
    return pd.concat([labels, table], axis=1)


def train_group(cells: list[Cell], size: int | None = None, on_block: Callable | None = None) -> list[CellRun]:
    """The cells of one compile group in one compiled call, their seeds and hparams stacked into one set of runs.

    `size` pads the runs (lab.experiment.execute.layout); `on_block(i, state, metrics)` sees the whole call's runs.
    """
    trainer = make_trainer(cells[0].config)  # the cells agree on every field the trainer reads
    keys = jnp.concatenate([seed_keys(c.config) for c in cells])  # [runs]
    hparams = concatenate([hparams_from_config(c.config, c.config.train.seeds) for c in cells])
    agents = None
    if cells[0].agents is not None:
        agents = jax.tree.map(lambda *leaves: np.concatenate([np.asarray(a) for a in leaves]), *[c.agents for c in cells])
    state, history = train_runs(trainer, keys, hparams, size, on_block=on_block, agents=agents)
    out, start = [], 0
    for cell in cells:
        runs = slice(start, start + cell.config.train.seeds)
        start = runs.stop
        own = jax.tree.map(lambda a: a[runs], history)
        out.append(CellRun(cell, cell_table(cell, own, trainer.eval_steps), jax.tree.map(lambda a: a[runs], state), trainer,
                           runs, divergence.diverged(own, cell.seeds), own[divergence.KEY]["step"]))
    return out


class Grid(NamedTuple):
    table: Any  # pandas, every cell's rows: labels, seed, step, split, metric, value
    runs: list[CellRun]  # in the order of the cells
    groups: list[list[int]]  # the cells of each compiled call
    watchers: list  # what `watch` returned for each call, in the order of `groups`
    seconds: list[float]  # wall time of each call


def train_grid(cells: list[Cell], progress: bool = True, watch: Callable | None = None, name: str = "") -> Grid:
    """Train every cell, one compiled call per compile group: the labelled tidy table and each cell's final state.

    `watch(cells)` (optional) is called before each call and returns that call's `on_block(i, state, metrics)`
    (e.g. lab.experiment.selection.Snapshots); the progress bar advances beside it.
    """
    groups = compile_groups(cells)
    runs: list[CellRun | None] = [None] * len(cells)
    watchers, seconds = [], []
    for g, members in enumerate(groups):
        group = [cells[i] for i in members]
        n = sum(c.config.train.seeds for c in group)
        labels = ", ".join(dict.fromkeys(str(next(iter(c.labels.values()))) for c in group))
        bar, advance = progress_bar(group[0].config.train.n_evals + 1,
                                    f"{name + ': ' if name else ''}{labels} ({n} runs, call {g + 1}/{len(groups)})", progress)
        watcher = watch(group) if watch is not None else None
        watchers.append(watcher)

        def on_block(index, state, metrics, watcher=watcher):
            if watcher is not None:
                watcher(index, state, metrics)
            advance(index)

        start = time.perf_counter()
        try:
            done = train_group(group, on_block=on_block)
        finally:
            bar.close()
        seconds.append(time.perf_counter() - start)
        for i, run in zip(members, done):
            runs[i] = run
    table = pd.concat([run.table for run in runs], ignore_index=True)
    return Grid(table, runs, groups, watchers, seconds)


def diverged_note(runs: list[CellRun]) -> str:
    """One line naming the cells whose runs diverged, or empty."""
    notes = [f"{', '.join(f'{k}={v}' for k, v in run.cell.labels.items())}: {divergence.describe(run.diverged)}"
             for run in runs if run.diverged]
    return "; ".join(notes)


def stacked_state(runs: list[CellRun], field: str = "senders"):
    """One field of the final states of several cells, concatenated over their runs `[runs, ...]`."""
    return jax.tree.map(lambda *leaves: np.concatenate(leaves), *[getattr(run.state, field) for run in runs])


__all__ = ["Cell", "CellRun", "Grid", "SEED_FIELDS", "cell_table", "compile_groups", "diverged_note", "flat", "grid",
           "stacked_state",
           "static_key", "train_grid", "train_group", "with_fields"]
