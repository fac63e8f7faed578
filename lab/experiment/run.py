"""`lab run`: train the runs (seeds) of one config and write a run directory.

DIR/config.yaml       the resolved config
DIR/metrics.parquet   tidy table: seed, step, split, metric, value (+ sender, receiver in a population)
DIR/checkpoint.npz    final parameters of every run (lab.experiment.checkpoint.load)

The directory appears only when the run has finished: everything is written to a hidden
sibling first and renamed, so an interrupted or failed run leaves nothing half-written
(lab.experiment.io: what `--overwrite` may replace, one writer per destination).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import yaml
from tqdm import tqdm

from lab.core.hparams import hparams_from_config
from lab.core.trainer import Trainer, seed_keys
from lab.experiment import checkpoint, divergence, results, sizes
from lab.experiment.build import make_trainer
from lab.experiment.config import Config, ConfigError, from_dict, read_yaml, to_dict
from lab.experiment.execute import train_runs, setup
from lab.experiment.io import staged

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.parquet"


def progress_bar(total: int, desc: str, enabled: bool = True):
    """A tqdm bar over evaluation blocks and the `on_block` callback that advances it."""
    bar = tqdm(total=total, desc=desc, unit="eval", disable=not enabled, leave=False)
    return bar, lambda index, *_: bar.update(1)


def seeds_of(config: Config) -> np.ndarray:
    return np.arange(config.train.seed, config.train.seed + config.train.seeds)


class Trained(NamedTuple):
    trainer: Trainer
    state: Any  # the final TrainState, numpy, runs first
    table: pd.DataFrame  # tidy: seed, step, split, metric, value (+ sender, receiver)
    diverged: dict[int, tuple[int, str]]  # {seed: (step, quantity)} of the runs that diverged (lab.experiment.divergence)
    diverged_at: np.ndarray  # [runs] the step each run diverged at, -1 when it did not


def train(config: Config, progress: bool = True, trainer: Trainer | None = None) -> Trained:
    """The config's runs trained (lab.experiment.execute.train_runs) into a tidy table."""
    setup()
    trainer = trainer or make_trainer(config)
    bar, on_block = progress_bar(trainer.n_evals + 1, f"training {config.train.seeds} seeds", progress)
    try:
        state, history = train_runs(trainer, seed_keys(config), hparams_from_config(config, config.train.seeds),
                                        on_block=on_block)
    finally:
        bar.close()
    p = config.population
    seeds = seeds_of(config)
    table = results.tidy(history, trainer.eval_steps, seeds, (p.n_senders, p.n_receivers))
    return Trained(trainer, state, table, divergence.diverged(history, seeds), history[divergence.KEY]["step"])


def write_run(out: Path, config: Config, trained: Trained) -> None:
    """config.yaml, metrics.parquet (what diverged in its metadata: results.read_metadata), checkpoint.npz
    (`stop_step` and `diverged_at` beside the parameters)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    results.write_parquet(trained.table, out / METRICS_FILE, {"diverged": trained.diverged})
    state = trained.state
    checkpoint.save(out / checkpoint.FILENAME, state.senders, state.receivers, seeds_of(config),
                    extra={"stop_step": np.asarray(state.stop_step), "diverged_at": trained.diverged_at})


def run(config: Config, out: str | Path, overwrite: bool = False, progress: bool = True, size_check: bool = True) -> pd.DataFrame:
    """Train, then move the finished run directory into place; returns the tidy table.

    The config's memory and work are checked first (lab.experiment.sizes; `size_check=False` skips it), then the
    destination, which is held (lab.experiment.io.staged) from before training starts. A run that diverged is
    written all the same, then `divergence.Diverged` is raised with the table (`lab run` exits 3)."""
    if size_check:
        sizes.check(config)
    with staged(out, overwrite, kind="run") as staging:
        trained = train(config, progress)
        write_run(staging, config, trained)
    if trained.diverged:
        raise divergence.Diverged(f"{divergence.describe(trained.diverged)}; the rows up to there are in {str(out)!r}",
                                  trained.table)
    return trained.table


def read_config(run_dir: str | Path) -> Config:
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{str(run_dir)!r} is not a run directory: no {CONFIG_FILE}")
    return from_dict(read_yaml(path))
