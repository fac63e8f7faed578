"""The co-adaptation study: the rule decides synthetic per-seed tables, the tables read the right numbers, and the
probe's test accuracy is that probe's accuracy on the sender's greedy messages.

The study itself (four compiled trainers and the probes) runs in notebooks/02 under the notebook tests.
"""

import jax
import numpy as np
import pandas as pd
import pytest

import games
import lab
from lab import analysis
from lab.core import metrics
from lab.report.studies import coadaptation as co
from lab.report.studies import common
from lab.report.studies.common import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED

MEASURED = [claim.measure for claim in co.CLAIMS]


def seeds_table(effects: dict[str, tuple[float, float]], n_seeds: int = 6, base: float = 0.3, seed: int = 0) -> pd.DataFrame:
    """A per-seed table: baseline values `base` + seed-to-seed spread; each control adds `effect + noise * z_s`.

    The seed effects are shared by every condition (pairing removes them); `z_s` are standardised
    draws, so a control's paired differences have mean `effect` and sample std `noise` exactly.
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
    return pd.DataFrame(rows).assign(**{"probe train accuracy": 0.9})  # every language as well learned


def calls(judged: pd.DataFrame, claim: str) -> dict[str, set[str]]:
    rows = judged[judged["claim"].str.split(" ").str[0] == claim]
    return {c: set(rows[rows["condition"] == c]["call"]) for c in dict.fromkeys(rows["condition"])}


def test_every_claim_of_the_study_is_judged_by_the_shared_rule():
    judged = common.judge_claims(seeds_table({"clear": (0.20, 0.03), "none": (0.0, 0.02), "noise": (0.05, 0.30),
                                              "reversed": (-0.15, 0.03)}), co.CLAIMS)
    for claim in ("2", "3"):  # every measure of both claims: probe and pair accuracy, topsim on train and test
        assert calls(judged, claim) == {"clear": {REPRODUCED}, "none": {NOT_REPRODUCED}, "noise": {INCONCLUSIVE},
                                        "reversed": {NOT_REPRODUCED}}
    clear = judged[(judged["condition"] == "clear") & (judged["measure"] == "probe test accuracy")].iloc[0]
    assert clear["effect"] == pytest.approx(0.20) and clear["se"] == pytest.approx(0.03 / np.sqrt(6))
    assert clear["seeds"] == 6 and clear["baseline"] == pytest.approx(0.3, abs=0.1)
    assert clear["mde"] == pytest.approx(common.detectable(0.03, 6))


def test_claim_one_reads_the_baselines_own_values():
    clear = common.judge_claims(seeds_table({"reset": (0.0, 0.01)}, base=2.0), co.CLAIMS)  # the gap difference: 2 nats
    assert calls(clear, "1") == {"baseline": {REPRODUCED}}
    tied = seeds_table({"reset": (0.0, 0.01)}, base=0.0).assign(**{"gap l_adapt - gap l_info": [0.01, -0.01] * 6})
    assert calls(common.judge_claims(tied, co.CLAIMS), "1") == {"baseline": {NOT_REPRODUCED}}  # 0 +- 0.004 nats


def test_verdict_states_each_claim_with_its_numbers_and_the_rule():
    seeds = seeds_table({"reset": (0.20, 0.03), "ideal": (0.01, 0.02)})
    seeds = seeds.assign(**{"gap loss": 2.0, "gap l_info": -0.3, "gap l_adapt": 2.3, "train loss": 0.5, "test loss": 2.5})
    result = common.Result(co.STUDY, "full", {}, None, pd.DataFrame(), seeds, common.judge_claims(seeds, co.CLAIMS), {})
    text = common.verdict(result)
    assert "L_adapt carries 2.30 nats of it (more than the whole gap)" in text
    assert "L_info -0.30 (against the gap" in text and "%" not in text.split("Claim 2")[0]
    assert "Claim 1, the generalization gap is carried by co-adaptation" in text and "Claim 3" in text
    assert "reset 0.5 vs baseline 0.3 (+0.2 ± 0.012 over 6 seeds (MDE 0.043): reproduced)" in text
    assert "ideal 0.31 vs baseline 0.3 (+0.01 ± 0.0082 over 6 seeds (MDE 0.028): not reproduced)" in text
    assert "Rule: effect = mean over seeds of the paired difference" in text and "Caution" not in text
    slow = seeds.assign(**{"probe train accuracy": np.where(seeds["condition"] == "ideal", 0.4, 0.9)})
    assert "Caution: at this length of training the language of ideal is learned less far than the baseline's: a probe " \
           "listener gets 0.40 (ideal) of the train objects right, against 0.90 for the baseline" in common.verdict(result._replace(seeds=slow))
    words = co.plain_words(result.judged).splitlines()
    reset, ideal = words.index("   Replacing the listener by a newcomer from time to time:"), words.index(
        "   Rewarding the speaker by how well a perfect reader of its language would understand it:")
    assert words[reset + 1].startswith("   - A newcomer taught only on the training objects understands 50% of the new objects")
    assert words[reset + 1].endswith("Yes.") and words[ideal + 1].endswith("No, or too little to matter.")


def final_rows(condition, seed, train, test, receivers=(None,)):
    """Tidy rows of one run; `train`/`test`: (accuracy, l_info, l_adapt, topsim, probe_accuracy); an earlier step of 9s."""
    rows = []
    for split, (accuracy, l_info, l_adapt, topsim, probe) in (("train", train), ("test", test)):
        values = dict(accuracy=accuracy, loss=l_info + l_adapt, l_info=l_info, l_adapt=l_adapt, topsim=topsim, posdis=0.1,
                      bosdis=0.2, probe_accuracy=probe, probe_loss=1.0, **({"probe_steps": 40.0} if split == "train" else {}))
        for metric, value in values.items():
            for receiver in receivers:
                offset = 0.0 if receiver is None else 0.1 * receiver
                rows.append(dict(condition=condition, seed=seed, step=100, split=split, metric=metric, value=value + offset))
                rows.append(dict(condition=condition, seed=seed, step=0, split=split, metric=metric, value=9.0))
    return rows


def test_per_seed_and_summary_read_the_final_evaluation():
    rows = []
    for seed in range(2):
        rows += final_rows("baseline", seed, (1.0, 0.2, 0.1, 0.5, 0.9), (0.3, 0.1, 2.0 + seed, 0.4, 0.35))
        rows += final_rows("population", seed, (1.0, 0.2, 0.1, 0.5, 0.9), (0.3, 0.1, 1.0, 0.4, 0.35), receivers=(0, 1))
    seeds = co.per_seed(pd.DataFrame(rows))
    assert list(seeds["condition"]) == ["baseline", "baseline", "population", "population"]
    base = seeds.iloc[1]
    assert base["gap loss"] == pytest.approx(3.1 - 0.3) and base["gap l_adapt"] == pytest.approx(3.0 - 0.1)
    assert base["gap l_adapt - gap l_info"] == pytest.approx(2.9 + 0.1)
    assert base["probe test accuracy"] == pytest.approx(0.35) and base["test topsim"] == pytest.approx(0.4)
    assert base["probe steps"] == 40.0 and "probe test steps" not in seeds
    assert seeds.iloc[2]["test accuracy"] == pytest.approx(0.35)  # a population: the mean over its two listeners
    summary = common.summarize(seeds)
    assert summary.loc["baseline", "gap l_adapt mean"] == pytest.approx(2.4)
    assert summary.loc["baseline", "gap l_adapt se"] == pytest.approx(0.5)
    assert summary.loc["population", "seeds"] == 2


def test_the_presets_record_the_papers_setup():
    paper = co.STUDY.configs("paper")
    g, a, t = paper["baseline"].game, paper["baseline"].agents, paper["baseline"].train
    assert (g.n_attributes, g.n_values, g.test_fraction, a.vocab_size, a.max_len, t.seeds) == (4, 4, 0.2, 20, 10, 6)
    assert (a.cell, a.hidden_size, t.batch_size, t.lr) == ("lstm", 128, 1024, 0.005)
    small, full = co.STUDY.configs("small"), co.STUDY.configs("full")
    assert small["baseline"].train.seeds >= 5 and full["baseline"].train.seeds == 6
    assert full["baseline"].train.steps == 3 * small["baseline"].train.steps
    assert [c.train.control for c in small.values()] == ["none", "reset", "none", "ideal"]
    assert small["population"].population.n_receivers == 4


# Gumbel-softmax learns fast enough that a probe decodes a few held-out objects (tinier worlds: none at all)
TINY = ["game.n_attributes=4", "game.n_values=4", "agents.hidden_size=32", "agents.embedding_size=8", "agents.vocab_size=10",
        "agents.max_len=4", "train.mode=gumbel", "train.batch_size=64", "train.steps=600", "train.eval_every=600",
        "train.seeds=2", "train.lr=0.01", "interventions.listener_max_steps=300", "interventions.listener_window=10"]


def test_probe_test_accuracy_is_that_probes_accuracy_on_the_greedy_messages():
    config = lab.load(overrides=TINY)
    trainer = lab.make_trainer(config)
    keys = lab.seed_keys(config)
    state, _ = lab.train_seeds(config, trainer)
    senders = jax.device_get(state.senders)  # [2 seeds, 1, ...]
    rows = co.probe_table(config, {"baseline": senders, "again": senders})
    probe = rows.set_index(["condition", "seed", "split", "metric"])["value"]

    # the same probes, fitted on their own, then measured independently: argmax of the reading where each message ends
    spec, i = trainer.spec, config.interventions
    eval_keys = jax.vmap(lambda key: trainer.run_keys(key)[2])(keys)
    fit = jax.jit(jax.vmap(lambda s, key, hp: analysis.fit_probe(
        spec.agents, spec.game, s, spec.split_objects["train"], key, hp["train"], config.train.batch_size, i.listener_max_steps,
        i.listener_window, i.listener_tolerance)))(jax.tree.map(lambda leaf: leaf[:, 0], senders), eval_keys,
                                                   lab.hparams_from_config(config, 2))
    test_objects, decoded = spec.split_objects["test"], []
    for run, seed in enumerate(lab.experiment.run.seeds_of(config)):
        sender = spec.agents.sender(jax.tree.map(lambda leaf: leaf[run, 0], senders))
        receiver = spec.agents.receiver(jax.tree.map(lambda leaf: leaf[run], fit.receiver))
        symbols = np.asarray(sender.greedy(test_objects).symbols)
        readings = np.asarray(receiver.reconstruct(jax.nn.one_hot(symbols, config.agents.vocab_size)))  # [n, T, K, V]
        ends = np.asarray(games.message_length(symbols)) - 1
        guesses = readings[np.arange(len(symbols)), ends].argmax(-1)
        independent = metrics.accuracy(test_objects, guesses)["object"]
        for condition in ("baseline", "again"):
            assert probe[(condition, seed, "test", "probe_accuracy")] == pytest.approx(independent, abs=1e-6)
            assert probe[(condition, seed, "train", "probe_steps")] == int(fit.steps[run])
        decoded.append(independent)
    assert max(decoded) > 0  # some held-out objects decoded: the equality is not 0 == 0
    assert set(rows["step"]) == {config.train.steps}
