"""lab study dro: the summary and the verdict read the right numbers; bad input exits 2 before any training.

The study itself (five compiled trainers) runs in notebooks/04 under the notebook tests and by hand
(`lab study dro --small`).
"""

import numpy as np
import pandas as pd
import pytest

from lab.cli import main
from lab.report.studies import STUDIES
from lab.report.studies import dro as study


def runs(conditions: dict[str, list[tuple[float, float, float]]]) -> pd.DataFrame:
    """Per-run rows; each seed's (bin 0, bin 1, bin 2) accuracy, the same for the final and the minmax model."""
    rows = []
    for condition, seeds in conditions.items():
        for seed, bins in enumerate(seeds):
            for model in study.MODELS:
                rows.append({"condition": condition, "seed": seed, "model": model, "step": 100,
                             "average accuracy": float(np.mean(bins)), "worst-group accuracy": min(bins),
                             **{f"bin {g} accuracy": a for g, a in enumerate(bins)}, "test accuracy": 0.5})
    return pd.DataFrame(rows)


TABLE = runs({
    "erm": [(1.0, 0.9, 0.20), (1.0, 0.9, 0.30), (1.0, 0.8, 0.25)],
    "group_dro eta=0.1": [(0.9, 0.8, 0.60), (0.9, 0.8, 0.70), (0.9, 0.7, 0.65)],  # +0.40 worst-group, lower average
    "cvar alpha=0.1": [(1.0, 0.9, 0.10), (1.0, 0.9, 0.50), (1.0, 0.8, 0.20)],  # +0.02 +- 0.1: unchanged
})


def test_summary_means_and_standard_errors():
    summary = study.summarize(TABLE)
    assert list(summary.index) == [(c, m) for c in ("erm", "group_dro eta=0.1", "cvar alpha=0.1") for m in study.MODELS]
    erm = summary.loc[("erm", "final")]
    assert erm["seeds"] == 3 and erm["worst-group accuracy mean"] == pytest.approx(0.25)
    assert erm["worst-group accuracy se"] == pytest.approx(np.std([0.2, 0.3, 0.25], ddof=1) / np.sqrt(3))
    assert erm["bin 0 accuracy mean"] == pytest.approx(1.0) and erm["average accuracy mean"] == pytest.approx(np.mean([0.7, 0.7333, 0.6833]), rel=1e-3)


def test_verdict_reads_the_effects_and_applies_the_rule():
    text = study.verdict(study.summarize(TABLE))
    assert "falls from 1.00 on the most frequent objects (bin 0) to 0.25 on the rarest (bin 2)" in text
    assert "rises over ERM with group_dro eta=0.1 (the largest gain: group_dro eta=0.1, +0.40)" in text
    assert "group_dro eta=0.1: worst-group 0.65 (+0.40 ± 0.04, raised; lowest on average: bin 2)" in text
    # cvar: worst-group (0.1, 0.5, 0.2) has se 0.120, ERM's 0.029: +0.02 is well inside 2 * 0.12
    assert "cvar alpha=0.1: worst-group 0.27 (+0.02 ± 0.12, unchanged; lowest on average: bin 2), average 0.71 (+0.01 ± 0.05, unchanged)" in text
    assert "more than 2 standard errors" in text


def test_verdict_when_nothing_helps():
    text = study.verdict(study.summarize(runs({"erm": [(1, 0.9, 0.2), (1, 0.9, 0.3)], "kl_dro tau=1": [(1, 0.9, 0.2), (1, 0.9, 0.3)]})))
    assert "No objective raises worst-group accuracy over ERM by more than 2 standard errors; the closest is kl_dro tau=1 (+0.00)" in text


def test_the_study_is_registered_and_its_configs_validate():
    assert STUDIES["dro"] is study.dro
    configs = study.study_configs(small=True)
    assert list(configs) == list(study.KNOBS)
    for kind, config in configs.items():
        assert config.objective.kind == kind and config.game.groups == "frequency" and config.game.distribution == "zipf"
        assert config.objective.adversary_lr == config.train.lr  # RP-DRO: the adversary shares the agents' rate


def test_bad_override_exits_2_before_training(tmp_path, capsys):
    assert main(["study", "dro", "objective.tau=-1", "--out", str(tmp_path / "s"), "--small", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "objective.tau=-1.0: must be > 0.0" in err
    assert not (tmp_path / "s").exists()
