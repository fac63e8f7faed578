"""lab.studies: the summary and the verdict read the right numbers; `lab study` rejects bad input with exit 2.

The study itself (four compiled trainers) runs in notebooks/02 under the notebook tests.
"""

import pandas as pd
import pytest

from lab.report.studies import coadaptation as studies
from lab.cli import main


def final_rows(condition, seed, train, test):
    """Tidy rows of one run's last evaluation; `train`/`test`: (accuracy, l_info, l_adapt)."""
    rows = []
    for split, (accuracy, l_info, l_adapt) in (("train", train), ("test", test)):
        for metric, value in (("accuracy", accuracy), ("loss", l_info + l_adapt), ("l_info", l_info), ("l_adapt", l_adapt)):
            rows.append(dict(condition=condition, seed=seed, step=100, split=split, metric=metric, value=value))
            rows.append(dict(condition=condition, seed=seed, step=0, split=split, metric=metric, value=9.0))
    return rows


def table(test_terms: dict[str, list[tuple[float, float]]]) -> pd.DataFrame:
    """Train terms (0.2, 0.1) everywhere; test (l_info, l_adapt) per condition and seed."""
    rows = []
    for condition, seeds in test_terms.items():
        for seed, (l_info, l_adapt) in enumerate(seeds):
            rows += final_rows(condition, seed, (1.0, 0.2, 0.1), (0.5, l_info, l_adapt))
    return pd.DataFrame(rows)


def test_summary_reads_the_final_evaluation_and_the_gaps():
    summary = studies.summarize(table({"baseline": [(0.4, 2.0), (0.4, 2.2)], "reset": [(0.3, 0.5), (0.3, 0.7)]}))
    assert list(summary.index) == ["baseline", "reset"]
    assert summary.loc["baseline", "gap loss mean"] == pytest.approx(2.5 - 0.3)
    assert summary.loc["baseline", "gap l_adapt mean"] == pytest.approx(2.1 - 0.1)
    assert summary.loc["reset", "gap l_info mean"] == pytest.approx(0.1)
    assert summary.loc["reset", "seeds"] == 2 and summary.loc["reset", "test accuracy mean"] == pytest.approx(0.5)


def test_verdict_names_the_carrier_and_the_controls_that_reduce_the_gap():
    verdict = studies.verdict(studies.summarize(table({
        "baseline": [(0.4, 2.0), (0.4, 2.2), (0.4, 2.1)],  # test loss 2.5, gap 2.2: L_adapt 2.0, L_info 0.2
        "reset": [(0.3, 0.5), (0.3, 0.6), (0.3, 0.4)],  # gap 0.5: reduced
        "population": [(0.4, 1.9), (0.4, 2.4), (0.4, 2.0)],  # gap 2.2 +- noise: unchanged
        "ideal": [(1.9, 2.9), (2.0, 3.0), (2.1, 3.1)],  # gap 4.7: increased
    })))
    assert "gap (test loss minus train loss) is 2.20 nats" in verdict
    assert "carried by co-adaptation (L_adapt)" in verdict and "2.00 nats of it (91%)" in verdict
    assert "The gap shrinks with reset (0.50 nats" in verdict
    assert "population (2.20 nats" in verdict and "leaves it unchanged within seed noise" in verdict
    assert "ideal (4.70 nats" in verdict and "increases it" in verdict


def test_verdict_when_information_carries_the_gap_and_nothing_helps():
    verdict = studies.verdict(studies.summarize(table({
        "baseline": [(2.0, 0.2), (2.2, 0.2)],
        "reset": [(2.0, 0.2), (2.2, 0.2)],
    })))
    assert "carried by information (L_info)" in verdict
    assert "No control reduces the gap beyond seed noise" in verdict


@pytest.mark.parametrize("argv, message", [
    (["study", "nonsense", "--out", "{out}"], "unknown study 'nonsense'; allowed: coadaptation"),
    (["study", "coadaptation", "train.bogus=1", "--out", "{out}", "--small"], "unknown config key train.bogus"),
    (["study", "coadaptation", "--out", "{full}", "--small"], "exists and is not empty; pass --overwrite"),
])
def test_study_command_rejects_bad_input_with_one_line_and_exit_2(argv, message, tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_text("x")
    argv = [a.format(out=tmp_path / "new", full=tmp_path / "full") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lab study: error:") and message in err and "\n" not in err
    assert not (tmp_path / "new").exists()
