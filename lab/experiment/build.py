"""The trainer a config describes: each slot's component chosen from its config section.

    >>> from lab import config
    >>> trainer = make_trainer(config.load(overrides=["interventions.reset=true", "interventions.refit_steps=50", "population.n_receivers=3"]))
    >>> list(trainer.components.interventions), trainer.population.n_receivers
    (['reset'], 3)

Any slot can be given explicitly instead (a component defined elsewhere, a test's own):
`make_trainer(cfg, sampler=my_sampler)`. Nothing subclasses the trainer.
"""

from __future__ import annotations

import hashlib

import numpy as np

from games.groups import groups_of
from lab import controls, curriculum, dro
from lab.core import estimators
from lab.core.components import Components
from lab.core.spec import Spec
from lab.core.trainer import Trainer
from lab.interventions import ema
from lab.merging import rewards as merging_rewards


def components(spec: Spec, groups=None) -> Components:
    """The components of `spec.config`: its estimator, sampler, objective and interventions (`groups [n_objects]`: the world's)."""
    c = spec.config
    t = c.train
    control = controls.interventions(spec)
    reward = merging_rewards.shaped(spec, controls.reward(spec))
    estimator = estimators.reinforce(reward, t.baseline_decay) if t.mode == "reinforce" else estimators.gumbel()
    sampler, measuring = curriculum.components(spec)
    if c.merge.validation > 0:
        sampler = merging_rewards.validation_sampler(spec, sampler)
    # the curriculum's own interventions first: they measure the state the last step left, before a reset changes it
    interventions = {**measuring, **control, **({"ema": ema()} if c.interventions.ema else {})}
    objective = dro.objective(spec, 1 if groups is None else int(groups.max()) + 1)
    return Components(estimator=estimator, sampler=sampler, objective=objective, interventions=interventions)


def make_trainer(config, *, estimator=None, sampler=None, objective=None, interventions=None, groups=None) -> Trainer:
    """`Trainer` for `config`, with any slot replaced by the component given; `groups [n_objects]` replace game.groups."""
    spec = Spec(config)
    groups = groups_of(spec.world, config.game, groups)
    chosen = components(spec, groups)
    given = dict(estimator=estimator, sampler=sampler, objective=objective, interventions=interventions)
    chosen = chosen._replace(**{k: v for k, v in given.items() if v is not None})
    trainer = Trainer(config, chosen, groups=groups, spec=spec)
    if all(v is None for v in given.values()):  # the config, the world's data and the groups say everything: its programs can be kept
        world = trainer.world  # a feature set's file may change under the same path: its values are in the programs
        data = b"".join(np.ascontiguousarray(a).tobytes() for a in (world.objects, world.train, world.test, world.train_probs))
        trainer.fingerprint = hashlib.sha256(repr(config).encode() + data + trainer.groups.tobytes()).hexdigest()
    return trainer


def make_train(config, **components):
    """`train(key, hparams) -> (final TrainState, history)`, pure; jit and vmap it."""
    return make_trainer(config, **components).train
