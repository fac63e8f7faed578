"""`lab sweep`: a plan (grid x configs x seeds in compile groups), a resumable store, local and Ray backends."""

from lab.experiment.sweep.backends import run_sweep
from lab.experiment.sweep.calls import CellResult, chunks, train_cells
from lab.experiment.grid import static_key
from lab.experiment.sweep.plan import Plan, SweepCell, digest, load_plan, make_plan, read_sweep
from lab.experiment.sweep.store import (
    CELLS_DIR,
    MANIFEST,
    METRICS_DIR,
    check_part,
    cell_dir,
    diverged_cells,
    finished,
    manifest,
    open_store,
    part_path,
    read_manifest,
    read_results,
    write_cell,
)

__all__ = [
    "run_sweep", "CellResult", "chunks", "train_cells", "Plan", "SweepCell", "digest", "load_plan", "make_plan", "read_sweep",
    "static_key", "CELLS_DIR", "MANIFEST", "METRICS_DIR", "check_part", "cell_dir", "diverged_cells", "finished", "manifest", "open_store",
    "part_path", "read_manifest", "read_results", "write_cell",
]
