"""The sweep's store: a manifest, one parquet part per cell, each cell's config and checkpoint; resumable.

A part carries, in its parquet metadata, the digest of its cell's resolved config and of the cell's
checkpoint: a cell is finished when its part reads back with the digest of the plan's cell and its checkpoint
with the recorded one, so a part written for another config (another sweep file in the same folder) or a
damaged checkpoint is recomputed, never counted.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Callable

import pandas as pd
import yaml

from lab.experiment import checkpoint, io, results
from lab.experiment.config import ConfigError, to_dict
from lab.experiment.io import write_text
from lab.experiment.sweep.calls import CellResult
from lab.experiment.sweep.plan import Plan, SweepCell, static_key

FORMAT = 2  # 2: parts carry their cell's config digest and their checkpoint's
MANIFEST = "manifest.json"
SWEEP_COPY = "sweep.yaml"
METRICS_DIR = "metrics"
CELLS_DIR = "cells"
CONFIG_FILE = "config.yaml"
KIND = "sweep"


def part_path(out: Path, cell: SweepCell) -> Path:
    return out / METRICS_DIR / f"cell-{cell.name}.parquet"


def cell_dir(out: Path, cell: SweepCell) -> Path:
    return out / CELLS_DIR / cell.name


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


def file_digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def check_part(out: Path, cell: SweepCell) -> str | None:
    """None when the cell is finished, else what is wrong with it ('missing' when not started)."""
    import pyarrow.parquet as pq

    path = part_path(out, cell)
    if not path.exists():
        return "missing"
    try:
        table = pq.read_table(path, columns=["cell", "seed"]).to_pandas()
        written = results.read_metadata(path)
    except Exception as error:  # pyarrow raises several types for a damaged file
        return f"{path.name} is not readable parquet ({type(error).__name__})"
    if written.get("cell_digest") != cell.digest:
        return f"{path.name} holds the rows of another config than cell {cell.index}'s"
    if len(table) == 0 or set(table["cell"]) != {cell.index} or set(table["seed"]) != set(cell.seeds.tolist()):
        return f"{path.name} does not hold the rows of cell {cell.index}"
    saved = cell_dir(out, cell) / checkpoint.FILENAME
    if not saved.is_file():
        return f"cell {cell.index} has no {checkpoint.FILENAME}"
    if file_digest(saved) != written.get("checkpoint_sha256"):
        return f"the {checkpoint.FILENAME} of cell {cell.index} is damaged (not the file its part recorded)"
    return None


def open_store(plan: Plan, out: Path, overwrite: bool) -> None:
    """Create DIR for this plan, or check that the existing one holds this sweep file's results.

    The caller holds `io.exclusive(out)`; `--overwrite` deletes only a folder the lab wrote (io.check_own)."""
    io.check_destination(out)
    if out.is_dir() and any(out.iterdir()):
        if overwrite:
            io.check_own(out)
            io.remove(out)
        elif (own := io.marker(out)) is None:
            raise ConfigError(f"--out {str(out)!r} exists and was not written by the lab (no {io.MARKER} in it); "
                              f"choose another --out")
        elif own["kind"] != KIND or not (out / MANIFEST).is_file():
            raise ConfigError(f"--out {str(out)!r} holds a lab {own['kind']}, not a sweep; pass --overwrite to replace "
                              f"it, or choose another --out")
        elif read_manifest(out)["digest"] != plan.digest:
            raise ConfigError(f"--out {str(out)!r} holds the results of a different sweep file; "
                              f"pass --overwrite to replace them, or choose another --out")
    (out / METRICS_DIR).mkdir(parents=True, exist_ok=True)
    (out / CELLS_DIR).mkdir(exist_ok=True)
    if not (out / MANIFEST).is_file():
        write_text(out / SWEEP_COPY, yaml.safe_dump(plan.spec, sort_keys=False))
        write_text(out / MANIFEST, json.dumps(manifest(plan), indent=1, default=str))
    if io.marker(out) is None:
        io.mark(out, KIND, [MANIFEST, SWEEP_COPY, METRICS_DIR, CELLS_DIR])


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


def clear_leftovers(plan: Plan, out: Path, done: frozenset[int]) -> None:
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
    write_text(folder / CONFIG_FILE, yaml.safe_dump(to_dict(cell.config), sort_keys=False))
    checkpoint.save(folder / checkpoint.FILENAME, result.senders, result.receivers, cell.seeds,
                    extra={"diverged_at": result.diverged_at})
    results.write_parquet(result.table, part_path(out, cell),
                          dict(cell_digest=cell.digest, checkpoint_sha256=file_digest(folder / checkpoint.FILENAME),
                               diverged=result.diverged))


def diverged_cells(out: Path) -> dict[int, tuple[int, str]]:
    """{cell: (step, quantity)} of the stored cells with a run that diverged, its first, from the parts' metadata."""
    found = {}
    for path in sorted((Path(out) / METRICS_DIR).glob("cell-*.parquet")):
        runs = results.read_metadata(path).get("diverged")
        if runs:
            found[int(path.stem.split("-")[1])] = tuple(min(runs.values()))
    return found


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
    missing = [column for column in ("cell", *results.COLUMNS) if column not in table.columns]
    if missing:
        raise ConfigError(f"{str(metrics)!r}: the parts have no column {missing[0]!r}; run the same `lab sweep` command "
                          f"again to recompute them")
    return table.sort_values("cell", kind="stable").reset_index(drop=True)
