"""The slots compose: a sampler that updates from per-example statistics, a non-ERM objective, a listener
reset every k steps and a 2 x 3 population, together in one `jit(vmap(train))` over 2 seeds, each effect
asserted. The sampler, the objective and a recording intervention are defined here, in the test file:
a new component needs no trainer edit.

Tiny world: K=3, V=3 (27 objects, 22 in train), GRU-16; one compile of the whole run for the module.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import curricula
import lab
from lab.core.components import Intervention, Objective
from lab.core.spec import Spec
from lab.interventions import reset_receivers

STEPS, RESET_EVERY, WINDOW, ALLOWED = 12, 4, 2, 8
TINY = ["game.n_attributes=3", "game.n_values=3", "agents.hidden_size=16", "agents.embedding_size=8", "agents.vocab_size=6",
        "agents.max_len=3", "train.batch_size=16", "train.seeds=2", "train.lr=0.01", f"train.steps={STEPS}", "train.eval_every=6"]
POPULATION = ["population.n_senders=2", "population.n_receivers=3", "population.pairing=round_robin",
              "interventions.reset=true", f"interventions.reset_every={RESET_EVERY}", f"interventions.refit_steps={2 * WINDOW}"]


class Tally(NamedTuple):
    drawn: jax.Array  # [n_train] how often each train object was a target
    expected: jax.Array  # [n_train] sum over steps of (examples drawn) x (the probability the sampler gave it)


def least_seen_sampler(n_train: int) -> curricula.Sampler:
    """Only the first ALLOWED train objects, the less often drawn so far the likelier: it updates from Stats.ids."""
    allowed = jnp.arange(n_train) < ALLOWED

    def probs(tally):
        p = jnp.where(allowed, 1.0 / (1.0 + tally.drawn), 0.0)
        return p / jnp.sum(p)

    def update(tally, stats, hp):
        drawn = jnp.zeros(n_train).at[stats.ids].add(1.0)
        return Tally(tally.drawn + drawn, tally.expected + stats.ids.size * probs(tally))

    return curricula.Sampler(init=lambda key: Tally(jnp.zeros(n_train), jnp.zeros(n_train)),
                             env=lambda tally, base, step, hp: base.replace(probs=probs(tally)), update=update,
                             summary=lambda tally, hp: {"sampler_entropy": curricula.distribution_entropy(probs(tally))})


def even_ids_objective() -> Objective:
    """Weight 2 on targets with an even id, 0 on odd ones; its state adds up the weights the step reports."""
    return Objective(init=lambda key: (jnp.zeros(()), jnp.zeros(())),
                     weights=lambda state, loss, groups, ids, hp: jnp.where(ids % 2 == 0, 2.0, 0.0),
                     update=lambda state, stats, hp: (state[0] + jnp.sum(stats.weights), state[1] + jnp.sum(stats.ids % 2 == 0)))


def checksum(tree) -> jax.Array:
    """`[n]` one number per member of a stacked pytree: any change of its parameters changes it."""
    return sum(jnp.sum(leaf.reshape(leaf.shape[0], -1) * (1.0 + jnp.arange(leaf[0].size)), axis=1) for leaf in jax.tree.leaves(tree))


def recorder(n_senders: int, n_receivers: int) -> Intervention:
    """Before every step: each agent's parameter checksum and each receiver's Adam step count."""

    def update(own, state, key, step, hp):
        return {"senders": own["senders"].at[step].set(checksum(state.senders)),
                "receivers": own["receivers"].at[step].set(checksum(state.receivers)),
                "counts": own["counts"].at[step].set(state.receiver_opt.count)}, state

    return Intervention(init=lambda key, state: {"senders": jnp.zeros((STEPS, n_senders)), "receivers": jnp.zeros((STEPS, n_receivers)),
                                                 "counts": jnp.zeros((STEPS, n_receivers), jnp.int32)}, update=update)


class Composed(NamedTuple):
    trainer: lab.Trainer
    state: lab.TrainState
    history: dict


@pytest.fixture(scope="module")
def composed() -> Composed:
    cfg = lab.load(overrides=TINY + POPULATION)
    spec = Spec(cfg)
    trainer = lab.make_trainer(cfg, sampler=least_seen_sampler(len(spec.world.train)), objective=even_ids_objective(),
                               interventions={"reset": reset_receivers(spec), "recorder": recorder(2, 3)})
    keys = lab.seed_keys(cfg)
    state, history = jax.jit(jax.vmap(trainer.train))(keys, lab.hparams_from_config(cfg, len(keys)))
    return Composed(trainer, jax.device_get(state), jax.device_get(history))


def test_draws_follow_the_samplers_probabilities(composed):
    tally = composed.state.components["sampler"]
    drawn, expected = np.asarray(tally.drawn), np.asarray(tally.expected)
    assert drawn.sum(axis=1).tolist() == [STEPS * 2 * 16] * 2  # steps x pairs x batch, per seed
    assert np.all(drawn[:, ALLOWED:] == 0), "drew an object the sampler gave probability 0"
    assert np.all(np.abs(drawn - expected) <= 4 * np.sqrt(expected) + 2), (drawn, expected)
    # the sampler moved with what it saw: its probabilities were not the uniform ones throughout
    assert np.all(np.abs(expected[:, :ALLOWED] - drawn.sum(axis=1, keepdims=True) / ALLOWED).max(axis=1) > 0.5)
    assert "sampler_entropy" in composed.history["batch"]


def test_the_objectives_weights_are_the_ones_the_step_used(composed):
    weight_sum, even = np.asarray(composed.state.components["objective"][0]), np.asarray(composed.state.components["objective"][1])
    np.testing.assert_allclose(weight_sum, 2.0 * even)
    assert np.all(even > 0) and np.all(even < STEPS * 2 * 16)


def test_receivers_are_reset_and_refitted_every_k_steps(composed):
    counts = np.asarray(composed.state.components["recorder"]["counts"])  # [seeds, step, receiver], recorded after the reset
    for step in range(RESET_EVERY, STEPS, RESET_EVERY):
        assert np.all(counts[:, step] == 2 * WINDOW), (step, counts[:, step])  # fresh Adam, then 2 x window refit steps
    assert np.all(counts[:, 0] == 0)
    # between resets a receiver's count grows by one exactly on the steps it plays (round robin: i + step mod 3)
    for step in range(STEPS - 1):
        if (step + 1) % RESET_EVERY:
            played = np.isin(np.arange(3), [step % 3, (step + 1) % 3])
            np.testing.assert_array_equal(counts[:, step + 1] - counts[:, step], np.broadcast_to(played, (2, 3)))


def test_a_receiver_changes_only_on_steps_where_it_was_paired(composed):
    record = composed.state.components["recorder"]
    receivers, senders = np.asarray(record["receivers"]), np.asarray(record["senders"])
    for step in range(STEPS - 1):
        assert np.all(senders[:, step + 1] != senders[:, step])  # every sender plays every step
        if (step + 1) % RESET_EVERY:
            played = np.isin(np.arange(3), [step % 3, (step + 1) % 3])
            changed = receivers[:, step + 1] != receivers[:, step]
            np.testing.assert_array_equal(changed, np.broadcast_to(played, (2, 3)), err_msg=f"step {step}")


def test_population_evaluates_every_pair(composed):
    history = composed.history
    assert history["train"]["accuracy"].shape == (2, 3, 2, 3)  # [seeds, evaluations, senders, receivers]
    assert history["train"]["topsim"].shape == (2, 3, 2)  # the sender's own measures: [seeds, evaluations, senders]
    np.testing.assert_allclose(history["train"]["loss"], history["train"]["l_info"][..., None] + history["train"]["l_adapt"], atol=1e-4)
    table = lab.results.tidy(history, composed.trainer.eval_steps, [0, 1], (2, 3))
    pairs = table[(table.metric == "accuracy") & (table.split == "train")]
    assert len(pairs) == 2 * 3 * 6 and set(zip(pairs.sender, pairs.receiver)) == {(s, r) for s in range(2) for r in range(3)}
    assert table[table.metric == "topsim"]["receiver"].isna().all()


# -- per-example weights reach both losses ------------------------------------------------------------


def test_zero_weights_remove_examples_from_both_gradients():
    """With weight 0 on odd ids, changing what those targets are no longer moves the sender's or the receiver's gradient."""
    cfg = lab.load(overrides=TINY + ["train.seeds=1"])
    uniform = lab.make_trainer(cfg)
    weighted = lab.make_trainer(cfg, objective=Objective(init=lambda key: (), update=lambda state, stats, hp: state,
                                                         weights=lambda state, loss, groups, ids, hp: jnp.where(ids % 2, 0.0, 2.0)))
    hp = lab.hparams_from_config(cfg)
    state = uniform.init(jax.random.key(0), hp)
    draw = uniform.draw(state, jax.random.key(1), jnp.int32(0), hp)
    odd = (draw.ids % 2 == 1)[..., None]
    changed = draw._replace(episodes=draw.episodes.replace(target=jnp.where(odd, (draw.episodes.target + 1) % 3, draw.episodes.target)))
    assert bool(odd.any()) and bool((~odd).any())

    def grads(trainer, draw):
        return jax.jit(jax.grad(lambda p: trainer.loss(p, state, draw, jax.random.key(2), hp)[0]))((state.senders, state.receivers))

    same, moved = grads(weighted, draw), grads(weighted, changed)
    for side in (0, 1):  # senders, receivers
        assert max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(same[side]), jax.tree.leaves(moved[side]))) < 1e-6
        erm, erm_moved = grads(uniform, draw)[side], grads(uniform, changed)[side]
        assert max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(erm), jax.tree.leaves(erm_moved))) > 1e-4
