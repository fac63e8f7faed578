"""The shared study machinery: the verdict rule against independent computations, and a study declared here, in the
test file, that trains through the grid runner and comes back with its table and verdict."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lab.experiment.grid import compile_groups, grid
from lab.experiment.config import load
from lab.report.studies import common
from lab.report.studies.common import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, Claim, Declaration


def paired(effect: float, sd: float, n: int) -> np.ndarray:
    """n differences with mean `effect` and sample standard deviation `sd` exactly."""
    z = np.random.default_rng(n).normal(size=n)
    return effect + sd * (z - z.mean()) / z.std(ddof=1)


@pytest.mark.parametrize("effect, sd, n, call", [
    (0.10, 0.10, 6, INCONCLUSIVE),  # 2.4 SE: under t(5) = 2.57, and the interval reaches past the 0.05 margin
    (0.10, 0.10, 10, REPRODUCED),  # 3.2 SE > t(9) = 2.26
    (0.02, 0.02, 6, NOT_REPRODUCED),  # 2.4 SE, not above 0; the interval ends at 0.041, below the margin
    (0.00, 0.05, 6, INCONCLUSIVE),  # the interval ends at 0.0525, past the margin
    (-0.03, 0.02, 6, NOT_REPRODUCED),  # clearly the other way
])
def test_the_rule_is_the_95_percent_interval_against_zero_and_the_margin(effect, sd, n, call):
    d = paired(effect, sd, n)
    t = stats.t.ppf(0.975, n - 1)
    low, high = effect - t * sd / np.sqrt(n), effect + t * sd / np.sqrt(n)
    expected = REPRODUCED if low > 0 else NOT_REPRODUCED if high < 0.05 else INCONCLUSIVE  # independent of the code
    j = common.judge(d, margin=0.05)
    assert j.call == expected == call
    assert j.effect == pytest.approx(effect) and j.se == pytest.approx(sd / np.sqrt(n)) and j.seeds == n


def test_mde_is_the_effect_called_reproduced_four_times_in_five():
    n, sd = 8, 0.1
    mde = common.detectable(sd, n)
    rng = np.random.default_rng(0)
    calls = [common.judge(rng.normal(mde, sd, n), 0.05).call == REPRODUCED for _ in range(4000)]
    assert np.mean(calls) == pytest.approx(0.8, abs=0.03)  # power 80% by simulation, t-distributed SE included


def test_an_inconclusive_verdict_says_how_many_seeds_would_decide():
    j = common.judge(paired(0.03, 0.1, 5), margin=0.05)
    assert j.call == INCONCLUSIVE
    assert common.detectable(0.1, j.needed) <= 0.05 < common.detectable(0.1, j.needed - 1)
    assert "seeds would decide an effect of the margin (0.05)" in common.describe(j)
    two = common.judge([0.2, 0.3], 0.05)  # two seeds: t(1) = 12.7
    assert two.call == INCONCLUSIVE and two.mde == pytest.approx((12.706 + 1.376) * two.se, rel=1e-3)
    assert common.judge([0.1], 0.05).call == INCONCLUSIVE and common.judge([0.1, np.nan, 0.1], 0.05).call == INCONCLUSIVE


def test_compare_answers_a_question_without_a_direction():
    assert common.compare(paired(-0.2, 0.02, 6), 0.05)[0] == common.LOWER
    assert common.compare(paired(0.2, 0.02, 6), 0.05)[0] == common.HIGHER
    assert common.compare(paired(0.0, 0.01, 6), 0.05)[0] == common.SAME
    assert common.compare(paired(0.0, 0.3, 6), 0.05)[0] == INCONCLUSIVE
    word, j = common.compare(paired(-0.03, 0.057, 6), 0.05)  # judge says 'not reproduced' for d > 0; undecided here
    assert word == INCONCLUSIVE and j.needed > 6 and "about 0" not in common.describe(j._replace(call=word))


def test_grid_cells_are_conditions_times_values_grouped_by_the_sweeps_rule():
    base = load(overrides=["train.seeds=2"])
    cells = grid({"gru": base, "lstm": load(overrides=["train.seeds=2", "agents.cell=lstm"])},
                 {"train.lr": [1e-3, 3e-3], "train.entropy_coeff": [0.0, 0.1]})
    assert len(cells) == 8 and cells[1].labels == {"condition": "gru", "train.lr": 1e-3, "train.entropy_coeff": 0.1}
    assert cells[1].config.train.entropy_coeff == 0.1 and cells[1].config.train.lr == 1e-3
    assert [len(g) for g in compile_groups(cells)] == [4, 4]  # the cell is static, lr and entropy continuous


# -- a study declared here: two conditions, one claim ----------------------------------------------------------------

TINY = ["game.n_attributes=3", "game.n_values=3", "agents.hidden_size=16", "agents.embedding_size=8", "agents.vocab_size=6",
        "agents.max_len=3", "train.batch_size=32", "train.steps=80", "train.eval_every=40", "train.seeds=3",
        "train.eval_size=16"]
LEARNING_RATE = Declaration(
    name="learning-rate", title="does a larger learning rate learn faster?",
    question="Two learning rates, the same seeds; the train accuracy after 80 steps.",
    presets={"small": TINY}, default="small",
    conditions={"slow": ["train.lr=0.0001"], "fast": ["train.lr=0.01"]},
    claims=(Claim("speed", "a larger learning rate learns more in 80 steps", "train accuracy", 0.05, baseline="slow"),),
)


def test_a_study_declared_in_a_test_file_gets_its_table_and_verdict(tmp_path):
    study = common.run(LEARNING_RATE, tmp_path / "lr", progress=False)
    table = study.table
    assert set(table["condition"]) == {"slow", "fast"} and set(table["seed"]) == {0, 1, 2}
    final = table[(table["step"] == 80) & (table["split"] == "train") & (table["metric"] == "accuracy")]
    by = final.set_index(["condition", "seed"])["value"]
    expected = common.judge((by.loc["fast"] - by.loc["slow"]).to_numpy(), 0.05)  # independently, from the tidy rows
    claims = pd.read_csv(tmp_path / "lr" / "claims.csv")
    assert len(claims) == 1 and claims["condition"].iloc[0] == "fast" and claims["call"].iloc[0] == expected.call
    assert claims["effect"].iloc[0] == pytest.approx(expected.effect) and claims["mde"].iloc[0] == pytest.approx(expected.mde)
    assert expected.effect > 0  # 100 times the learning rate learns more in 80 steps
    assert study.verdict.startswith("Claim speed, a larger learning rate learns more in 80 steps [train accuracy]: fast")
    assert "This is the small preset: a sketch" in study.verdict
    assert study.summary.loc["fast", "seeds"] == 3
    written = {p.name for p in (tmp_path / "lr").iterdir()}
    assert {"metrics.parquet", "per_seed.csv", "summary.csv", "claims.csv", "report.md", "configs"} <= written
    assert "# Study: does a larger learning rate learn faster? (preset small)" in (tmp_path / "lr" / "report.md").read_text()
