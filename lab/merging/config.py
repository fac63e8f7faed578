"""The `merge` config section: the held-out set merges are gated on, the merging rewards, barrier and WARP settings.

Defaults follow WARP (Ramé et al. 2024; ../shared/science/algorithms.md §D6) where it has one:
beta = 0.1, mu = 0.01 (`interventions.ema_rate`), M = 2, eta = 0.3. Every default leaves training
unchanged: no held-out objects, no reward term.
"""

from __future__ import annotations

from dataclasses import dataclass

from games.fields import ConfigError, doc
from games.registry import game_class


@dataclass(frozen=True)
class MergeConfig:
    validation: float = doc("fraction of the train objects no training step draws, the held-out set greedy soups and "
                            "model selection read (0: none)", 0.0, low=0.0, high=1.0, high_open=True)
    kl_beta: float = doc("REINFORCE: KL penalty to the EMA anchor in the sender's reward, r - kl_beta * log(pi(m|x) / "
                         "pi_ema(m|x)) (WARP: 0.1); needs interventions.ema=true; a term whose weight is 0 in the config "
                         "is left out of the compiled step (runs of a population may then not vary it)", 0.0, low=0.0,
                         continuous=True)
    topsim_weight: float = doc("REINFORCE: weight of a structure reward added to the sender's, each message's "
                               "topographic similarity with the rest of its batch (rewarded soups); 0 in the config: "
                               "left out", 0.0, low=0.0, continuous=True)
    alphas: int = doc("points on an interpolation path, alpha = 0, 1/(alphas-1), ..., 1 (barrier curves and fronts)",
                      11, low=2)
    max_barrier: float = doc("merge gate: a merge whose accuracy barrier on the held-out games is above this warns "
                             "(a drop of 1-2 points at alpha=0.5 is the usual gate)", 0.05, low=0.0, high=1.0)
    warp_agents: int = doc("WARP: M runs fine-tuned from the same start each iteration, then merged by SLERP", 2, low=1)
    warp_iterations: int = doc("WARP: I iterations of fine-tune, SLERP, LITI (each train.steps long)", 3, low=1)
    liti_eta: float = doc("WARP: LITI step, the next start is (1 - eta) start + eta merged", 0.3, low=0.0, high=1.0)

    @property
    def alpha_grid(self) -> list[float]:
        return [i / (self.alphas - 1) for i in range(self.alphas)]

    def validate(self, config) -> None:
        n_train = config.game.n_train
        held = round(n_train * self.validation)
        if self.validation > 0 and not 1 <= held < n_train:
            raise ConfigError(f"merge.validation={self.validation}: holds out {held} of {n_train} train objects; it must "
                              f"leave at least one on each side (or be 0)")
        for name in ("kl_beta", "topsim_weight"):
            if getattr(self, name) > 0 and config.train.mode != "reinforce":
                raise ConfigError(f"merge.{name}={getattr(self, name)}: a reward term, needs train.mode='reinforce', "
                                  f"got {config.train.mode!r}")
        if self.topsim_weight > 0 and not game_class(config.game.kind).has_attributes(config.game):
            raise ConfigError(f"merge.topsim_weight={self.topsim_weight}: the structure reward reads the referents' "
                              f"attributes; this world has none (game.labels)")
        if self.kl_beta > 0 and not config.interventions.ema:
            raise ConfigError(f"merge.kl_beta={self.kl_beta}: the KL anchor is the EMA of the sender; set "
                              f"interventions.ema=true")
        if self.kl_beta > 0 and config.population.n_senders != 1:
            raise ConfigError(f"merge.kl_beta={self.kl_beta}: the anchor is one sender's EMA; needs "
                              f"population.n_senders=1, got {config.population.n_senders}")
