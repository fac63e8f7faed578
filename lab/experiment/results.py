"""Tidy results: one row per (seed, step, split, metric), plus `sender`/`receiver` in a population.

Every figure is drawn from such a table. The splits are `train` and `test` (evaluations) and
`batch` (means of the training steps' statistics since the previous evaluation). In a population
with more than one agent on a side, pair metrics (accuracy, loss, l_adapt...) carry both columns,
the sender's own metrics (topsim, l_info, ...) a sender and no receiver, batch statistics neither.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lab.experiment.divergence import KEY
from lab.experiment.io import atomic_path

if TYPE_CHECKING:  # pandas is imported when a table is made: `import lab` starts 0.5 s sooner
    import pandas as pd

COLUMNS = ["seed", "step", "split", "metric", "value"]
AGENT_COLUMNS = ["sender", "receiver"]


def tidy(history: dict, steps: np.ndarray, seeds, population: tuple[int, int] = (1, 1)) -> pd.DataFrame:
    """`history[split][metric]: [n_runs, n_evals (, P (, Q))]` -> a long table.

    Every value is kept as it is, non-finite ones too, but the rows that hold no measurement: the batch split at
    the first evaluation (no steps before it) and after a run stopped early (`train.stop_accuracy`: its steps
    report nothing), and every row of a run after the evaluation at which it diverged (lab.experiment.divergence).
    """
    import pandas as pd
    seeds, steps = np.asarray(seeds), np.asarray(steps)
    agents = tuple(population) != (1, 1)
    record = history.get(KEY)
    diverged_at = np.full(len(seeds), -1) if record is None else np.asarray(record["step"])
    stopped = history.get("train", {}).get("stopped")
    # per run, the last step whose batch statistics were measured: the evaluation a run stopped at, else the last
    last_batch = np.full(len(seeds), steps[-1])
    if stopped is not None:
        stopped = np.asarray(stopped).reshape(len(seeds), len(steps)) > 0
        first = np.argmax(stopped, axis=1)
        last_batch = np.where(stopped.any(axis=1), steps[first], last_batch)
    frames = []
    for split, metrics in history.items():
        if split == KEY:
            continue
        for metric, values in metrics.items():
            values = np.asarray(values, dtype=np.float64)
            shape = values.shape[2:]  # () batch statistic, (P,) a sender's metric, (P, Q) a pair's
            index = np.indices((len(seeds), len(steps), *shape)).reshape(2 + len(shape), -1)
            frame = {"seed": seeds[index[0]], "step": steps[index[1]], "split": split, "metric": metric, "value": values.ravel()}
            if agents:
                for column, axis in zip(AGENT_COLUMNS, (2, 3)):
                    frame[column] = pd.array(index[axis] if axis < len(index) else [pd.NA] * values.size, dtype="Int64")
            keep = (diverged_at[index[0]] < 0) | (steps[index[1]] <= diverged_at[index[0]])
            if split == "batch":
                keep &= (index[1] > 0) & (steps[index[1]] <= last_batch[index[0]])
            frames.append(pd.DataFrame(frame)[keep])
    table = pd.concat(frames, ignore_index=True)
    columns = COLUMNS[:2] + (AGENT_COLUMNS if agents else []) + COLUMNS[2:]
    return table[columns].reset_index(drop=True)


def final(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the last evaluation of each run."""
    keys = [c for c in table.columns if c not in ("step", "split", "metric", "value", *AGENT_COLUMNS)]
    last = table.groupby(keys, dropna=False)["step"].transform("max")
    return table[table["step"] == last]


def summary(table: pd.DataFrame, metrics=("accuracy", "topsim", "posdis", "loss"), threshold: float = 0.95) -> pd.DataFrame:
    """Final metrics per split (train, test): mean and std over seeds (and pairs), seeds reaching `threshold` accuracy."""
    last = final(table)
    last = last[last["metric"].isin(metrics) & last["split"].isin(("train", "test"))]
    per_run = last.groupby(["seed", "split", "metric"])["value"].mean().reset_index()  # a run's pairs averaged
    stats = per_run.groupby(["split", "metric"])["value"].agg(["mean", "std"]).unstack("metric")
    stats.columns = [f"{metric} {stat}" for stat, metric in stats.columns]
    accuracy = per_run[per_run["metric"] == "accuracy"]
    stats[f"seeds >= {threshold:.0%}"] = accuracy.groupby("split")["value"].apply(lambda v: f"{int((v >= threshold).sum())}/{len(v)}")
    ordered = [f"{m} {s}" for m in metrics for s in ("mean", "std") if f"{m} {s}" in stats.columns]
    return stats[ordered + [f"seeds >= {threshold:.0%}"]]


METADATA_KEY = b"lab"


def write_parquet(table: pd.DataFrame, path: str | Path, metadata: dict | None = None) -> None:
    """Atomic write: a temporary file in the same folder, then a rename; `metadata` (JSON) goes into the file's
    key-value metadata (read_metadata)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    if metadata:
        arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), METADATA_KEY: json.dumps(metadata).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(arrow, tmp)


def read_metadata(path: str | Path) -> dict:
    """What `write_parquet` stored with a table ({} when nothing), from the file's footer alone."""
    import pyarrow.parquet as pq

    stored = (pq.read_schema(path).metadata or {}).get(METADATA_KEY)
    return json.loads(stored) if stored else {}
