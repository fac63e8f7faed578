"""Running a plan into its store: in-process (local) or as Ray tasks, one compiled call per chunk of a compile group."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import pandas as pd

from lab.experiment import sizes
from lab.experiment.config import ConfigError
from lab.experiment.run import progress_bar
from lab.experiment.sweep.calls import CellResult, chunks, train_cells
from lab.experiment.sweep.plan import Plan
from lab.experiment.io import exclusive, recover
from lab.experiment.divergence import Diverged, describe
from lab.experiment.execute import setup
from lab.experiment.sweep.store import clear_leftovers, diverged_cells, finished, open_store, read_results, write_cell


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray needs Ray: pip install 'lewis-lab[ray]'") from None
    return ray


def _run_local(calls, keys, write, progress: bool) -> None:
    for g, (cells, size) in enumerate(calls):
        runs = sum(c.config.train.seeds for c in cells)
        bar, on_block = progress_bar(cells[0].config.train.n_evals + 1, f"call {g + 1}/{len(calls)}: {len(cells)} cells, {runs} runs",
                                     progress)
        try:
            for result in train_cells(cells, keys, size, on_block=on_block):
                write(result)
        finally:
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
              log: Callable[[str], None] = print, warn: Callable[[str], None] | None = None,
              size_check: bool = True) -> pd.DataFrame:
    """Train every unfinished cell of the plan into DIR and return the whole table.

    backend: `local` (in-process, one compiled call per group, sharded over the local devices)
    or `ray` (each call a Ray task; `ray_address` of an existing cluster, else a local Ray).
    chunk: at most this many cells per compiled call (0: a whole group per call).
    size_check: refuse, before anything is trained, a call this machine cannot run (lab.experiment.sizes).

    A cell with a run that diverged is marked (lab.experiment.divergence) and the others trained; at the end,
    `Diverged` is raised with the whole table.
    """
    setup()
    if backend not in ("local", "ray"):
        raise ConfigError(f"--backend {backend!r}: allowed values are local, ray")
    if chunk < 0:
        raise ConfigError(f"--chunk {chunk}: must be >= 0 (0: a whole compile group per call)")
    if backend == "ray":
        _import_ray()
    warn = warn or (lambda message: print(f"lab sweep: {message}", file=sys.stderr))
    out = Path(out)
    with exclusive(out):  # before the store is opened (or deleted, with --overwrite), outside the folder it guards
        recover(out)
        open_store(plan, out, overwrite)
        done = finished(plan, out, warn)
        clear_leftovers(plan, out, done)
        log(plan.describe(done))
        todo = {c.index for c in plan.cells} - done
        calls = chunks(plan, todo, chunk)
        if size_check:
            for cells, size in calls:
                try:
                    sizes.check(cells[0].config, size)
                except ConfigError as error:
                    raise ConfigError(f"cell {cells[0].index}: {error}") from None
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
        table = read_results(out)
        diverged = diverged_cells(out)
    if diverged:
        raise Diverged(f"{describe(diverged, 'cell')}; their rows up to there are in {str(out)!r}, the other cells "
                       f"finished", table)
    return table
