"""The `curriculum` config section and the sampler it describes.

    curriculum.kind=competence curriculum.power=1 curriculum.pace=0.5      # linear competence over half the run
    curriculum.kind=competence curriculum.order=random                     # Wu et al.'s random-order control
    curriculum.kind=bandit curriculum.step_size=0.05                        # Graves et al.'s Exp3.S

Continuous fields (pace, initial, power, step_size, explore, mix, drift, shuffle, meta_lr) arrive as
arrays in `hp["curriculum"]`, so one compiled call can vary them across runs; the others are static.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curricula.bandit import bandit
from curricula.base import Sampler, identity
from curricula.commentary import commentary
from curricula.pacing import ORDERS, PACED, paced
from curricula.self_paced import self_paced
from games.difficulty import AXES, TARGET_AXES, buckets, make_axis
from games.fields import ConfigError, doc
from games.registry import game_class

KINDS = ("uniform",) + PACED + ("bandit", "self_paced", "commentary")
AXIS_KINDS = PACED + ("bandit",)  # the schedulers that index a difficulty axis
ORDERED_KINDS = PACED


@dataclass(frozen=True)
class CurriculumConfig:
    kind: str = doc("scheduler: uniform (no curriculum); competence (Platanios et al. 2019); baby_steps (cumulative "
                    "buckets); one_pass (one bucket at a time); bandit (Exp3.S on prediction gain, Graves et al. 2017); "
                    "self_paced (loss threshold that grows, Kumar et al. 2010); commentary (meta-learned example weights, "
                    "Raghu et al. 2021)", "uniform", choices=KINDS)
    axis: str = doc("difficulty axis (games.difficulty): values (values per attribute in play: a world that grows), rarity "
                    "(-log p(x), needs game.distribution=zipf), distractors and similarity (discrimination; features: "
                    "distractors); auto: the game's own (values for reconstruction, distractors for discrimination and "
                    "features)", "auto", choices=("auto",) + AXES)
    order: str = doc("competence, baby_steps, one_pass: easy_first; hard_first (anti-curriculum); random (the same pacing "
                     "over a random order of the units, Wu et al. 2021)", "easy_first", choices=ORDERS)
    initial: float = doc("competence c0 at step 0, the fraction of the data in play (Platanios et al. used 0.01); "
                         "self_paced: the threshold starts at c0 times the chance loss", 0.1, low=0.0, high=1.0,
                         low_open=True, continuous=True)
    power: float = doc("competence c(t) = min(1, (t (1 - c0^p) / T + c0^p)^(1/p)): 1 linear, 2 sqrt", 2.0, low=0.0,
                       low_open=True, continuous=True)
    pace: float = doc("curriculum length T as a fraction of train.steps: full competence (or the last bucket) at "
                      "step pace * train.steps", 0.5, low=0.0, low_open=True, continuous=True)
    buckets: int = doc("baby_steps, one_pass, bandit: difficulty buckets (equal-mass cuts of the difficulty's CDF, ties "
                       "kept together, so there may be fewer); the bandit's arms", 4, low=2)
    step_size: float = doc("bandit: Exp3.S step size eta (Graves et al. used 1e-3 over far longer runs)", 0.05, low=0.0,
                           low_open=True, continuous=True)
    explore: float = doc("bandit: exploration eps, every arm drawn with probability >= eps / arms", 0.05, low=0.0, high=1.0,
                         low_open=True, continuous=True)
    mix: float = doc("bandit: Exp3.S weight sharing alpha between arms, to track rewards that change", 1e-3, low=0.0,
                     high=1.0, high_open=True, continuous=True)
    history: int = doc("bandit: past prediction gains whose 20th / 80th percentiles rescale the reward to [-1, 1]", 200, low=2)
    drift: float = doc("self_paced, commentary: how much of the weights' raw batch mean is kept (0: normalised to mean 1; "
                       "1: as in naive implementations, where the mean acts as a learning-rate schedule)", 0.0, low=0.0,
                       high=1.0, continuous=True)
    shuffle: float = doc("commentary: probability that a step's weights are permuted among the examples of its batch "
                         "(1: the data-agnostic control of Weber et al. 2023)", 0.0, low=0.0, high=1.0, continuous=True)
    meta_every: int = doc("commentary: optimizer steps between meta-updates of the weighting network", 20, low=1)
    meta_steps: int = doc("commentary: inner training steps differentiated through in each meta-update", 2, low=1)
    meta_batch: int = doc("commentary: games per inner step and in the held-out batch", 64, low=1)
    meta_lr: float = doc("commentary: Adam learning rate of the weighting network", 0.01, low=0.0, low_open=True, continuous=True)
    meta_hidden: int = doc("commentary: hidden units of the weighting network", 16, low=1)

    def axis_of(self, game_config) -> str:
        """The axis this curriculum indexes in the game `game_config` (`auto` resolved)."""
        return game_class(game_config.kind).DEFAULT_AXIS if self.axis == "auto" else self.axis

    def validate(self, config) -> None:
        g = config.game
        axis, axes = self.axis_of(g), game_class(g.kind).AXES
        if axis not in axes:
            raise ConfigError(f"curriculum.axis={self.axis!r}: the {g.kind} game has no such difficulty axis; "
                              f"allowed: {', '.join(('auto',) + axes)}")
        if axis == "rarity" and self.kind in AXIS_KINDS and g.distribution == "uniform":
            raise ConfigError("curriculum.axis='rarity': every object is equally rare under game.distribution='uniform'; "
                              "use game.distribution=zipf or another axis")
        if self.order != "easy_first" and self.kind not in ORDERED_KINDS:
            raise ConfigError(f"curriculum.order={self.order!r}: the {self.kind} scheduler has no order; "
                              f"only {', '.join(ORDERED_KINDS)} do")
        if self.kind == "bandit" and axis not in TARGET_AXES and _levels(axis, g) < 2:
            raise ConfigError(f"curriculum.kind='bandit': the {axis} axis has a single level here, one arm; "
                              f"raise game.{'n_distractors' if axis == 'distractors' else 'n_attributes'}")


def _levels(axis: str, game_config) -> int:
    return game_config.n_distractors if axis == "distractors" else game_config.n_attributes


def make_sampler(config: CurriculumConfig, world, game, game_config, train_steps: int, n_examples: int) -> Sampler:
    """The sampler `config` describes for `game` in `world`; `n_examples`: ids per step (pairs x batch size)."""
    if config.kind == "uniform":
        return identity()
    if config.kind == "self_paced":
        return self_paced(len(world.train), game.chance_loss, train_steps)
    if config.kind == "commentary":
        return commentary(np.asarray(game.features(world.train_objects)), train_steps, config.meta_hidden)
    axis = make_axis(config.axis_of(game_config), world, game_config)
    if config.kind == "bandit":
        if len(set(buckets(axis.scores, axis.prior, config.buckets).tolist())) < 2:
            raise ConfigError(f"curriculum.kind='bandit': the {axis.name} axis forms a single bucket in this world, one arm")
        return bandit(axis, config.buckets, n_examples, config.history)
    return paced(axis, config.kind, config.order, train_steps, config.buckets)
