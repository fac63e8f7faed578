"""The lab: agents, the composable trainer, metrics, analysis, runs, sweeps and studies for Lewis signaling games.

Importing it changes nothing in the process; `lab.setup()` (the commands, the runner, the studies and the
notebooks call it first) turns on what the lab runs with: lab.experiment.execute.setup.

    >>> import lab
    >>> lab.setup()
    >>> cfg = lab.config.load(overrides=["train.seeds=2", "train.steps=200"])
    >>> state, history = lab.train_seeds(cfg)      # the runner: two compiled programs, as `lab run`
    >>> history["train"]["accuracy"].shape              # [seeds, evaluations]
    (2, 3)

Layout: `lab.core` (the jitted core), `lab.controls` / `lab.interventions` (components),
`lab.analysis`, `lab.experiment` (config, build, run, sweep, checkpoint, results), `lab.report`.
"""

from lab import analysis
from lab.core import metrics
from lab.core.hparams import hparams_from_config, with_values
from lab.core.trainer import Trainer, TrainState, seed_keys
from lab.experiment import cache, checkpoint, config, results
from lab.experiment.build import make_train, make_trainer
from lab.experiment.config import Config, ConfigError, load
from lab.experiment.execute import train_runs, setup
from lab.experiment.warp import fine_tune, warp


def train_seeds(config: Config, trainer: Trainer | None = None, hparams=None):
    """Train `config.train.seeds` runs with the lab's runner (lab.experiment.execute.train_runs, as `lab run` does):
    `(state, history)` as numpy, runs first. `hparams` default to the config's (`with_values` varies them)."""
    setup()
    trainer = trainer or make_trainer(config)
    keys = seed_keys(config)
    hparams = hparams if hparams is not None else hparams_from_config(config, len(keys))
    return train_runs(trainer, keys, hparams)


__all__ = [
    "analysis", "metrics", "checkpoint", "config", "results", "Config", "ConfigError", "load", "Trainer", "TrainState",
    "hparams_from_config", "with_values", "seed_keys", "make_train", "make_trainer", "train_seeds", "setup", "fine_tune", "warp",
]
