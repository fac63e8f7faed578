"""lab.dro: the weight rules against independent computations, the objectives in the trainer, minmax selection, bad input.

The rules are checked on arrays (fast); one trainer is compiled for the module (an objective with a
curriculum, the reset control and a 2 x 2 population), one train_step for the weights-reach-the-
gradient test; tiny worlds (K=2..3, V=3..4), GRU-16.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lab
from curricula.base import Sampler, Stats
from games.fields import ConfigError
from lab import cli, dro
from lab.core.components import Objective
from lab.core.hparams import hparams_from_config, with_values
from lab.core.trainer import seed_keys
from lab.experiment import selection
from lab.experiment.build import make_trainer
from lab.experiment.execute import train_runs

TINY = ["game.n_attributes=2", "game.n_values=4", "agents.hidden_size=16", "agents.embedding_size=8",
        "agents.vocab_size=8", "agents.max_len=3", "train.batch_size=32", "train.seeds=2", "train.lr=0.01",
        "train.steps=20", "train.eval_every=10"]


# -- the weight rules on arrays -------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("n, alpha", [(20, 0.1), (20, 0.25), (64, 0.5), (10, 1.0)])
def test_cvar_is_the_mean_of_the_top_alpha_fraction(seed, n, alpha):
    losses = np.random.default_rng(seed).exponential(size=n).astype(np.float32)
    w = np.asarray(dro.cvar_weights(jnp.asarray(losses), alpha))
    top = np.sort(losses)[::-1][: round(alpha * n)]
    assert np.mean(w * losses) == pytest.approx(top.mean(), rel=1e-5)
    assert w.mean() == pytest.approx(1.0, rel=1e-6) and w.min() >= 0 and w.max() <= 1 / alpha + 1e-5


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("n, alpha", [(7, 0.2), (30, 0.33), (5, 0.05)])
def test_cvar_matches_rockafellar_uryasev_when_alpha_n_is_fractional(seed, n, alpha):
    losses = np.random.default_rng(seed).normal(size=n)
    w = np.asarray(dro.cvar_weights(jnp.asarray(losses, jnp.float32), alpha))
    # CVaR_alpha = min_eta eta + E[(l - eta)+] / alpha, a piecewise-linear function minimised at one of the losses
    ru = min(eta + np.mean(np.maximum(losses - eta, 0.0)) / alpha for eta in losses)
    assert np.mean(w * losses) == pytest.approx(ru, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("tau", [0.05, 0.3, 1.0, 10.0])
def test_kl_dro_weights_are_n_softmax_of_loss_over_tau(tau):
    losses = np.random.default_rng(0).exponential(size=(3, 16))  # three batches
    expected = np.exp((losses - losses.max(-1, keepdims=True)) / tau)
    expected = 16 * expected / expected.sum(-1, keepdims=True)
    w = np.asarray(dro.kl_dro_weights(jnp.asarray(losses, jnp.float32), tau))
    np.testing.assert_allclose(w, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(w.mean(-1), 1.0, rtol=1e-5)


def test_kl_dro_goes_from_the_worst_example_to_erm():
    losses = jnp.asarray([0.5, 2.0, 1.0, 0.1])
    assert np.asarray(dro.kl_dro_weights(losses, 1e-3)) == pytest.approx([0, 4, 0, 0], abs=1e-4)
    assert np.asarray(dro.kl_dro_weights(losses, 1e4)) == pytest.approx([1, 1, 1, 1], abs=1e-3)


def synthetic_group_batches(key, n_steps, batch, means, probs):
    """Batches of (groups, losses): group g drawn with probs[g], its losses N(means[g], 0.5)."""
    key_g, key_l = jax.random.split(key)
    groups = jax.random.choice(key_g, len(means), (n_steps, batch), p=jnp.asarray(probs))
    losses = jnp.asarray(means)[groups] + 0.5 * jax.random.normal(key_l, (n_steps, batch))
    return groups, losses


@pytest.mark.parametrize("seed", range(3))
def test_group_dro_moves_the_weight_to_the_group_with_the_highest_loss(seed):
    # the worst group (2) is also the rarest: its examples must end up weighing the most
    means, probs = [1.0, 0.5, 1.5], [0.6, 0.3, 0.1]
    groups, losses = synthetic_group_batches(jax.random.key(seed), 300, 64, means, probs)
    objective = dro.group_dro(3)
    hp = {"eta": jnp.asarray(0.05)}
    state = objective.init(jax.random.key(0))
    weights, update = jax.jit(objective.weights), jax.jit(objective.update)
    q_history = []
    for g, l in zip(groups, losses):
        w = weights(state, l, g, jnp.zeros_like(g), hp)
        assert float(w.mean()) == pytest.approx(1.0, rel=1e-5)
        state = update(state, Stats(ids=g, groups=g, loss=l, correct=l < 0, weights=w, step=0), hp)
        q_history.append(np.asarray(state["q"]))
    q = np.stack(q_history)
    assert q[0, 2] < q[50, 2] < q[100, 2] and q[-1, 2] > 0.95  # from 1/3 to (nearly) all of the mass
    assert np.all(w[g == 2] > 5 * w[g == 0].max())  # per example: the rare worst group weighs the most
    summary = objective.summary(state, hp)
    assert float(summary["group_weight_2"]) == pytest.approx(q[-1, 2]) and float(summary["weight_max"]) > 5


def test_group_dro_weighted_loss_is_the_q_weighted_sum_of_group_losses():
    rng = np.random.default_rng(0)
    groups, losses = jnp.asarray(rng.integers(0, 3, 40)), jnp.asarray(rng.exponential(size=40), jnp.float32)
    q = jnp.asarray([0.2, 0.5, 0.3])
    group_loss, counts = dro.group_losses(losses, groups, 3)
    w = dro.group_dro_weights(q, groups, counts)
    expected = sum(float(q[g]) * float(losses[groups == g].mean()) for g in range(3))
    assert float(jnp.mean(w * losses)) == pytest.approx(expected, rel=1e-5)
    # Sagawa et al.'s step: q_g exp(eta L_g), normalised
    step = np.asarray(q) * np.exp(0.1 * np.asarray(group_loss))
    np.testing.assert_allclose(dro.group_dro_update(q, group_loss, 0.1), step / step.sum(), rtol=1e-5)


def test_group_dro_weights_keep_mean_one_when_a_group_is_absent():
    groups, losses = jnp.asarray([0, 0, 2, 2, 2]), jnp.asarray([1.0, 2.0, 0.5, 0.5, 3.0])
    _, counts = dro.group_losses(losses, groups, 3)
    w = dro.group_dro_weights(jnp.asarray([0.2, 0.6, 0.2]), groups, counts)
    assert float(w.mean()) == pytest.approx(1.0) and float(w[0]) == pytest.approx(float(w[2]) * 3 / 2)


@pytest.mark.parametrize("shape", [(1, 7), (4, 32), (2, 3, 5)])
def test_rp_dro_ratios_have_mean_one_per_batch(shape):
    log_ratios = 3.0 * jax.random.normal(jax.random.key(1), shape)
    np.testing.assert_allclose(np.asarray(dro.batch_ratios(log_ratios)).mean(-1), 1.0, rtol=1e-5)


# RP-DRO's adversary against fixed losses: 9 objects (K=2, V=3), loss a fixed function of the object
OBJECTS = jnp.asarray([[a, b] for a in range(3) for b in range(3)])


def one_hot(objects, n_values):
    """What the agents (and the adversary) see of objects `[n, K]`: one-hot attributes `[n, K * V]`."""
    return jax.nn.one_hot(objects, n_values).reshape(len(objects), -1)


OBJECT_LOSS = jnp.asarray([0.2, 1.5, 0.4, 0.9, 0.1, 2.0, 0.3, 0.6, 1.2])


def train_adversary(taus, steps=1500, lr=0.03):
    """The adversary's weights on all 9 objects after `steps` simultaneous-style steps, one run per tau (vmapped)."""
    objective = dro.rp_dro(one_hot(OBJECTS, 3), hidden=32, n_pairs=3)
    ids = jnp.tile(jnp.arange(9), 3)  # three pairs' batches, each every object once
    stats = Stats(ids=ids, groups=jnp.zeros_like(ids), loss=OBJECT_LOSS[ids], correct=ids < 0, weights=jnp.ones(27), step=0)

    def run(tau):
        hp = {"tau": tau, "adversary_lr": jnp.asarray(lr)}
        state = jax.lax.fori_loop(0, steps, lambda _, s: objective.update(s, stats, hp), objective.init(jax.random.key(0)))
        return objective.weights(state, OBJECT_LOSS, None, jnp.arange(9), hp), objective.summary(state, hp)

    return jax.jit(jax.vmap(run))(jnp.asarray(taus, jnp.float32))


@pytest.fixture(scope="module")
def adversaries():
    taus = [0.3, 1.0, 3.0, 100.0]
    return taus, *train_adversary(taus)


def test_rp_dro_adversary_reaches_the_kl_dro_optimum(adversaries):
    # max_r mean(r l) - tau mean(r log r) over mean-1 ratios is r = n softmax(l / tau): an expressive adversary finds it
    taus, weights, _ = adversaries
    for tau, w in zip(taus[:3], np.asarray(weights)[:3]):
        np.testing.assert_allclose(w, dro.kl_dro_weights(OBJECT_LOSS, tau), rtol=0.05, atol=0.02)


def test_rp_dro_ratios_become_uniform_as_tau_grows(adversaries):
    taus, weights, summary = adversaries
    kl = np.asarray(summary["weight_kl"])
    assert np.all(np.diff(kl) < 0) and kl[0] > 0.1 and kl[-1] < 1e-3
    np.testing.assert_allclose(np.asarray(weights)[-1], 1.0, atol=0.02)
    np.testing.assert_allclose(np.asarray(weights).mean(-1), 1.0, rtol=1e-5)
    assert np.all(np.asarray(summary["adversary_gain"])[:3] > 0)  # it raises the loss it weighs


def test_rp_dro_starts_as_erm():
    objective = dro.rp_dro(one_hot(OBJECTS, 3), hidden=8)
    w = objective.weights(objective.init(jax.random.key(3)), OBJECT_LOSS, None, jnp.arange(9), {})
    np.testing.assert_array_equal(w, np.ones(9))


# -- minmax selection -------------------------------------------------------------------------------


def test_minmax_selects_the_model_robust_to_the_adversary():
    probs = np.asarray([0.48, 0.48, 0.04])  # object 2 is rare
    errors = np.asarray([[0.0, 0.0, 1.0],   # model 0: best on average (0.04), fails the rare object
                         [0.2, 0.2, 0.2]])  # model 1: worse on average (0.2), no weak spot
    toward_rare = np.log([[1.0, 1.0, 10.0]])  # an adversary tilting p toward object 2, KL 0.37 < log 10
    best, robust, kept = dro.minmax_select(errors, toward_rare, probs)
    assert best == 1 and bool(kept[0])
    r = np.asarray([1.0, 1.0, 10.0]) / np.dot(probs, [1.0, 1.0, 10.0])
    np.testing.assert_allclose(robust, [np.dot(probs * r, errors[0]), 0.2], rtol=1e-5)
    # all of the mass on object 2 is KL log 25 > log 10: rejected, and only the uniform weighting (always in the pool) is left
    best, robust, kept = dro.minmax_select(errors, np.log([[1e-6, 1e-6, 1.0]]), probs)
    assert not bool(kept[0]) and best == 0 and np.asarray(robust) == pytest.approx([0.04, 0.2])
    best, robust, _ = dro.minmax_select(errors, np.zeros((0, 3)), probs)  # no adversary: the error under p
    assert best == 0 and np.asarray(robust) == pytest.approx([0.04, 0.2])


# -- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("override, match", [
    ("objective.alpha=0", r"^objective.alpha=0.0: must be in \(0.0, 1.0\]$"),
    ("objective.alpha=1.5", r"^objective.alpha=1.5: must be in \(0.0, 1.0\]$"),
    ("objective.eta=0", r"^objective.eta=0.0: must be > 0.0$"),
    ("objective.eta=-0.1", r"^objective.eta=-0.1: must be > 0.0$"),
    ("objective.tau=0", r"^objective.tau=0.0: must be > 0.0$"),
    ("objective.tau=-1", r"^objective.tau=-1.0: must be > 0.0$"),
    ("objective.adversary_lr=0", r"^objective.adversary_lr=0.0: must be > 0.0$"),
    ("objective.kind=dro", r"^objective.kind='dro': allowed values are erm, group_dro, cvar, kl_dro, rp_dro$"),
    ("game.group_attribute=2", r"^game.group_attribute=2: no such attribute; allowed 0..1"),
])
def test_bad_knobs_name_the_field(override, match):
    with pytest.raises(ConfigError, match=match):
        lab.load(overrides=TINY + [override])


def test_group_dro_without_groups_and_too_many_bins_are_errors():
    with pytest.raises(ConfigError, match=r"^objective.kind='group_dro' needs groups: set game.groups"):
        lab.load(overrides=TINY + ["objective.kind=group_dro"])
    with pytest.raises(ConfigError, match=r"^game.frequency_bins=20: more bins than the 13 train objects"):
        lab.load(overrides=TINY + ["game.distribution=zipf", "game.groups=frequency", "game.frequency_bins=20"])
    one_group = lab.load(overrides=TINY + ["objective.kind=group_dro", "game.groups=given"])
    with pytest.raises(ConfigError, match="at least two"):
        make_trainer(one_group, groups=np.zeros(16, int))


@pytest.mark.parametrize("overrides, field", [
    (["objective.kind=cvar", "objective.alpha=2"], "objective.alpha=2.0"),
    (["objective.kind=group_dro", "objective.eta=-1", "game.groups=attribute"], "objective.eta=-1.0"),
    (["objective.kind=kl_dro", "objective.tau=0"], "objective.tau=0.0"),
    (["game.groups=attribute", "game.group_attribute=7"], "game.group_attribute=7"),
    (["game.groups=attribute", "game.n_objects=3", "game.split=none"], "game.group_attribute=0: value"),  # an empty group
])
def test_lab_run_exits_2_with_one_line_naming_the_field(overrides, field, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["run", "--out", str(out), "--quiet", *TINY, *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and field in err and err.startswith("lab run: error:")
    assert not out.exists()


# -- in the trainer --------------------------------------------------------------------------------------


def half_sampler(n_train: int) -> Sampler:
    """A test curriculum: targets from the first half of the train objects only, every example weighing 2; counts draws."""
    support = jnp.arange(n_train) < n_train // 2

    def env(state, base, step, hp):
        probs = jnp.where(support, base.probs, 0.0)
        return base.replace(probs=probs / probs.sum())

    return Sampler(init=lambda key: jnp.zeros(n_train), env=env,
                   update=lambda counts, stats, hp: counts + jnp.bincount(stats.ids, length=n_train),
                   weights=lambda state, ids, step, hp: jnp.full(ids.shape, 2.0))


COMPOSED = TINY + ["game.n_attributes=3", "game.n_values=3", "game.distribution=zipf", "game.groups=frequency",
                   "game.frequency_bins=3", "objective.kind=rp_dro", "interventions.reset=true", "interventions.reset_every=10",
                   "interventions.refit_steps=10", "population.n_senders=2", "population.n_receivers=2"]


@pytest.fixture(scope="module")
def composed():
    """rp_dro x a curriculum x the reset control x a 2 x 2 population, one run per tau (vmapped), with snapshots."""
    cfg = lab.load(overrides=COMPOSED)
    trainer = make_trainer(cfg, sampler=half_sampler(cfg.game.n_train))
    keys = seed_keys(cfg)
    hp = with_values(hparams_from_config(cfg, 2), {"objective.tau": [0.01, 1.0]})
    snapshots = selection.Snapshots()
    init = jax.jit(jax.vmap(lambda k, h: trainer.init(trainer.run_keys(k)[0], h)))(keys, hp)
    state, history = train_runs(trainer, keys, hp, on_block=snapshots)
    return cfg, trainer, jax.device_get(init), state, history, snapshots


def test_an_objective_composes_with_a_curriculum_a_control_and_a_population(composed):
    cfg, trainer, init, state, history, _ = composed
    n_train = cfg.game.n_train
    batch = history["batch"]
    # the curriculum chose the targets: only the first half was drawn, 20 steps x 2 pairs x 32 games
    counts = np.asarray(state.components["sampler"])
    assert np.all(counts[:, n_train // 2:] == 0) and np.all(counts.sum(-1) == 20 * 2 * 32)
    # sampler weights (2) times the adversary's mean-1 ratios (per pair's batch)
    np.testing.assert_allclose(batch["weight_mean"][:, 1:], 2.0, rtol=1e-5)
    assert np.all(np.isfinite(batch["weight_kl"][:, 1:])) and np.all(batch["weight_kl"][:, 1:] >= 0)
    assert np.all(batch["refit_steps"][:, 2] > 0)  # the reset control refitted the receivers at step 10
    # the adversary learned, and the two taus (vmapped) gave it different weights
    moved = np.abs(state.components["objective"]["params"]["w_out"] - init.components["objective"]["params"]["w_out"]).max(-1)
    assert np.all(moved > 0) and batch["weight_kl"][0, -1] != batch["weight_kl"][1, -1]
    # the world's frequency groups reach the evaluation, per pair of the population
    for split in ("train", "test"):
        assert history[split]["worst_group_accuracy"].shape == (2, 3, 2, 2)
    assert np.all(history["train"]["worst_group_accuracy"] <= history["train"]["accuracy"] + 1e-6)


def test_minmax_selection_over_the_snapshots(composed):
    cfg, trainer, _, _, history, snapshots = composed
    assert snapshots.steps == [10, 20]
    chosen = selection.select(trainer, snapshots)
    assert chosen.robust.shape == (2, 2) and set(chosen.step) <= {10, 20}
    assert chosen.correct["train"].shape == (2, 2, cfg.game.n_train)
    # the uniform weighting is in the pool: a robust score is at least the error under the training distribution
    p_error = (1.0 - chosen.correct["train"]) @ np.asarray(trainer.world.train_probs)
    assert np.all(chosen.robust >= p_error - 1e-6)
    np.testing.assert_array_equal(chosen.index, np.argmin(chosen.robust, axis=1))
    # the last snapshot is the final state: its accuracy is the evaluation's (greedy, every train object, pairs averaged)
    np.testing.assert_allclose(chosen.correct["train"][:, -1].mean(-1), history["train"]["accuracy"][:, -1].mean((-1, -2)),
                               atol=1e-6)


def test_zero_weight_removes_an_example_from_both_gradients():
    # an objective that keeps only the targets whose attribute 0 has value 0 (or, in state 1, none at all)
    cfg = lab.load(overrides=TINY + ["train.seeds=1", "agents.hidden_size=8"])
    trainer = make_trainer(cfg)
    objects = jnp.asarray(trainer.world.train_objects)

    def weights(state, loss, groups, ids, hp):
        return jnp.where((objects[ids, 0] == 0) & (state == 0), 1.0, 0.0)

    trainer = make_trainer(cfg, objective=Objective(init=lambda key: jnp.zeros((), jnp.int32), weights=weights,
                                                    update=lambda state, stats, hp: state))
    hp = hparams_from_config(cfg)
    state = trainer.init(jax.random.key(0), hp)
    step = jax.jit(lambda s: trainer.train_step(s, jax.random.key(1), jnp.asarray(0), hp)[0])
    after = step(state)
    kernel = lambda s: np.asarray(s.senders["encoder"]["kernel"][0]).reshape(2, 4, -1)  # noqa: E731  [K, V, H]
    changed = np.abs(kernel(after) - kernel(state)).max(-1)  # [K, V]
    assert changed[0, 0] > 0 and np.all(changed[0, 1:] == 0)  # only value 0 of attribute 0 was weighed
    receiver_moved = lambda a, b: max(float(np.abs(x - y).max()) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))  # noqa: E731
    assert receiver_moved(after.receivers, state.receivers) > 0
    nothing = step(state.with_components(objective=jnp.ones((), jnp.int32)))
    assert receiver_moved(nothing.receivers, state.receivers) == 0 and receiver_moved(nothing.senders, state.senders) == 0
