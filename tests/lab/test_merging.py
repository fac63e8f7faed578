"""lab.merging: the merges' identities on synthetic pytrees, bad input, lineage, the reward terms, and trained agents.

Trained fixture (compiled once): K=2, V=4 (16 objects: 10 trained on, 3 held out for
validation, 3 in the compositional test split), GRU-32. Three pairs trained from independent
random starts, then two fine-tunings of each from it (the same compiled program, continued
from given parameters). A second tiny trainer (EMA anchor + KL penalty, an evaluation every
step) checks the EMA's formula and WARP's loop.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lab
from lab import merging as M
from lab.core.estimators import Context
from lab.core.hparams import hparams_from_config, with_values
from lab.core.rollout import rollout
from lab.core.trainer import seed_keys
from lab.experiment import cache, checkpoint
from lab.merging import lineage, rewards

cache.enable()  # the fine-tunings reuse the pretraining's compiled block

# -- synthetic pytrees -------------------------------------------------------------------------------


def tree(seed, scale=1.0):
    rng = np.random.default_rng(seed)
    return {"layer": {"kernel": jnp.asarray(scale * rng.normal(size=(4, 3)), jnp.float32),
                      "bias": jnp.asarray(scale * rng.normal(size=3), jnp.float32)},
            "head": jnp.asarray(scale * rng.normal(size=(5,)), jnp.float32)}


def leaves_equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_interpolation_returns_the_endpoints_exactly():
    a, b = tree(0), tree(1)
    assert leaves_equal(M.interpolate(a, b, 0.0), a)
    assert leaves_equal(M.interpolate(a, b, 1.0), b)
    assert leaves_equal(M.interpolate(a, a, 0.37), a)
    for x, y, z in zip(jax.tree.leaves(a), jax.tree.leaves(b), jax.tree.leaves(M.interpolate(a, b, 0.3))):
        np.testing.assert_allclose(z, 0.7 * np.asarray(x) + 0.3 * np.asarray(y), rtol=1e-6, atol=1e-6)


def test_soup_of_identical_agents_is_the_agent():
    a = tree(0)
    assert leaves_equal(M.uniform_soup([a] * 5), a)
    soup = M.uniform_soup([tree(0), tree(1), tree(2)])
    for s, *xs in zip(jax.tree.leaves(soup), *(jax.tree.leaves(tree(i)) for i in range(3))):
        np.testing.assert_allclose(s, np.mean(xs, axis=0), rtol=1e-5, atol=1e-6)


def equal_norm_task_vectors():
    """An ancestor and two task vectors of equal norm per leaf, at an angle of about 60-120 degrees."""
    ancestor, d1, d2 = tree(0), tree(1), tree(2)
    d2 = jax.tree.map(lambda u, v: v * jnp.linalg.norm(u) / jnp.linalg.norm(v), d1, d2)
    add = lambda x, d: jax.tree.map(jnp.add, x, d)  # noqa: E731
    return ancestor, add(ancestor, d1), add(ancestor, d2)


@pytest.mark.parametrize("alpha", [0.25, 0.5, 0.8])
def test_slerp_keeps_the_norm_of_equal_norm_task_vectors(alpha):
    ancestor, a, b = equal_norm_task_vectors()
    merged = M.task_vector(M.slerp(a, b, alpha, ancestor), ancestor)
    linear = M.task_vector(M.interpolate(a, b, alpha), ancestor)
    for delta, lin, end in zip(jax.tree.leaves(merged), jax.tree.leaves(linear), jax.tree.leaves(M.task_vector(a, ancestor))):
        np.testing.assert_allclose(np.linalg.norm(delta), np.linalg.norm(end), rtol=1e-4)
        assert np.linalg.norm(lin) < 0.99 * np.linalg.norm(end)  # LERP shrinks what SLERP keeps


def test_slerp_endpoints_known_value_and_lerp_fallback():
    ancestor, a, b = equal_norm_task_vectors()
    assert leaves_equal(M.slerp(a, b, 0.0, ancestor), a) and leaves_equal(M.slerp(a, b, 1.0, ancestor), b)
    # orthogonal unit task vectors: the middle of the arc is (d1 + d2) / sqrt(2)
    zero = {"w": jnp.zeros(2)}
    middle = M.slerp({"w": jnp.array([1.0, 0.0])}, {"w": jnp.array([0.0, 1.0])}, 0.5, zero)
    np.testing.assert_allclose(middle["w"], [2 ** -0.5, 2 ** -0.5], rtol=1e-6)
    # parallel task vectors, or a leaf that fine-tuning left unchanged: no angle, LERP
    one = {"w": jnp.array([1.0, 2.0]), "frozen": jnp.zeros(3)}
    two = {"w": jnp.array([3.0, 6.0]), "frozen": jnp.zeros(3)}
    base = {"w": jnp.zeros(2), "frozen": jnp.zeros(3)}
    for x, y in zip(jax.tree.leaves(M.slerp(one, two, 0.25, base)), jax.tree.leaves(M.interpolate(one, two, 0.25))):
        np.testing.assert_allclose(x, y, rtol=1e-6)


def test_slerp_soup_of_m_agents_keeps_the_norm_of_orthonormal_task_vectors():
    zero = {"w": jnp.zeros(3)}
    agents = [{"w": jnp.eye(3)[i]} for i in range(3)]
    merged = M.slerp_soup(agents, zero)["w"]
    np.testing.assert_allclose(np.linalg.norm(merged), 1.0, rtol=1e-5)
    # folded in one at a time: e3 joins the arc midpoint of e1, e2 (90 degrees away) a third of the way, 30 degrees
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    np.testing.assert_allclose(merged, [c / 2 ** 0.5, c / 2 ** 0.5, s], rtol=1e-5)


def test_liti_and_task_vectors():
    ancestor, agent = tree(0), tree(1)
    assert leaves_equal(M.liti(agent, ancestor, 0.0), ancestor) and leaves_equal(M.liti(agent, ancestor, 1.0), agent)
    back = jax.tree.map(jnp.add, ancestor, M.task_vector(agent, ancestor))
    for x, y in zip(jax.tree.leaves(back), jax.tree.leaves(agent)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6)
    step = M.liti(agent, ancestor, 0.3)
    for s, x0, x in zip(jax.tree.leaves(step), jax.tree.leaves(ancestor), jax.tree.leaves(agent)):
        np.testing.assert_allclose(s, 0.7 * np.asarray(x0) + 0.3 * np.asarray(x), rtol=1e-5, atol=1e-6)


def test_bad_input_names_the_argument():
    a, b = tree(0), tree(1)
    other = {**b, "extra": jnp.zeros(1)}
    reshaped = {**b, "head": jnp.zeros(6)}
    with pytest.raises(ValueError, match=r"^b: its pytree structure differs.*extra"):
        M.interpolate(a, other, 0.5)
    with pytest.raises(ValueError, match=r"^b: leaf \['head'\] has shape \(6,\), a's has \(5,\)"):
        M.interpolate(a, reshaped, 0.5)
    for alpha in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"^alpha=.*must be in \[0, 1\]"):
            M.interpolate(a, b, alpha)
        with pytest.raises(ValueError, match=r"^alpha="):
            M.slerp(a, b, alpha, tree(2))
    with pytest.raises(ValueError, match=r"^eta="):
        M.liti(a, b, 2.0)
    with pytest.raises(ValueError, match=r"^agents: the list of agents is empty"):
        M.uniform_soup([])
    with pytest.raises(ValueError, match=r"^agents\[2\]: leaf"):
        M.uniform_soup([a, b, reshaped])
    with pytest.raises(ValueError, match=r"^ancestor: its pytree structure"):
        M.slerp(a, b, 0.5, other)
    with pytest.raises(ValueError, match=r"^agent: leaf"):
        M.task_vector(reshaped, a)
    with pytest.raises(ValueError, match=r"^agents: expected a list"):
        M.uniform_soup(a)


def test_pareto_front():
    points = np.array([[1, 1], [2, 0], [0, 2], [0.5, 0.5], [2, 0]])
    np.testing.assert_array_equal(M.pareto(points, (True, True)), [True, True, True, False, True])
    np.testing.assert_array_equal(M.pareto(points, (False, False)), [False, True, True, True, True])
    np.testing.assert_array_equal(M.pareto(points, (True, False)), [False, True, False, False, True])


def test_lineage_round_trip_and_warning(tmp_path):
    a, b = tree(0), tree(1)
    assert M.digest(a) == M.digest(tree(0)) != M.digest(b)
    runs = lineage.fine_tuned_from(a, "pretrained seed 0", 2) + [lineage.Lineage()]
    senders = {"w": np.zeros((3, 1, 2), np.float32)}
    path = tmp_path / "checkpoint.npz"
    checkpoint.save(path, senders, senders, [0, 1, 2], extra=lineage.extra(runs))
    assert checkpoint.lineages(path) == runs
    checkpoint.save(path, senders, senders, [0, 1, 2])
    assert checkpoint.lineages(path) == [lineage.Lineage()] * 3  # no record: trained from scratch
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert M.check_common(runs[:2])
    with pytest.warns(M.MergeWarning, match="without a common trained ancestor"):
        assert not M.check_common(runs)
    with pytest.warns(M.MergeWarning):
        assert not M.check_common(runs[:1] + lineage.fine_tuned_from(b, "another"))


def levenshtein(a, b) -> int:
    d = np.arange(len(b) + 1)
    for i, x in enumerate(a, 1):
        prev, d[0] = d.copy(), i
        for j, y in enumerate(b, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (x != y))
    return int(d[-1])


def test_message_topsim_against_numpy():
    rng = np.random.default_rng(0)
    objects = rng.integers(0, 3, size=(12, 3))
    messages = rng.integers(0, 4, size=(12, 4))
    got = np.asarray(rewards.message_topsim(jnp.asarray(objects), jnp.asarray(messages)))
    content = [list(m[: np.argmax(m == 0)] if (m == 0).any() else m) for m in messages]
    for b in range(12):
        others = [j for j in range(12) if j != b]
        hamming = [np.sum(objects[b] != objects[j]) for j in others]
        edit = [levenshtein(content[b], content[j]) for j in others]
        expected = np.corrcoef(hamming, edit)[0, 1] if np.std(edit) > 0 else 0.0
        np.testing.assert_allclose(got[b], expected, atol=1e-5)


# -- trained agents ----------------------------------------------------------------------------------

BASE = ["game.n_attributes=2", "game.n_values=4", "agents.hidden_size=32", "agents.embedding_size=16",
        "agents.vocab_size=8", "agents.max_len=3", "train.batch_size=64", "train.lr=0.01", "train.steps=300",
        "train.eval_every=100", "merge.validation=0.2"]
N_ANCESTORS, N_TUNED = 3, 2


@pytest.fixture(scope="module")
def trained():
    n = N_ANCESTORS * N_TUNED  # every call trains n runs of 300 steps: one compiled program for all three
    config = lab.load(overrides=BASE + [f"train.seeds={n}"])
    trainer = lab.make_trainer(config)
    hp = hparams_from_config(config, n)
    scratch = M.Pair(*jax.vmap(trainer.agents.init)(jax.random.split(jax.random.key(0), n)))
    pretrained, _ = lab.fine_tune(trainer, seed_keys(config), hp, scratch)  # 300 steps from independent random starts
    pretrained, _ = lab.fine_tune(trainer, seed_keys(config), hp, pretrained)  # 300 more
    ancestors = M.unstack(pretrained)[:N_ANCESTORS]
    starts = M.stack([a for a in ancestors for _ in range(N_TUNED)])
    tuned_hp = with_values(hp, {"train.lr": jnp.tile(jnp.array([0.005, 0.01]), N_ANCESTORS)})
    tuned, _ = lab.fine_tune(trainer, jax.random.split(jax.random.key(7), n), tuned_hp, starts)
    return dict(judge=M.Judge(trainer.spec), ancestors=ancestors, tuned=M.unstack(tuned))


def tuned_from(trained, a):
    return trained["tuned"][a * N_TUNED:(a + 1) * N_TUNED]


@pytest.mark.parametrize("side", M.connectivity.SIDES)
def test_barrier_of_an_agent_with_itself_is_zero(trained, side):
    a = trained["tuned"][0]
    c = M.curve(trained["judge"], a, a, side)
    for split, values in M.barriers(c).items():
        assert values == {"accuracy": 0.0, "loss": 0.0}, (split, values)


def test_curve_endpoints_are_the_agents(trained):
    judge, a, b = trained["judge"], *trained["ancestors"][:2]
    c = M.curve(judge, a, b, "both")
    for split in judge.splits:
        for metric in ("accuracy", "loss", "topsim"):
            assert c.scores[split][metric][0] == pytest.approx(judge.pair(a)[split][metric], abs=1e-5)
            assert c.scores[split][metric][-1] == pytest.approx(judge.pair(b)[split][metric], abs=1e-5)


def test_shared_ancestor_is_connected_independent_starts_are_not(trained):
    """§0 of algorithms.md: fine-tunings of one ancestor average; agents from independent starts do not."""
    judge = trained["judge"]
    ancestors = trained["ancestors"]
    independent = [M.barrier(M.curve(judge, ancestors[i], ancestors[j]), "train")
                   for i, j in ((0, 1), (1, 2), (0, 2))]
    shared = [M.barrier(M.curve(judge, *tuned_from(trained, a)), "train") for a in range(N_ANCESTORS)]
    # measured 2026-12-03: shared [0.02, 0.14, 0.04], independent [0.30, 0.42, 0.60] (train accuracy)
    assert np.mean(shared) <= 0.15, shared
    assert np.mean(independent) >= np.mean(shared) + 0.2, (independent, shared)
    assert min(independent) > max(shared), (independent, shared)


@pytest.mark.parametrize("split", ["validation", "train"])
def test_greedy_soup_is_never_worse_than_the_best_single_on_its_held_out_set(trained, split):
    judge = trained["judge"]
    pool = trained["tuned"]
    soup = M.greedy_soup(judge, pool, split=split)
    singles = judge(M.stack(pool))[split]["accuracy"]
    assert soup.accuracy >= singles.max()
    assert soup.accuracy == pytest.approx(judge.pair(soup.pair)[split]["accuracy"])
    assert soup.chosen[0] == soup.order[0] and singles[soup.order[0]] == singles.max()


def test_ensemble_of_copies_is_the_pair(trained):
    judge, a = trained["judge"], trained["tuned"][0]
    alone = judge.pair(a)
    together = judge.ensemble(M.stack([a] * 3))  # the mean of three equal logits is the logit
    for split in judge.splits:
        assert together[split]["accuracy"] == pytest.approx(alone[split]["accuracy"], abs=1e-6)
        assert together[split]["loss"] == pytest.approx(alone[split]["loss"], abs=1e-4)


def test_merge_checks_the_lineage_and_reports_the_barrier(trained):
    judge = trained["judge"]
    ancestors = trained["ancestors"]
    with pytest.warns(M.MergeWarning, match="without a common trained ancestor"):
        merged = M.merge(judge, ancestors[:2], [lineage.Lineage()] * 2, split="train", max_barrier=1.0)
    # independent starts: a loss barrier (1.1-2.5 nats for the three pairs; accuracy's, 0.05-0.6, is too coarse)
    assert merged.barrier["train"]["loss"] >= 0.5 and not merged.common_ancestor
    family = tuned_from(trained, 0)
    record = lineage.fine_tuned_from(ancestors[0], "the fixture's ancestor 0", len(family))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        merged = M.merge(judge, family, record, method="slerp", ancestor=ancestors[0], split="train", max_barrier=1.0)
    assert merged.common_ancestor and set(merged.barrier) == set(judge.splits)
    pretend = lineage.fine_tuned_from(ancestors[0], "a pretend common ancestor", 2)
    with pytest.warns(M.MergeWarning, match="above merge.max_barrier"):
        M.merge(judge, ancestors[:2], pretend, split="train", max_barrier=0.0)


# -- the EMA anchor, the KL reward and WARP ----------------------------------------------------------

WARP = BASE[:-3] + ["train.steps=4", "train.eval_every=1", "interventions.ema=true", "interventions.ema_rate=0.3",
                    "merge.kl_beta=0.1", "merge.warp_agents=2", "merge.warp_iterations=2", "merge.liti_eta=0.3"]


@pytest.fixture(scope="module")
def warp_trainer():
    return lab.make_trainer(lab.load(overrides=WARP))


def test_ema_follows_its_formula(warp_trainer, trained):
    trainer, start = warp_trainer, trained["ancestors"][0]
    snapshots = []
    record = lambda i, state, metrics: snapshots.append(jax.device_get((state.senders, state.components["ema"]["senders"])))  # noqa: E731
    n = trainer.config.merge.warp_agents  # the shape WARP trains, so its test reuses this compiled program
    lab.fine_tune(trainer, jax.random.split(jax.random.key(3), n), hparams_from_config(trainer.config, n), M.repeat(start, n),
                on_block=record)
    params = [jax.tree.map(lambda leaf: np.broadcast_to(leaf, (n, 1, *leaf.shape)), start.sender)]
    params += [s for s, _ in snapshots[:-1]]  # theta_0 .. theta_T
    ema = params[0]
    mu = 0.3
    for t, (_, logged) in enumerate(snapshots[:-1]):
        ema = jax.tree.map(lambda slow, fast: (1 - mu) * slow + mu * fast, ema, params[t])  # before step t
        for x, y in zip(jax.tree.leaves(ema), jax.tree.leaves(logged)):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    moved = [np.abs(np.asarray(a) - np.asarray(b)).max() for a, b in zip(jax.tree.leaves(params[-1]), jax.tree.leaves(params[0]))]
    assert max(moved) > 0  # the sender did learn, so the check is not between constants


def test_kl_term_is_zero_at_the_anchor_and_minus_kl_on_average(warp_trainer, trained):
    trainer, pair = warp_trainer, trained["ancestors"][0]
    spec = trainer.spec
    term = rewards.kl_to_anchor(spec)
    assert term.reads == ("ema",)
    targets = jnp.asarray(np.repeat(spec.world.train_objects, 32, axis=0))
    episodes = spec.game.episodes(jax.random.key(1), spec.train_env, jnp.zeros(len(targets), jnp.int32))
    episodes = episodes.replace(target=targets)
    sender = spec.agents.sender(pair.sender)
    message = sender.sample(targets, jax.random.key(2))
    ro = rollout(spec.agents.receiver(pair.receiver), episodes, message, spec.game)

    def context(anchor):
        state = trainer.init(jax.random.key(0), hparams_from_config(trainer.config),
                             (jax.tree.map(lambda leaf: leaf[None], anchor), jax.tree.map(lambda leaf: leaf[None], pair.receiver)))
        return Context(sender, targets, None, state.step, jax.random.key(0), hparams_from_config(trainer.config),
                       {"ema": state.components["ema"]})

    np.testing.assert_allclose(term(ro, context(pair.sender)), 0.0, atol=1e-5)
    other = trained["ancestors"][1].sender  # another language: log(pi_ema / pi) < 0 on pi's own messages, on average
    assert float(jnp.mean(term(ro, context(other)))) < -0.5


def test_warp_loop_is_slerp_then_liti(warp_trainer, trained):
    trainer, start = warp_trainer, trained["ancestors"][0]
    result = lab.warp(trainer, jax.random.key(5), start)
    m = trainer.config.merge
    assert len(result.starts) == m.warp_iterations + 1 and len(result.merged) == m.warp_iterations
    for i in range(m.warp_iterations):
        runs = M.unstack(result.runs[i])
        assert len(runs) == m.warp_agents and not leaves_equal(runs[0], runs[1])
        expected = M.slerp_soup(runs, result.starts[i])
        for x, y in zip(jax.tree.leaves(result.merged[i]), jax.tree.leaves(expected)):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
        for x, y in zip(jax.tree.leaves(result.starts[i + 1]), jax.tree.leaves(M.liti(result.merged[i], result.starts[i], 0.3))):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="^trainer: WARP needs an EMA anchor"):
        lab.warp(lab.make_trainer(lab.load(overrides=BASE)), jax.random.key(0), start)


# -- the study's plan (its run is `lab study merging --small`) ----------------------------------------


def test_study_is_registered_and_its_population_is_as_described():
    from lab.report.studies import STUDIES
    from lab.report.studies import merging as study

    assert STUDIES["merging"] is study.merging
    from lab.experiment.grid import compile_groups, Cell

    for preset in ("small", "full"):
        configs = study.STUDY.configs(preset)
        tune = configs["fine-tune"]
        assert tune.merge.topsim_weight > 0 and configs["pretrain"].merge.topsim_weight == 0  # the term compiled in once
        assert configs["pretrain"].train.seeds == study.SIZES[preset]["ancestors"]
        runs, tuned = study.population(tune, 2, 3)
        assert len(runs) == len(tuned) == 2 * (3 + 2)
        length, structure = runs["kind"] == "length", runs["kind"] == "structure"
        np.testing.assert_array_equal([c.train.length_cost > 0 for c in tuned], length)
        np.testing.assert_array_equal([c.merge.topsim_weight > 0 for c in tuned], structure)
        assert runs[runs["kind"] == "diwa"]["lr"].nunique() > 1  # DiWA varies its hyperparameters
        assert len({c.train.seed for c in tuned}) == len(tuned)  # every fine-tuning its own seed
        assert len(compile_groups([Cell({}, c) for c in tuned])) == 1  # they differ in continuous fields only: one call


def test_the_study_report_opens_with_the_spread_of_single_fine_tunings_and_states_every_mde():
    import dataclasses

    import pandas as pd

    from lab.report.studies import common
    from lab.report.studies import merging as study

    rows = [{"condition": "single", "seed": a, "test accuracy spread": spread} for a, spread in enumerate((0.06, 0.1, 0.08))]
    rows += [{"condition": method, "seed": a, "test accuracy": 0.5 + 0.02 * i + 0.01 * a}
             for i, method in enumerate(study.METHODS) for a in range(3)]
    seeds = pd.DataFrame(rows)
    spec = dataclasses.replace(study.STUDY, notes=None)  # the notes read the trained grid's merge reports
    result = common.Result(spec, "full", {}, None, pd.DataFrame(), seeds, common.judge_claims(seeds, spec.claims), {})
    text = common.verdict(result)
    assert text.startswith("The baseline's problem: the single fine-tunings of one ancestor end 0.080 apart in test "
                           "accuracy (best minus worst, mean over 3 ancestors; from 0.060 to 0.100), while the best single "
                           "one, chosen on validation, reaches 0.510: a spread a soup could exploit.")
    assert "Claim problem, the single fine-tunings of one ancestor end apart" in text
    assert "over 3 ancestors (MDE " in text and "uniform soup 0.53 vs best single 0.51 (+0.02 ± 0 over 3 ancestors" in text
