"""The lab: agents, the composable trainer, metrics, analysis, runs, sweeps and studies for Lewis signaling games.

    >>> import lab
    >>> cfg = lab.config.load(overrides=["train.seeds=2", "train.steps=200"])
    >>> state, history = lab.train_population(cfg)      # one jitted, vmapped call
    >>> history["train"]["accuracy"].shape              # [seeds, evaluations]
    (2, 3)

Layout: `lab.core` (the jitted core), `lab.controls` / `lab.interventions` (components),
`lab.analysis`, `lab.experiment` (config, build, run, sweep, checkpoint, results), `lab.report`.
"""

import jax

from lab import analysis
from lab.core import metrics
from lab.core.hparams import hparams_from_config, with_values
from lab.core.trainer import Trainer, TrainState, seed_keys
from lab.experiment import cache, checkpoint, config, results
from lab.experiment.build import make_train, make_trainer
from lab.experiment.config import Config, ConfigError, load
from lab.experiment.execute import split_cpu

cache.enable()  # compile a config once, not once per process (LAB_CACHE=off turns it off)
cache.quick_compiles()  # on a CPU: XLA's cheaper optimisation level, before JAX starts
split_cpu()  # on a CPU: one device per core, so a population's runs train side by side


def train_population(config: Config, trainer: Trainer | None = None, hparams=None):
    """Train `config.train.seeds` runs as one jitted, vmapped call of `trainer.train`: `(state, history)`."""
    trainer = trainer or make_trainer(config)
    keys = seed_keys(config)
    hparams = hparams if hparams is not None else hparams_from_config(config, len(keys))
    return jax.jit(jax.vmap(trainer.train))(keys, hparams)


__all__ = [
    "analysis", "metrics", "checkpoint", "config", "results", "Config", "ConfigError", "load", "Trainer", "TrainState",
    "hparams_from_config", "with_values", "seed_keys", "make_train", "make_trainer", "train_population",
]
