"""Every component composes with every other: each pair of choices, across all slots, traced in one training run.

The factors are every curriculum kind, every objective kind, the interventions (reset, EMA, both,
none), both speaker estimators, every merging reward term (KL to the EMA anchor, structure, both,
none), the held-out validation sampler and the population's shape. Their full product is about
two thousand configs; the bug class this guards against (components that find each other by
position or assume another's presence: `lab run curriculum.kind=bandit interventions.ema=true
merge.kl_beta=0.1` died tracing its step when the EMA was looked up by tuple index) shows between
two or three of them. So the test takes an all-pairs cover of the valid product (every pair of
values of any two factors appears in some config, ~40 configs), adds the triple that crashed, and
traces each config's init, training step (every branch of every intervention) and evaluation
abstractly (`jax.eval_shape`: no compile). One real step, compiled and run with every
intervention due, for a handful of configs that together use every intervention, estimator, reward term,
sampler wrapper and population shape, checks that the step's numbers are finite (each curriculum
and objective trains for real in its own tests).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import curricula
import lab
from lab.dro import OBJECTIVES

TINY = ["game.n_attributes=3", "game.n_values=3", "agents.hidden_size=8", "agents.embedding_size=4", "agents.vocab_size=4",
        "agents.max_len=3", "train.batch_size=8", "train.seeds=1", "train.steps=2", "train.eval_every=1",
        "train.eval_size=8", "interventions.reset_every=1", "interventions.refit_max_steps=2",
        "interventions.refit_patience=1", "game.validation_fraction=0.15", "curriculum.buckets=2", "curriculum.meta_every=1",
        "curriculum.meta_steps=1", "curriculum.meta_batch=4", "curriculum.history=4"]

FACTORS = {
    "curriculum": curricula.KINDS,
    "objective": OBJECTIVES,
    "interventions": ("none", "reset", "ema", "reset+ema"),
    "mode": ("reinforce", "gumbel"),
    "reward": ("none", "kl", "topsim", "kl+topsim"),
    "validation": (0.0, 0.2),
    "population": ((1, 1), (2, 2)),
}


def valid(row: dict) -> bool:
    """The constraints the config's validation states: reward terms are REINFORCE's; the KL anchor is one sender's EMA."""
    if row["reward"] != "none" and row["mode"] != "reinforce":
        return False
    return "kl" not in row["reward"] or ("ema" in row["interventions"] and row["population"] == (1, 1))


def overrides(row: dict) -> list[str]:
    P, Q = row["population"]
    return TINY + [
        f"curriculum.kind={row['curriculum']}", f"objective.kind={row['objective']}",
        f"game.groups={'attribute' if row['objective'] == 'group_dro' else 'none'}",
        f"interventions.reset={'reset' in row['interventions']}",
        f"interventions.ema={'ema' in row['interventions']}", f"train.mode={row['mode']}",
        f"merge.kl_beta={0.1 if 'kl' in row['reward'] else 0.0}",
        f"merge.topsim_weight={0.1 if 'topsim' in row['reward'] else 0.0}",
        f"merge.validation={row['validation']}", f"population.n_senders={P}", f"population.n_receivers={Q}",
    ]


def all_pairs(factors: dict, keep) -> list[dict]:
    """A greedy all-pairs cover of the rows of the product that `keep` accepts: each pair of values of two factors
    that some kept row has appears in a chosen row (deterministic: the first of the best rows)."""
    names = list(factors)
    rows = [dict(zip(names, values)) for values in itertools.product(*factors.values())]
    rows = [row for row in rows if keep(row)]

    def pairs(row):
        return {((a, row[a]), (b, row[b])) for a, b in itertools.combinations(names, 2)}

    uncovered = set().union(*map(pairs, rows))
    chosen = []
    while uncovered:
        best = max(rows, key=lambda row: len(pairs(row) & uncovered))
        chosen.append(best)
        uncovered -= pairs(best)
    return chosen


def every_value(rows: list[dict], factors: dict) -> list[dict]:
    """A few of `rows` that together use every value of every factor."""
    missing = {(name, value) for name, values in factors.items() for value in values}
    chosen = []
    while missing:
        best = max(rows, key=lambda row: len(set(row.items()) & missing))
        chosen.append(best)
        missing -= set(best.items())
    return chosen


CRASHED = dict(curriculum="bandit", objective="erm", interventions="ema", mode="reinforce", reward="kl", validation=0.0,
               population=(1, 1))
ROWS = all_pairs(FACTORS, valid) + [CRASHED]
RUN = every_value(ROWS, {name: FACTORS[name] for name in ("interventions", "mode", "reward", "validation", "population")})


def test_the_cover_has_every_pair_and_stays_small():
    names = list(FACTORS)
    for a, b in itertools.combinations(names, 2):
        possible = {(row[a], row[b]) for row in map(lambda v: dict(zip(names, v)), itertools.product(*FACTORS.values()))
                    if valid(row)}
        assert possible == {(row[a], row[b]) for row in ROWS}, (a, b)
    assert len(ROWS) <= 60 and len(RUN) <= 5


def trainer_of(row):
    config = lab.load(overrides=overrides(row))
    return config, lab.make_trainer(config)


@pytest.mark.parametrize("row", ROWS, ids=lambda row: "-".join(map(str, row.values())).replace(" ", ""))
def test_every_pair_traces(row):
    config, trainer = trainer_of(row)
    hparams = lab.hparams_from_config(config)
    state = jax.eval_shape(trainer.init, jax.random.key(0), hparams)
    assert set(state.components) == {"estimator", "sampler", "objective", *trainer.components.interventions}
    after, summary = jax.eval_shape(trainer.train_step, state, jax.random.key(1), jnp.int32(1), hparams)
    assert jax.tree.structure(after) == jax.tree.structure(state) and "loss" in summary
    metrics = jax.eval_shape(trainer.evaluate, state, jax.random.key(2))
    assert {"accuracy", "loss", "topsim"} <= set(metrics["train"])


@pytest.mark.parametrize("row", RUN, ids=lambda row: "-".join(map(str, row.values())).replace(" ", ""))
def test_a_step_runs_with_every_intervention_due(row):
    config, trainer = trainer_of(row)
    hparams = lab.hparams_from_config(config)
    state = trainer.init(jax.random.key(0), hparams)
    # step 1: every intervention is due (reset_every = meta_every = 1), the prediction gain reads the step before
    state, summary = jax.jit(trainer.train_step)(state, jax.random.key(1), jnp.int32(1), hparams)
    for name, value in summary.items():
        assert np.all(np.isfinite(value)), (name, value)
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves((state.senders, state.receivers)))
