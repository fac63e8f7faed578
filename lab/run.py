"""`lab run`: train a population for one config and write a run directory.

DIR/config.yaml       the resolved config
DIR/metrics.parquet   tidy table: seed, step, split, metric, value
DIR/checkpoint.npz    final parameters of every seed (lab.checkpoint.load)

The directory appears only when the run has finished: everything is written to a hidden
sibling first and renamed, so an interrupted or failed run leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import yaml
from tqdm import tqdm

from lab import checkpoint, results
from lab.config import Config, ConfigError, to_dict
from lab.train import Trainer, hparams_from_config, seed_keys

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.parquet"


def check_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file, not a directory")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"--out {str(out)!r} exists and is not empty; pass --overwrite to replace it")


class Progress:
    """A tqdm bar over evaluation blocks, fed from inside the jitted loop by `jax.debug.callback`."""

    def __init__(self, total: int, desc: str, enabled: bool = True):
        self.bar = tqdm(total=total, desc=desc, unit="eval", disable=not enabled, leave=False)
        self.done = 0

    def __call__(self, block_index) -> None:
        # under vmap the callback comes once per seed; count each block once
        index = int(np.max(np.asarray(block_index))) + 1
        if index > self.done:
            self.bar.update(index - self.done)
            self.done = index

    def close(self) -> None:
        self.bar.close()


def train(config: Config, progress: bool = True):
    """(trainer, final state, tidy table) for the config's population."""
    trainer = Trainer(config)
    bar = Progress(trainer.n_evals, f"training {config.train.seeds} seeds", enabled=progress)
    trainer.on_block = bar if progress else None  # a host callback keeps the call out of JAX's persistent compilation cache
    keys = seed_keys(config)
    try:
        state, history = jax.jit(jax.vmap(trainer.train))(keys, hparams_from_config(config, len(keys)))
        history = jax.device_get(history)
    finally:
        bar.close()
    seeds = np.arange(config.train.seed, config.train.seed + config.train.seeds)
    return trainer, state, results.tidy(history, trainer.eval_steps, seeds)


def write_run(out: Path, config: Config, state, table: pd.DataFrame) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    results.write_parquet(table, out / METRICS_FILE)
    seeds = np.arange(config.train.seed, config.train.seed + config.train.seeds)
    checkpoint.save(out / checkpoint.FILENAME, state.sender, state.receiver, seeds)


@contextlib.contextmanager
def staged(out: Path):
    """A hidden sibling directory to write into; it replaces `out` only if the block completes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    try:
        yield staging
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def run(config: Config, out: str | Path, overwrite: bool = False, progress: bool = True) -> pd.DataFrame:
    """Train, then move the finished run directory into place; returns the tidy table."""
    out = Path(out)
    check_out_dir(out, overwrite)
    _, state, table = train(config, progress)
    with staged(out) as staging:
        write_run(staging, config, state, table)
    return table


def read_config(run_dir: str | Path) -> Config:
    from lab.config import from_dict

    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{str(run_dir)!r} is not a run directory: no {CONFIG_FILE}")
    return from_dict(yaml.safe_load(path.read_text()))
