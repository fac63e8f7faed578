"""The curriculum-adam study's arithmetic on made-up numbers: paired advantages, best settings, the claims and notes."""

import itertools

import numpy as np
import pandas as pd

from lab.experiment.grid import compile_groups, grid
from lab.report.studies import common
from lab.report.studies import curriculum_adam as study

LRS, BETAS, SEEDS = [1e-3, 3e-3, 1e-2], [0.99, 0.999], [0, 1, 2, 3, 4]


def finals(effects: dict) -> pd.DataFrame:
    """Final accuracies: uniform is best tuned at lr=3e-3, beta2=0.999; `effects[name](lr, beta2)` adds to it."""
    rows = []
    rng = np.random.default_rng(0)
    for (lr, beta2), seed in itertools.product(itertools.product(LRS, BETAS), SEEDS):
        base = 0.8 - 0.3 * abs(np.log10(lr / 3e-3)) - (0.1 if beta2 == 0.99 else 0.0) + 0.01 * seed
        base += 0.002 * rng.standard_normal()  # what this seed does at this setting, to every scheduler (paired)
        for name, effect in {"uniform": lambda lr, b: 0.0, **effects}.items():
            rows.append(dict(condition=name, lr=lr, beta2=beta2, eps=1e-8, seed=seed, accuracy=base + effect(lr, beta2)))
    return pd.DataFrame(rows)


def calls(frame: pd.DataFrame) -> dict:
    judged = common.judge_claims(study.seeds_of(frame), study.STUDY.claims)
    return {(row.claim, row.condition): row.call for row in judged.itertuples()}


def test_advantages_are_paired_by_setting_and_seed():
    table = study.advantages(finals({"plus": lambda lr, b: 0.05}))
    plus = table[table["condition"] == "plus"]
    np.testing.assert_allclose(plus["advantage"], 0.05, atol=0.01)
    best = table[(table["condition"] == "uniform") & (table["lr"] == 3e-3) & (table["beta2"] == 0.999)]
    assert np.allclose(best["advantage_vs_best"], 0.0, atol=1e-12)  # the best-tuned baseline against itself
    worst = plus[(plus["lr"] == 1e-2) & (plus["beta2"] == 0.99)]
    assert np.all(worst["advantage_vs_best"] < -0.2)


def test_a_curriculum_that_only_helps_a_badly_tuned_adam_is_found_out():
    # helps by 0.15 where uniform is tuned worst, not at all at uniform's best setting
    compensates = lambda lr, b: 0.15 * min(1.0, abs(np.log10(lr / 3e-3)) + (0.5 if b == 0.99 else 0.0))  # noqa: E731
    frame = finals({"compensating": compensates})
    got = calls(frame)
    assert got[("worst", "compensating")] == common.REPRODUCED
    assert got[("best", "compensating")] == common.NOT_REPRODUCED and got[("tuned", "compensating")] == common.NOT_REPRODUCED
    text = " ".join(study.tuning_note(study.summarize(frame)))
    assert "shrinks as Adam gets better tuned" in text and "does not shrink" not in text
    best = study.seeds_of(frame).groupby("condition").first()
    assert best.loc["uniform", "best lr"] == 3e-3 and best.loc["uniform", "best beta2"] == 0.999


def test_a_curriculum_that_helps_everywhere_beats_the_best_tuned_baseline():
    frame = finals({"helps": lambda lr, b: 0.1, "hurts": lambda lr, b: -0.1})
    got = calls(frame)
    assert got[("best", "helps")] == common.REPRODUCED and got[("tuned", "helps")] == common.REPRODUCED
    assert got[("best", "hurts")] == common.NOT_REPRODUCED
    assert "does not shrink" in " ".join(study.tuning_note(study.summarize(frame)))


def test_compile_groups_merge_schedulers_that_differ_only_in_continuous_knobs():
    configs = study.STUDY.configs("small", only=["competence-linear", "competence-sqrt", "commentary", "commentary-drift",
                                                 "commentary-shuffled", "random-order"])
    cells = grid(configs, study.adam_grid("small"))
    groups = [sorted({cells[i].labels["condition"] for i in g}) for g in compile_groups(cells)]
    assert ["competence-linear", "competence-sqrt"] in groups
    assert ["commentary", "commentary-drift", "commentary-shuffled"] in groups
    assert ["uniform"] in groups and ["random-order"] in groups
    assert len(cells) == 7 * 6 and len(grid({"x": configs["uniform"]}, study.adam_grid("full"))) == 24


def test_every_scheduler_of_the_study_is_a_valid_config():
    configs = study.STUDY.configs("full")
    assert set(configs) == set(study.SCHEDULERS)
    kinds = {c.curriculum.kind for c in configs.values()}
    assert kinds == {"uniform", "competence", "baby_steps", "one_pass", "bandit", "self_paced", "commentary"}
