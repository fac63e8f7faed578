"""The co-adaptation study: the regime check refuses a baseline below its threshold, the rule decides synthetic per-seed
tables, the per-seed table reads the right numbers at convergence and at the matched step, the presets are as
documented, and a probe's scores are its own accuracy on the sender's greedy messages.

The study itself (its compiled grid and the probes) runs in notebooks/02 under the notebook tests.
"""

import jax
import numpy as np
import pandas as pd
import pytest

import games
import lab
from lab import analysis
from lab.analysis.probe import ProbeFit
from lab.core import metrics
from lab.report.studies import coadaptation as co
from lab.report.studies import common
from lab.report.studies.common import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED

MEASURED = sorted({claim.measure for claim in co.CLAIMS})


def seeds_table(effects: dict[str, tuple[float, float]], n_seeds: int = 10, base: float = 0.3, seed: int = 0) -> pd.DataFrame:
    """A per-seed table: baseline values `base` + seed-to-seed spread; each condition adds `effect + noise * z_s`.

    The seed effects are shared by every condition (pairing removes them); `z_s` are standardised
    draws, so a condition's paired differences have mean `effect` and sample std `noise` exactly.
    """
    rng = np.random.default_rng(seed)
    spread = rng.normal(0, 0.1, n_seeds)  # what one seed does to every condition
    spread -= spread.mean()
    rows = [dict(condition="baseline", seed=s, **{c: base + spread[s] for c in MEASURED}) for s in range(n_seeds)]
    for condition, (effect, noise) in effects.items():
        z = rng.normal(size=n_seeds)
        z = (z - z.mean()) / z.std(ddof=1)
        rows += [dict(condition=condition, seed=s, **{c: base + spread[s] + effect + noise * z[s] for c in MEASURED})
                 for s in range(n_seeds)]
    frame = pd.DataFrame(rows).assign(**{"probe train accuracy": 0.9, "steps to converge": 1000.0})
    return frame.assign(**{"gap loss": 2.0, "gap l_info": -0.3, "gap l_adapt": 2.3, "train loss": 0.5, "test loss": 2.5})


def judged(seeds: pd.DataFrame) -> pd.DataFrame:
    return common.judge_claims(seeds, co.CLAIMS)


def calls(table: pd.DataFrame, claim: str) -> dict[str, str]:
    rows = table[table["claim"] == claim]
    return dict(zip(rows["condition"], rows["call"]))


def tidy_baseline(attribute_accuracy: float, steps: int = 100) -> pd.DataFrame:
    """The baseline's tidy rows: two seeds, its per-attribute test accuracy at the last evaluation."""
    rows = []
    for seed in range(2):
        for step, value in ((0, 0.25), (steps, attribute_accuracy)):
            rows.append(dict(condition="baseline", seed=seed, step=step, split="test", metric="attribute_accuracy", value=value))
    return pd.DataFrame(rows)


def test_the_regime_check_refuses_a_baseline_below_its_threshold():
    passing = common.Result(co.STUDY, "full", {}, None, tidy_baseline(0.85), pd.DataFrame(), pd.DataFrame(), {})
    assert co.regime(passing.table) == pytest.approx(0.85) and co.check(passing) is None
    failing = passing._replace(table=tidy_baseline(0.7))
    words = co.check(failing)
    assert words.startswith("Regime check failed: the baseline reaches a mean per-attribute test accuracy of 0.70")
    assert "below the 0.8" in words and "claims 2 and 3 are not judged" in words
    assert co.check(failing._replace(preset="small")) is None  # a sketch: the claims follow, and the opening says so
    assert "trained as a sketch" in co.regime_words(failing._replace(preset="small"))


def test_claims_two_and_three_are_judged_for_the_authors_control_and_its_dose_arms_only():
    seeds = seeds_table({"reset k=10": (0.10, 0.03), "weight decay": (0.0, 0.01), "reset k=50": (0.02, 0.3),
                         "ideal reward": (-0.2, 0.03), "population 4": (0.0, 0.01), "listener p_step 0.25": (0.0, 0.01)})
    table = judged(seeds)
    assert calls(table, "2") == {"reset k=10": REPRODUCED, "weight decay": NOT_REPRODUCED, "reset k=50": INCONCLUSIVE}
    assert calls(table, "3 matched") == calls(table, "2")
    clear = table[(table["claim"] == "2") & (table["condition"] == "reset k=10")].iloc[0]
    assert clear["effect"] == pytest.approx(0.10) and clear["se"] == pytest.approx(0.03 / np.sqrt(10)) and clear["seeds"] == 10
    assert clear["mde"] == pytest.approx(common.detectable(0.03, 10))
    noisy = table[(table["claim"] == "2") & (table["condition"] == "reset k=50")].iloc[0]
    assert noisy["needed"] > 10  # inconclusive: says how many seeds would decide
    assert calls(table, "speed") == {"population 4": common.SAME}  # a population is a slower listener, and no more
    assert calls(table, "ideal") == {"ideal reward": NOT_REPRODUCED}  # -0.2 nats: clearly not more information overfitting


def test_claim_one_reads_the_baselines_own_values():
    clear = judged(seeds_table({}, base=2.0))  # gap L_adapt - gap L_info = 2 nats on every seed
    assert calls(clear, "1") == {"baseline": REPRODUCED}
    tied = seeds_table({}, base=0.0).assign(**{"gap l_adapt - gap l_info": [0.01, -0.01] * 5})
    assert calls(judged(tied), "1") == {"baseline": NOT_REPRODUCED}


def test_the_verdict_opens_with_the_regime_and_states_every_claim_with_its_mde():
    seeds = seeds_table({"reset k=10": (0.10, 0.03)})
    configs = co.STUDY.configs("full", only=["reset k=10"])
    result = common.Result(co.STUDY, "full", configs, None, tidy_baseline(0.9), seeds, judged(seeds), {})
    text = common.verdict(result)
    assert text.startswith("Regime check passed: the baseline reaches a mean per-attribute test accuracy of 0.90")
    assert "Converged (train L_info <= 0.05 nats within 3000 steps): baseline 10/10 (median step 1000)" in text
    assert "L_adapt carries 2.30 nats of it (more than the whole gap)" in text
    assert "L_info -0.30 (against the gap" in text
    assert "Claim 2, controlling co-adaptation makes the language generalize better" in text
    assert "reset k=10 0.4 vs baseline 0.3 (+0.1 ± 0.0095 over 10 seeds (MDE 0.03): reproduced)" in text
    assert "Rule: effect = mean over seeds of the paired difference" in text and "sketch" not in text
    failed = common.verdict(result._replace(table=tidy_baseline(0.5)))
    assert failed.startswith("Regime check failed") and "Claim 2" not in failed


def tidy_run(condition: str, seed: int, values: dict, stop: int | None, matched: int = 100, last: int = 200) -> list[dict]:
    """Tidy rows of one run: `values[(split, metric)]` at the last evaluation, 2x that at the matched step, and stopped."""
    rows = []
    for (split, metric), value in values.items():
        rows.append(dict(condition=condition, seed=seed, step=last, split=split, metric=metric, value=value))
        if "probe" not in metric:
            rows.append(dict(condition=condition, seed=seed, step=matched, split=split, metric=metric, value=2 * value))
    for step in (0, matched, last):
        rows.append(dict(condition=condition, seed=seed, step=step, split="train", metric="stopped",
                         value=float(stop is not None and step >= stop)))
    return rows


def test_per_seed_reads_convergence_the_matched_step_and_the_probes():
    values = {("train", "accuracy"): 0.96, ("test", "attribute_accuracy"): 0.8, ("test", "topsim"): 0.3,
              ("train", "topsim"): 0.35, ("train", "loss"): 0.2, ("test", "loss"): 1.0, ("train", "l_info"): 0.1,
              ("test", "l_info"): 0.2, ("train", "l_adapt"): 0.1, ("test", "l_adapt"): 0.8,
              ("test", "probe_attribute_accuracy"): 0.85, ("test", "probe_best_attribute_accuracy"): 0.9,
              ("test", "matched_probe_attribute_accuracy"): 0.7, ("train", "probe_steps"): 40.0}
    rows = tidy_run("baseline", 0, values, stop=100) + tidy_run("baseline", 1, values, stop=None)
    seeds = co.per_seed(co.Trained(pd.DataFrame(rows), 100, []))
    first = seeds.iloc[0]
    assert first["test attribute_accuracy"] == pytest.approx(0.8) and first["matched test topsim"] == pytest.approx(0.6)
    assert first["probe test attribute accuracy"] == pytest.approx(0.85)
    assert first["probe best test attribute accuracy"] == pytest.approx(0.9)
    assert first["matched probe test attribute accuracy"] == pytest.approx(0.7)
    assert first["probe train steps"] == 40.0
    assert first["gap l_adapt - gap l_info"] == pytest.approx(0.7 - 0.1)
    assert first["steps to converge"] == 100 and np.isnan(seeds.iloc[1]["steps to converge"])


def test_the_presets_are_as_documented():
    paper = co.STUDY.configs("paper", only=[])["baseline"]
    g, a, t = paper.game, paper.agents, paper.train
    assert (g.n_attributes, g.n_values, g.test_fraction, g.validation_fraction, a.vocab_size, a.max_len) == (4, 4, 0.2, 0.1, 20, 10)
    assert (a.cell, a.hidden_size, t.batch_size, t.lr, t.seeds) == ("lstm", 128, 1024, 0.005, 10)
    full = co.STUDY.configs("full")
    assert full["baseline"].train.seeds >= 10 and full["baseline"].train.stop_l_info > 0
    assert [full[f"reset k={k}"].interventions.reset_every for k in (1, 10, 50)] == [1, 10, 50]
    assert all(full[name].interventions.reset and full[name].interventions.refit_max_steps >= 500
               for name in ("reset k=1", "reset k=10", "reset k=50"))
    assert [full[f"fixed refit {n}"].interventions.refit_steps for n in (20, 200)] == [20, 200]
    assert full["ideal reward"].train.reward == "ideal" and full["population 4"].population.n_receivers == 4
    for preset in ("small", "full", "paper"):
        config = co.STUDY.configs(preset, only=[])["baseline"]
        assert co.matched_step(preset, config) % config.train.eval_every == 0


# Gumbel-softmax learns fast enough that a probe decodes a few held-out objects (tinier worlds: none at all)
TINY = ["game.n_attributes=4", "game.n_values=4", "game.validation_fraction=0.1", "agents.hidden_size=32",
        "agents.embedding_size=8", "agents.vocab_size=10", "agents.max_len=4", "train.mode=gumbel", "train.batch_size=64",
        "train.steps=600", "train.eval_every=600", "train.seeds=2", "train.lr=0.01", "interventions.refit_max_steps=300"]


def test_a_probes_scores_are_its_accuracy_on_the_greedy_messages():
    config = lab.load(overrides=TINY)
    trainer = lab.make_trainer(config)
    keys = lab.seed_keys(config)
    state, _ = lab.train_seeds(config, trainer)
    senders = jax.device_get(state.senders)  # [2 seeds, 1, ...]
    rows = co.probe_table({"baseline": config, "again": config}, {"": {"baseline": senders, "again": senders}})
    probe = rows.set_index(["condition", "seed", "split", "metric"])["value"]

    # the same probes, fitted on their own, then measured independently: argmax of the reading where each message ends
    spec, i = trainer.spec, config.interventions
    eval_keys = jax.vmap(lambda key: trainer.run_keys(key)[2])(keys)
    how = ProbeFit(config.train.batch_size, i.refit_max_steps, i.refit_patience, i.refit_tolerance)
    fit = jax.jit(jax.vmap(lambda s, key, hp: analysis.fit_probe(
        spec.agents, spec.game, s, spec.split_objects["train"], key, hp["train"], how, spec.split_episodes("validation"))))(
        jax.tree.map(lambda leaf: leaf[:, 0], senders), eval_keys, lab.hparams_from_config(config, 2))
    test_objects, decoded = spec.split_objects["test"], []
    for run, seed in enumerate(lab.experiment.run.seeds_of(config)):
        sender = spec.agents.sender(jax.tree.map(lambda leaf: leaf[run, 0], senders))
        receiver = spec.agents.receiver(jax.tree.map(lambda leaf: leaf[run], fit.receiver))
        symbols = np.asarray(sender.greedy(test_objects).symbols)
        readings = np.asarray(receiver.reconstruct(jax.nn.one_hot(symbols, config.agents.vocab_size)))  # [n, T, K, V]
        ends = np.asarray(games.message_length(symbols)) - 1
        guesses = readings[np.arange(len(symbols)), ends].argmax(-1)
        independent = metrics.accuracy(test_objects, guesses)
        for condition in ("baseline", "again"):
            assert probe[(condition, seed, "test", "probe_accuracy")] == pytest.approx(independent["object"], abs=1e-6)
            attribute = float(np.mean(independent["attribute"]))
            assert probe[(condition, seed, "test", "probe_attribute_accuracy")] == pytest.approx(attribute, abs=1e-6)
            assert probe[(condition, seed, "test", "probe_best_attribute_accuracy")] >= attribute - 1e-6
            assert probe[(condition, seed, "train", "probe_steps")] == int(fit.steps[run])
        decoded.append(independent["object"])
    assert max(decoded) > 0  # some held-out objects decoded: the equality is not 0 == 0
    assert int(fit.steps.max()) < i.refit_max_steps  # stopped on the validation split, not at the cap
