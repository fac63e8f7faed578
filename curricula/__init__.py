"""Curriculum schedulers: samplers of the trainer, pure JAX, depending on nothing but `games`.

Each scheduler is a `Sampler` (curricula.base): pure functions over a state the trainer carries
in its scan, vmappable over seeds and over the scheduler's continuous knobs. The `curriculum`
config section (curricula.config) chooses one:

* uniform: no curriculum (`identity()`), the baseline;
* competence, baby_steps, one_pass (curricula.pacing), each in an order: easy_first,
  hard_first (anti-curriculum), random (the same pacing over a random order);
* bandit: Exp3.S over difficulty buckets with a prediction-gain reward (curricula.bandit);
* self_paced: a loss threshold that grows (curricula.self_paced);
* commentary: example weights from a meta-learned network (curricula.commentary).

The bandit's reward and the commentary's meta-gradient need the agents; the lab layer feeds them
in (lab.curriculum) through `bandit.observe` and `commentary.record`.

    >>> import curricula
    >>> round(float(curricula.competence(0, 1000, 0.1, 2.0)), 3), float(curricula.competence(1000, 1000, 0.1, 2.0))
    (0.1, 1.0)
"""

from curricula import bandit, commentary, pacing, self_paced, weighting
from curricula.base import Sampler, Stats, distribution_entropy, identity
from curricula.config import KINDS, CurriculumConfig, make_sampler
from curricula.pacing import ORDERS, competence

__all__ = [
    "Sampler", "Stats", "identity", "distribution_entropy", "competence", "CurriculumConfig", "make_sampler",
    "KINDS", "ORDERS", "bandit", "commentary", "pacing", "self_paced", "weighting",
]
