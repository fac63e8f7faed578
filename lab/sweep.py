"""`lab sweep`: many configs x seeds, split into compile groups, written to a resumable store.

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
`lab.train.CONTINUOUS` and the seed fields) form a *compile group*: one Trainer and one
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

import contextlib
import dataclasses
import hashlib
import itertools
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import yaml

from lab import checkpoint, results
from lab.config import SECTIONS, Config, ConfigError, from_dict, to_dict
from lab.train import CONTINUOUS, Trainer, hparams_from_config, seed_keys

SWEEP_KEYS = ("base", "grid", "configs", "seeds")
# which runs a cell holds, not how they run: cells differing only here share a compile group
SEED_FIELDS = frozenset({"train.seed", "train.seeds"})
FORMAT = 1
MANIFEST = "manifest.json"
SWEEP_COPY = "sweep.yaml"
METRICS_DIR = "metrics"
CELLS_DIR = "cells"
CONFIG_FILE = "config.yaml"
LOCK_FILE = ".lock"


# -- the plan ---------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Cell:
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


@dataclass(frozen=True, eq=False)
class Plan:
    cells: tuple[Cell, ...]
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
            label = " ".join(f"{k}={_flat(first.config)[k]}" for k in self.group_fields)
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


def _flat(config: Config) -> dict[str, Any]:
    return {f"{s}.{k}": v for s, fields in to_dict(config).items() for k, v in fields.items()}


def static_key(config: Config) -> str:
    """What must agree for two configs to share one compiled call: all but continuous and seed fields."""
    static = {k: v for k, v in _flat(config).items() if k not in CONTINUOUS | SEED_FIELDS}
    return json.dumps(static, sort_keys=True, default=str)


def _check_key(key: str, where: str) -> None:
    section, _, name = key.partition(".")
    if section not in SECTIONS:
        raise ConfigError(f"{where}: unknown config key {key!r}; keys are section.field with section in {', '.join(SECTIONS)}")
    if name not in _fields(section):
        raise ConfigError(f"{where}: unknown config key {key!r}; allowed in {section}: {', '.join(_fields(section))}")


def _dotted(tree: Any, where: str) -> dict[str, Any]:
    """A config given as nested sections and/or dotted keys, as {dotted key: value}."""
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{where}: expected a mapping of config fields, got {tree!r}")
    flat = {}
    for key, value in tree.items():
        key = str(key)
        if key in SECTIONS and (isinstance(value, dict) or value is None):
            flat.update({f"{key}.{name}": v for name, v in (value or {}).items()})
        else:
            flat[key] = value
    for key in flat:
        _check_key(key, where)
    return flat


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
    return ", ".join(f"{k}={v!r}" for k, v in values.items())


def digest(spec: Any) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def make_plan(spec: Any, source: str = "<dict>") -> Plan:
    """Cells and compile groups of a parsed sweep file; every cell's config validated."""
    if not isinstance(spec, dict):
        raise ConfigError(f"expected a mapping with keys {', '.join(SWEEP_KEYS)}, got {spec!r}")
    unknown = [str(k) for k in spec if k not in SWEEP_KEYS]
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}; allowed: {', '.join(SWEEP_KEYS)}")
    base = _dotted(spec.get("base"), "base")
    seeds = spec.get("seeds")
    if seeds is not None:
        if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
            raise ConfigError(f"seeds={seeds!r}: expected a positive integer (seeds per cell)")
        base["train.seeds"] = seeds

    grid = spec.get("grid")
    if grid is None:
        grid = {}
    if not isinstance(grid, dict):
        raise ConfigError(f"grid: expected a mapping of dotted keys to lists of values, got {grid!r}")
    for key, values in grid.items():
        _check_key(str(key), "grid")
        if not isinstance(values, list):
            raise ConfigError(f"grid {key}: expected a list of values, got {values!r}")
        if not values:
            raise ConfigError(f"grid {key}: empty list; give at least one value")
    grid = {str(k): v for k, v in grid.items()}

    if "configs" in spec:
        configs = spec["configs"]
        if not isinstance(configs, list) or not configs:
            raise ConfigError(f"configs: expected a non-empty list of configs, got {configs!r}")
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
            flat = _flat(config)
            cells.append((config, {k: flat[k] for k in keys}))

    group_of: dict[str, int] = {}
    members: list[list[int]] = []
    plan_cells = []
    for index, (config, values) in enumerate(cells):
        g = group_of.setdefault(static_key(config), len(group_of))
        if g == len(members):
            members.append([])
        members[g].append(index)
        plan_cells.append(Cell(index, g, config, values))
    statics = [json.loads(k) for k in group_of]
    group_fields = tuple(k for k in statics[0] if len({json.dumps(s[k]) for s in statics}) > 1)
    return Plan(tuple(plan_cells), tuple(map(tuple, members)), keys, group_fields, spec, digest(spec), source)


def read_sweep(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file {str(path)!r} does not exist")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"sweep file {str(path)!r} is not valid YAML: {problem}{where}") from None


def load_plan(path: str | Path) -> Plan:
    """The plan of a sweep file; errors are one line naming the file and the bad entry."""
    spec = read_sweep(path)
    try:
        return make_plan(spec, source=str(path))
    except ConfigError as error:
        raise ConfigError(f"sweep file {str(path)!r}: {error}") from None


# -- training one compiled call --------------------------------------------------------------

class CellResult(NamedTuple):
    index: int
    table: pd.DataFrame  # cell, <swept keys>, seed, step, split, metric, value
    sender: Any  # parameters stacked over the cell's seeds, numpy leaves
    receiver: Any


def population_call(fn: Callable, keys: jax.Array, hparams, size: int | None = None, devices=None):
    """`jit(vmap(fn))(keys, hparams)` as numpy, padded to `size` runs and sharded over several devices.

    Padding repeats the last run and is dropped from the result, so a chunk smaller than the
    others reuses their compiled call and the population splits evenly over the devices.
    """
    devices = jax.local_devices() if devices is None else list(devices)
    n = keys.shape[0]
    size = max(size or n, n)
    size += -size % len(devices)
    if size > n:
        take = jnp.concatenate([jnp.arange(n), jnp.full(size - n, n - 1)])
        keys, hparams = keys[take], jax.tree.map(lambda a: a[take], hparams)
    call = jax.jit(jax.vmap(fn))
    if len(devices) > 1:
        mesh = jax.sharding.Mesh(np.array(devices), ("population",))
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("population"))
        keys, hparams = jax.device_put((keys, hparams), sharding)
        call = jax.jit(jax.vmap(fn), out_shardings=sharding)
    out = jax.device_get(call(keys, hparams))
    return jax.tree.map(lambda a: np.asarray(a)[:n], out)


def cell_table(cell: Cell, history, steps: np.ndarray, keys: tuple[str, ...]) -> pd.DataFrame:
    """The tidy table of `lab run` with the cell's index and swept values in front."""
    table = results.tidy(history, steps, cell.seeds)
    columns = {"cell": np.full(len(table), cell.index, np.int64)}
    columns.update({key: [cell.values[key]] * len(table) for key in keys})
    return pd.concat([pd.DataFrame(columns), table], axis=1)


def train_cells(cells: list[Cell], keys: tuple[str, ...], size: int | None = None, on_block=None) -> list[CellResult]:
    """Cells of one compile group in one compiled call: their seeds and hparams stacked into a population."""
    trainer = Trainer(cells[0].config)  # the cells agree on every field the trainer reads
    trainer.on_block = on_block
    run_keys = jnp.concatenate([seed_keys(c.config) for c in cells])  # [runs]
    hparams = jax.tree.map(lambda *h: jnp.concatenate(h), *[hparams_from_config(c.config, c.config.train.seeds) for c in cells])
    state, history = population_call(trainer.train, run_keys, hparams, size)
    out, start = [], 0
    for cell in cells:
        runs = slice(start, start + cell.config.train.seeds)
        start = runs.stop
        out.append(CellResult(cell.index, cell_table(cell, jax.tree.map(lambda a: a[runs], history), trainer.eval_steps, keys),
                              jax.tree.map(lambda a: a[runs], state.sender), jax.tree.map(lambda a: a[runs], state.receiver)))
    return out


def chunks(plan: Plan, todo: set[int], chunk: int = 0) -> list[tuple[list[Cell], int]]:
    """(cells, padded population) per compiled call: each group's unfinished cells, `chunk` cells at most."""
    calls = []
    for members in plan.groups:
        cells = [plan.cells[i] for i in members if i in todo]
        step = chunk or len(cells) or 1
        pieces = [cells[i:i + step] for i in range(0, len(cells), step)]
        size = max((sum(c.config.train.seeds for c in p) for p in pieces), default=0)
        calls.extend((piece, size) for piece in pieces)
    return calls


# -- the store ---------------------------------------------------------------------------------

def part_path(out: Path, cell: Cell) -> Path:
    return out / METRICS_DIR / f"cell-{cell.name}.parquet"


def cell_dir(out: Path, cell: Cell) -> Path:
    return out / CELLS_DIR / cell.name


def _write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def manifest(plan: Plan) -> dict:
    return dict(
        format=FORMAT, digest=plan.digest, sweep_file=plan.source, keys=list(plan.keys),
        groups=[dict(group=g, cells=list(m), static=json.loads(static_key(plan.cells[m[0]].config))) for g, m in enumerate(plan.groups)],
        cells=[dict(cell=c.index, group=c.group, seeds=c.seeds.tolist(), values=c.values) for c in plan.cells],
    )


def read_manifest(out: str | Path) -> dict:
    path = Path(out) / MANIFEST
    if not path.is_file():
        raise ConfigError(f"{str(out)!r} is not a sweep directory: no {MANIFEST}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{str(path)!r} is not valid JSON ({error.msg if hasattr(error, 'msg') else error}); "
                          f"rerun with --overwrite") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or "digest" not in data:
        raise ConfigError(f"{str(path)!r} is not a manifest this lab writes (format {FORMAT}); rerun with --overwrite")
    return data


def check_part(out: Path, cell: Cell) -> str | None:
    """None when the cell is finished, else what is wrong with it ('missing' when not started)."""
    import pyarrow.parquet as pq

    path = part_path(out, cell)
    if not path.exists():
        return "missing"
    try:
        table = pq.read_table(path, columns=["cell", "seed"]).to_pandas()
    except Exception as error:  # pyarrow raises several types for a damaged file
        return f"{path.name} is not readable parquet ({type(error).__name__})"
    if len(table) == 0 or set(table["cell"]) != {cell.index} or set(table["seed"]) != set(cell.seeds.tolist()):
        return f"{path.name} does not hold the rows of cell {cell.index}"
    if not (cell_dir(out, cell) / checkpoint.FILENAME).is_file():
        return f"cell {cell.index} has no {checkpoint.FILENAME}"
    return None


@contextlib.contextmanager
def _lock(out: Path):
    """One writer per store: a second `lab sweep` on the same DIR is refused, not interleaved."""
    import fcntl

    with open(out / LOCK_FILE, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another lab sweep is writing to {str(out)!r}; wait for it or choose another --out") from None
        yield


def open_store(plan: Plan, out: Path, overwrite: bool) -> None:
    """Create DIR for this plan, or check that the existing one holds this sweep file's results."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file, not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MANIFEST).is_file():
            if not overwrite:
                raise ConfigError(f"--out {str(out)!r} exists and is not a sweep directory (no {MANIFEST}); "
                                  f"pass --overwrite to replace it")
            shutil.rmtree(out)
        elif overwrite:
            shutil.rmtree(out)
        elif read_manifest(out)["digest"] != plan.digest:
            raise ConfigError(f"--out {str(out)!r} holds the results of a different sweep file; "
                              f"pass --overwrite to replace them, or choose another --out")
    (out / METRICS_DIR).mkdir(parents=True, exist_ok=True)
    (out / CELLS_DIR).mkdir(exist_ok=True)
    if not (out / MANIFEST).is_file():
        _write_text(out / SWEEP_COPY, yaml.safe_dump(plan.spec, sort_keys=False))
        _write_text(out / MANIFEST, json.dumps(manifest(plan), indent=1, default=str))


def finished(plan: Plan, out: Path, warn: Callable[[str], None] | None = None, remove: bool = True) -> frozenset[int]:
    """Finished cells; a damaged part is reported through `warn`, removed, and its cell counted as unfinished."""
    done = set()
    for cell in plan.cells:
        problem = check_part(out, cell)
        if problem is None:
            done.add(cell.index)
        elif problem != "missing":
            if warn:
                warn(f"cell {cell.index}: {problem}; recomputing it")
            if remove:
                part_path(out, cell).unlink(missing_ok=True)
    return frozenset(done)


def _clear_leftovers(plan: Plan, out: Path, done: frozenset[int]) -> None:
    """Temporary files of an interrupted write, and the half-written folders of unfinished cells."""
    for tmp in (out / METRICS_DIR).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    for cell in plan.cells:
        if cell.index not in done and cell_dir(out, cell).exists():
            shutil.rmtree(cell_dir(out, cell))


def write_cell(out: Path, plan: Plan, result: CellResult) -> None:
    """Config and checkpoint first, the metrics part last: the part marks the cell finished."""
    cell = plan.cells[result.index]
    folder = cell_dir(out, cell)
    folder.mkdir(parents=True, exist_ok=True)
    _write_text(folder / CONFIG_FILE, yaml.safe_dump(to_dict(cell.config), sort_keys=False))
    checkpoint.save(folder / checkpoint.FILENAME, result.sender, result.receiver, cell.seeds)
    results.write_parquet(result.table, part_path(out, cell))


def read_results(out: str | Path) -> pd.DataFrame:
    """The sweep's tidy table: every finished cell's rows, ordered by cell."""
    import pyarrow.parquet as pq

    metrics = Path(out) / METRICS_DIR
    parts = sorted(metrics.glob("cell-*.parquet")) if metrics.is_dir() else []
    if not parts:
        raise ConfigError(f"{str(out)!r} has no finished cells under {METRICS_DIR}/; run `lab sweep` into it first")
    try:
        table = pd.read_parquet(metrics)
    except Exception:  # name the damaged part rather than pyarrow's dataset error
        for part in parts:
            try:
                pq.read_table(part)
            except Exception as error:
                raise ConfigError(f"{str(part)!r} is not readable parquet ({type(error).__name__}); "
                                  f"run the same `lab sweep` command again to recompute that cell") from None
        raise
    return table.sort_values("cell", kind="stable").reset_index(drop=True)


# -- backends ------------------------------------------------------------------------------

def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray needs Ray: pip install 'lewis-lab[ray]'") from None
    return ray


def _run_local(calls, keys, write, progress: bool) -> None:
    from lab.run import Progress

    for g, (cells, size) in enumerate(calls):
        bar = None
        if progress:
            runs = sum(c.config.train.seeds for c in cells)
            bar = Progress(cells[0].config.train.steps // cells[0].config.train.eval_every,
                           f"call {g + 1}/{len(calls)}: {len(cells)} cells, {runs} runs")
        try:
            for result in train_cells(cells, keys, size, on_block=bar):
                write(result)
        finally:
            if bar:
                bar.close()


def _run_ray(calls, keys, write, address: str | None, gpus: float) -> None:
    ray = _import_ray()
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, **({} if address else dict(include_dashboard=False)), log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1, num_gpus=gpus)(train_cells)
        pending = [task.remote(cells, keys, size) for cells, size in calls]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for result in ray.get(ready[0]):
                write(result)
    finally:
        if started:
            ray.shutdown()


def run_sweep(plan: Plan, out: str | Path, *, backend: str = "local", overwrite: bool = False, progress: bool = True,
              chunk: int = 0, ray_address: str | None = None, ray_gpus: float = 0.0,
              log: Callable[[str], None] = print, warn: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Train every unfinished cell of the plan into DIR and return the whole table.

    backend: `local` (in-process, one compiled call per group, sharded over the local devices)
    or `ray` (each call a Ray task; `ray_address` of an existing cluster, else a local Ray).
    chunk: at most this many cells per compiled call (0: a whole group per call).
    """
    if backend not in ("local", "ray"):
        raise ConfigError(f"--backend {backend!r}: allowed values are local, ray")
    if chunk < 0:
        raise ConfigError(f"--chunk {chunk}: must be >= 0 (0: a whole compile group per call)")
    if backend == "ray":
        _import_ray()
    warn = warn or (lambda message: print(f"lab sweep: {message}", file=sys.stderr))
    out = Path(out)
    open_store(plan, out, overwrite)
    with _lock(out):
        done = finished(plan, out, warn)
        _clear_leftovers(plan, out, done)
        log(plan.describe(done))
        todo = {c.index for c in plan.cells} - done
        calls = chunks(plan, todo, chunk)
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="sweep", unit="cell", disable=not progress or not todo)

        def write(result: CellResult) -> None:
            write_cell(out, plan, result)
            bar.update(1)

        try:
            if backend == "local":
                _run_local(calls, plan.keys, write, progress)
            else:
                _run_ray(calls, plan.keys, write, ray_address, ray_gpus)
        finally:
            bar.close()
    return read_results(out)
