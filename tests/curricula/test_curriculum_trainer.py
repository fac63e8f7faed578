"""Curricula inside the jitted loop: composed with a DRO objective, the reset control and a population; pacing and
commentary weights as the trainer sees them. One compile per run, shared by the tests of this module."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lab
from lab.core.components import Objective
from lab.core.hparams import hparams_from_config, with_values

TINY = ["game.n_attributes=2", "game.n_values=4", "agents.hidden_size=16", "agents.embedding_size=8", "agents.vocab_size=8",
        "agents.max_len=3", "train.batch_size=32", "train.seeds=2", "train.steps=40", "train.eval_every=20"]


def tilted(tau: float = 0.5) -> Objective:
    """A non-ERM objective (exponentially tilted risk, the KL-DRO weights): w = B softmax(loss / tau), mean 1."""
    def weights(state, loss, groups, ids, hp):
        return loss.shape[0] * jax.nn.softmax(loss / tau)

    return Objective(init=lambda key: {"max_weight": jnp.zeros(())}, weights=weights,
                     update=lambda state, stats, hp: {"max_weight": jnp.max(stats.weights)},
                     summary=lambda state, hp: {"dro_max_weight": state["max_weight"]})


@pytest.fixture(scope="module")
def composed():
    config = lab.load(overrides=TINY + ["population.n_senders=2", "population.n_receivers=2", "interventions.reset=true",
                                        "interventions.reset_every=15", "interventions.refit_steps=20",
                                        "curriculum.kind=bandit", "curriculum.step_size=0.2"])
    trainer = lab.make_trainer(config, objective=tilted())
    state, history = lab.train_seeds(config, trainer)
    return config, trainer, jax.device_get(state), jax.device_get(history)


def test_a_curriculum_composes_with_dro_a_reset_control_and_a_population(composed):
    config, trainer, state, history = composed
    assert list(trainer.components.interventions) == ["prediction_gain", "reset"]  # the bandit's gain, then the reset
    accuracy = np.asarray(history["train"]["accuracy"])
    assert accuracy.shape == (2, 3, 2, 2)  # seeds, evaluations, senders, receivers
    for split in ("train", "test"):
        for metric in ("accuracy", "loss", "topsim"):
            assert np.all(np.isfinite(history[split][metric])), (split, metric)
    batch = {k: np.asarray(v)[:, 1:] for k, v in history["batch"].items()}  # step 0 has no batch
    assert np.all(batch["refit_steps"][:, -1] > 0)  # receivers were reset and refitted
    assert np.all(batch["dro_max_weight"] > 1.0)  # the objective reweighted
    n_arms = sum(k.startswith("bandit_p") for k in batch)
    assert n_arms >= 2 and np.all(batch["bandit_entropy"][:, -1] < np.log(n_arms) - 1e-3)  # the bandit has learned
    assert np.any(batch["bandit_gain"] != 0.0)
    probs = np.stack([batch[f"bandit_p{k}"] for k in range(n_arms)], -1)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.asarray(state.stop_step) == -1) and np.all(np.asarray(state.step) == config.train.steps)


@pytest.fixture(scope="module")
def paced():
    config = lab.load(overrides=TINY + ["curriculum.kind=competence", "curriculum.initial=0.05", "curriculum.pace=0.75",
                                        "train.eval_every=10"])
    _, history = lab.train_seeds(config)
    return config, jax.device_get(history)


def test_the_trainer_draws_only_what_the_competence_admits(paced):
    config, history = paced
    batch = {k: np.asarray(v)[:, 1:] for k, v in history["batch"].items()}
    assert np.all(batch["curriculum_above"] == 0.0)
    competence, support = batch["curriculum_competence"], batch["curriculum_support"]
    assert np.all(np.diff(competence, axis=1) > 0) and np.all(np.diff(support, axis=1) >= 0)
    assert support[0, 0] < 0.5 and support[0, -1] == 1.0  # few objects at first, all once the pace has run out


@pytest.fixture(scope="module")
def commented():
    config = lab.load(overrides=TINY + ["curriculum.kind=commentary", "curriculum.meta_every=5", "curriculum.meta_lr=0.05",
                                        "train.seeds=2"])
    hparams = with_values(hparams_from_config(config, 2), {"curriculum.drift": jnp.array([0.0, 1.0])})
    _, history = lab.train_seeds(config, hparams=hparams)
    return jax.device_get(history)


def test_commentary_weights_are_meta_learned_and_mean_one_unless_they_drift(commented):
    batch = {k: np.asarray(v)[:, 1:] for k, v in commented["batch"].items()}
    assert np.all(batch["meta_grad_norm"] > 0.0)
    assert np.all(batch["curriculum_weight_std"][:, -1] > 1e-4)  # the weights came to differ between examples
    np.testing.assert_allclose(batch["curriculum_weight_mean"][0], 1.0, atol=1e-5)  # drift 0: normalised
    np.testing.assert_allclose(batch["weight_mean"][0], 1.0, atol=1e-5)  # what the trainer applied
    assert np.all(np.abs(batch["curriculum_weight_mean"][1] - 1.0) > 1e-5)  # drift 1: the raw mean
    np.testing.assert_allclose(batch["weight_mean"][1], batch["curriculum_weight_mean"][1], rtol=1e-4)
