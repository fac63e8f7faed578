"""lab study dro: the per-seed table's summary and the claims read the right numbers; bad input exits 2 before training.

The study itself (five compiled calls) runs in notebooks/04 under the notebook tests and by hand
(`lab study dro --small`).
"""

import numpy as np
import pandas as pd
import pytest

from lab.cli import main
from lab.report.studies import STUDIES, common
from lab.report.studies import dro as study


def seeds_table(conditions: dict[str, list[tuple[float, float, float]]]) -> pd.DataFrame:
    """Per-seed rows; each seed's (bin 0, bin 1, bin 2) accuracy, the same for the final and the minmax model."""
    rows = []
    for condition, seeds in conditions.items():
        for seed, bins in enumerate(seeds):
            row = {"condition": condition, "seed": seed}
            for model in study.MODELS:
                row.update({f"{model} step": 100, f"{model} average accuracy": float(np.mean(bins)),
                            f"{model} worst-group accuracy": min(bins), **{f"{model} bin {g} accuracy": a for g, a in enumerate(bins)},
                            f"{model} test accuracy": 0.5})
            row["final average - worst-group accuracy"] = row["final average accuracy"] - row["final worst-group accuracy"]
            rows.append(row)
    return pd.DataFrame(rows)


SEEDS = seeds_table({
    "erm": [(1.0, 0.9, 0.20), (1.0, 0.9, 0.30), (1.0, 0.8, 0.25), (1.0, 0.9, 0.25), (1.0, 0.85, 0.2)],
    "group_dro eta=0.1": [(0.9, 0.8, 0.60), (0.9, 0.8, 0.72), (0.9, 0.7, 0.65), (0.9, 0.8, 0.64), (0.9, 0.8, 0.62)],  # +0.4
    "cvar alpha=0.1": [(1.0, 0.9, 0.10), (1.0, 0.9, 0.50), (1.0, 0.8, 0.20), (1.0, 0.9, 0.4), (1.0, 0.85, 0.1)],  # noise
})


def result(seeds: pd.DataFrame) -> common.Result:
    return common.Result(study.STUDY, "full", {}, None, pd.DataFrame(), seeds, common.judge_claims(seeds, study.STUDY.claims), {})


def test_summary_means_and_standard_errors():
    summary = study.summarize(SEEDS)
    assert list(summary.index) == [(c, m) for c in ("erm", "group_dro eta=0.1", "cvar alpha=0.1") for m in study.MODELS]
    erm = summary.loc[("erm", "final")]
    assert erm["seeds"] == 5 and erm["worst-group accuracy mean"] == pytest.approx(0.24)
    assert erm["worst-group accuracy se"] == pytest.approx(np.std([0.2, 0.3, 0.25, 0.25, 0.2], ddof=1) / np.sqrt(5))


def test_claims_open_with_the_baselines_problem_and_judge_each_objective_paired_by_seed():
    judged = result(SEEDS).judged.set_index(["claim", "condition"])
    assert judged.loc[("problem", "erm"), "call"] == common.REPRODUCED  # ERM: average - worst ~0.43 on every seed
    raised = judged.loc[("final", "group_dro eta=0.1")]
    d = SEEDS.set_index(["condition", "seed"])["final worst-group accuracy"]
    expected = common.judge((d.loc["group_dro eta=0.1"] - d.loc["erm"]).to_numpy(), study.MARGIN)
    assert raised["effect"] == pytest.approx(expected.effect) and raised["mde"] == pytest.approx(expected.mde)
    assert raised["call"] == common.REPRODUCED
    noise = judged.loc[("final", "cvar alpha=0.1")]
    assert noise["call"] == common.INCONCLUSIVE and noise["needed"] > 5


def test_verdict_reads_the_problem_then_the_claims_with_their_mde():
    text = common.verdict(result(SEEDS))
    assert text.startswith("The baseline's problem: under ERM (final models) accuracy falls from 1.00 on the most frequent "
                           "objects (bin 0) to 0.24 on the rarest (bin 2)")
    assert "Claim final, the objective raises worst-group accuracy over ERM (final models)" in text
    assert "group_dro eta=0.1 0.646 vs erm 0.24 (+0.406" in text and "(MDE " in text
    assert "The largest gain in worst-group accuracy: group_dro eta=0.1 (+0.41)" in text
    assert "Rule: effect = mean over seeds of the paired difference" in text


def test_the_study_is_registered_and_its_configs_validate():
    assert STUDIES["dro"] is study.dro
    configs = study.STUDY.configs("small")
    assert list(configs)[0] == "erm" and {c.objective.kind for c in configs.values()} == set(study.KNOBS)
    for config in configs.values():
        assert config.game.groups == "frequency" and config.game.distribution == "zipf"
        assert config.objective.adversary_lr == config.train.lr  # RP-DRO: the adversary shares the agents' rate
    assert configs["group_dro eta=0.1"].objective.eta == 0.1


def test_bad_override_exits_2_before_training(tmp_path, capsys):
    assert main(["study", "dro", "objective.tau=-1", "--out", str(tmp_path / "s"), "--small", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "objective.tau=-1.0: must be > 0.0" in err
    assert not (tmp_path / "s").exists()
