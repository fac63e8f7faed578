"""The lab: agents, trainer, metrics, runs and analysis for Lewis signaling games.

    >>> from lab import config, train
    >>> cfg = config.load(overrides=["train.seeds=2", "train.steps=200"])
    >>> state, metrics = train.train_population(cfg)   # one jitted, vmapped call
    >>> metrics["train"]["accuracy"].shape             # [seeds, evaluations]
    (2, 3)
"""

from lab.config import Config, ConfigError, load
from lab.train import Hparams, Trainer, hparams_from_config, make_train, train_population

__all__ = ["Config", "ConfigError", "load", "Hparams", "Trainer", "hparams_from_config", "make_train", "train_population"]
