"""`lab sweep`: many configs x seeds, split into compile groups, written to a resumable store.

The plan: cells and compile groups of a sweep file (this module); the store (`store`), training
a compile group in one call (`calls`), the local and Ray backends (`backends`).

A sweep file (YAML, read with the safe loader):

    base:                 # a config, as for `lab run --config` (nested sections or dotted keys)
      game: {n_attributes: 3, n_values: 4}
    grid:                 # dotted key -> list of values; the cells are their product
      train.lr: [0.001, 0.003, 0.01]
      train.entropy_coeff: [0.0, 0.01]
    configs:              # optional explicit variants, each crossed with the grid
      - {agents.cell: gru}
      - {agents.cell: lstm}
    seeds: 4              # seeds per cell: train.seed, train.seed + 1, ...

A *cell* is one config with its seeds: `base`, then `seeds`, then one entry of `configs`, then
one point of the grid (later ones win). Cells that agree on every static field (all but
the continuous fields (lab.core.hparams) and the seed fields) form a *compile group*: one Trainer and one
`jit(vmap(train))` over all their (cell, seed) runs, with the continuous hyperparameters as
`Hparams` arrays. Seed s uses `jax.random.key(s)`, as `lab run` does, so a cell holds the rows
`lab run` writes for its config.

The store, DIR:

    manifest.json                 the plan and the digest of the sweep file (JSON)
    sweep.yaml                    the sweep file as parsed
    metrics/cell-000012.parquet   rows of cell 12: cell, <one column per swept key>, seed, step, split, metric, value
    cells/000012/config.yaml      the resolved config of cell 12 (`lab run --config` reads it)
    cells/000012/checkpoint.npz   final parameters of its seeds (`lab.checkpoint.load`)

`pandas.read_parquet("DIR/metrics")` reads the whole table. The cell is the unit of resume: its
config and checkpoint are written first, its metrics part last, each to a hidden temporary name
then renamed; a cell is finished iff its part reads back. A rerun trains the unfinished cells of
each group in one call and leaves the finished ones alone.

    >>> plan = make_plan({"grid": {"train.lr": [1e-3, 3e-3]}, "seeds": 2})
    >>> len(plan.cells), len(plan.groups), plan.keys
    (2, 1, ('train.lr',))
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from games.fields import shown
from lab.experiment.config import SECTIONS, Config, ConfigError, from_dict, read_yaml_file, to_dict
from lab.experiment.grid import Cell, flat, static_key

SWEEP_KEYS = ("base", "grid", "configs", "seeds")


@dataclass(frozen=True, eq=False)
class SweepCell:
    """One config and its seeds; `values` holds its resolved value of every swept key."""

    index: int
    group: int
    config: Config
    values: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.index:06d}"

    @property
    def seeds(self) -> np.ndarray:
        t = self.config.train
        return np.arange(t.seed, t.seed + t.seeds)

    @property
    def digest(self) -> str:
        """sha256 of the resolved config: what the cell's stored part and checkpoint were trained from."""
        return digest(to_dict(self.config))

    def cell(self, keys: tuple[str, ...]) -> Cell:
        """This cell for the grid runner (lab.experiment.grid), labelled `cell` and its value of each swept key."""
        return Cell({"cell": self.index, **{key: self.values[key] for key in keys}}, self.config)


@dataclass(frozen=True, eq=False)
class Plan:
    cells: tuple[SweepCell, ...]
    groups: tuple[tuple[int, ...], ...]  # cell indices of each compile group
    keys: tuple[str, ...]  # swept keys, one table column each
    group_fields: tuple[str, ...]  # static keys whose values differ between groups
    spec: dict  # the parsed sweep file
    digest: str  # sha256 of the parsed sweep file
    source: str = "<dict>"

    @property
    def n_runs(self) -> int:
        return sum(c.config.train.seeds for c in self.cells)

    def describe(self, done: frozenset[int] = frozenset(), max_groups: int = 20) -> str:
        """The plan as a person reads it: cells, seeds, groups, and what is already finished."""
        seeds = {c.config.train.seeds for c in self.cells}
        per_cell = f" x {seeds.pop()} seeds" if len(seeds) == 1 else ""
        lines = [f"sweep {self.source}: {len(self.cells)} cells{per_cell} = {self.n_runs} runs "
                 f"in {len(self.groups)} compile group{'s' * (len(self.groups) != 1)}"]
        if self.keys:
            counts = [f"{k} ({len({json.dumps(c.values[k]) for c in self.cells})} values)" for k in self.keys]
            lines.append("swept: " + ", ".join(counts))
        for g, members in enumerate(self.groups[:max_groups]):
            first = self.cells[members[0]]
            label = " ".join(f"{k}={flat(first.config)[k]}" for k in self.group_fields)
            runs = sum(self.cells[i].config.train.seeds for i in members)
            finished = sum(i in done for i in members)
            status = "" if not done else f"  [{finished}/{len(members)} finished]"
            lines.append(f"  group {g}: {len(members)} cells, {runs} runs{'  ' + label if label else ''}{status}")
        if len(self.groups) > max_groups:
            lines.append(f"  ... {len(self.groups) - max_groups} more groups")
        if done:
            lines.append(f"finished: {len(done)} of {len(self.cells)} cells; {len(self.cells) - len(done)} to run")
        return "\n".join(lines)


def _fields(section: str) -> list[str]:
    return [f.name for f in dataclasses.fields(getattr(Config(), section))]


def _check_key(key: str, where: str) -> None:
    section, _, name = key.partition(".")
    if section not in SECTIONS:
        raise ConfigError(f"{where}: unknown config key {shown(key)}; keys are section.field with section in {', '.join(SECTIONS)}")
    if name not in _fields(section):
        raise ConfigError(f"{where}: unknown config key {shown(key)}; allowed in {section}: {', '.join(_fields(section))}")


def _dotted(tree: Any, where: str) -> dict[str, Any]:
    """A config given as nested sections and/or dotted keys, as {dotted key: value}."""
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{where}: expected a mapping of config fields, got {shown(tree)}")
    dotted = {}
    for key, value in tree.items():
        key = str(key)
        if key in SECTIONS and (isinstance(value, dict) or value is None):
            dotted.update({f"{key}.{name}": v for name, v in (value or {}).items()})
        else:
            dotted[key] = value
    for key in dotted:
        _check_key(key, where)
    return dotted


def _config(dotted: dict[str, Any], where: str) -> Config:
    tree: dict[str, dict] = {}
    for key, value in dotted.items():
        section, name = key.split(".", 1)
        tree.setdefault(section, {})[name] = value
    try:
        return from_dict(tree)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def _describe_values(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={shown(v)}" for k, v in values.items())


def digest(spec: Any) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def make_plan(spec: Any, source: str = "<dict>") -> Plan:
    """Cells and compile groups of a parsed sweep file; every cell's config validated."""
    if not isinstance(spec, dict):
        raise ConfigError(f"expected a mapping with keys {', '.join(SWEEP_KEYS)}, got {shown(spec)}")
    unknown = [str(k) for k in spec if k not in SWEEP_KEYS]
    if unknown:
        raise ConfigError(f"unknown key {shown(unknown[0])}; allowed: {', '.join(SWEEP_KEYS)}")
    base = _dotted(spec.get("base"), "base")
    seeds = spec.get("seeds")
    if seeds is not None:
        if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
            raise ConfigError(f"seeds={shown(seeds)}: expected a positive integer (seeds per cell)")
        base["train.seeds"] = seeds

    grid = spec.get("grid")
    if grid is None:
        grid = {}
    if not isinstance(grid, dict):
        raise ConfigError(f"grid: expected a mapping of dotted keys to lists of values, got {shown(grid)}")
    for key, values in grid.items():
        _check_key(str(key), "grid")
        if not isinstance(values, list):
            raise ConfigError(f"grid {key}: expected a list of values, got {shown(values)}")
        if not values:
            raise ConfigError(f"grid {key}: empty list; give at least one value")
    grid = {str(k): v for k, v in grid.items()}

    if "configs" in spec:
        configs = spec["configs"]
        if not isinstance(configs, list) or not configs:
            raise ConfigError(f"configs: expected a non-empty list of configs, got {shown(configs)}")
        configs = [_dotted(entry, f"configs[{i}]") for i, entry in enumerate(configs)]
    elif grid:
        configs = [{}]
    else:
        raise ConfigError("nothing to sweep: the grid is empty and there are no configs; "
                          "give grid: {key: [values]} and/or configs: [...]")
    for i, entry in enumerate(configs):
        both = sorted(set(entry) & set(grid))
        if both:
            raise ConfigError(f"configs[{i}] sets {both[0]}, which the grid also sweeps; set it in one place")

    keys = tuple(dict.fromkeys([k for entry in configs for k in entry] + list(grid)))
    cells: list[tuple[Config, dict]] = []
    seen: dict[str, int] = {}
    for entry in configs:
        for point in itertools.product(*grid.values()):
            overrides = {**entry, **dict(zip(grid, point))}
            index = len(cells)
            config = _config({**base, **overrides}, f"cell {index} ({_describe_values(overrides)})")
            resolved = json.dumps(to_dict(config), sort_keys=True, default=str)
            if resolved in seen:
                raise ConfigError(f"cells {seen[resolved]} and {index} have the same config "
                                  f"({_describe_values(overrides)}); remove the duplicate")
            seen[resolved] = index
            fields = flat(config)
            cells.append((config, {k: fields[k] for k in keys}))

    group_of: dict[str, int] = {}
    members: list[list[int]] = []
    plan_cells = []
    for index, (config, values) in enumerate(cells):
        g = group_of.setdefault(static_key(config), len(group_of))
        if g == len(members):
            members.append([])
        members[g].append(index)
        plan_cells.append(SweepCell(index, g, config, values))
    statics = [json.loads(k) for k in group_of]
    group_fields = tuple(k for k in statics[0] if len({json.dumps(s[k]) for s in statics}) > 1)
    return Plan(tuple(plan_cells), tuple(map(tuple, members)), keys, group_fields, spec, digest(spec), source)


def read_sweep(path: str | Path) -> Any:
    return read_yaml_file(path, "sweep file")


def load_plan(path: str | Path) -> Plan:
    """The plan of a sweep file; errors are one line naming the file and the bad entry."""
    spec = read_sweep(path)
    try:
        return make_plan(spec, source=str(path))
    except ConfigError as error:
        raise ConfigError(f"sweep file {str(path)!r}: {error}") from None
