"""The teacher-hacking and iterated-learning studies: their tables read the right numbers, their claims are judged by the
shared rule, bad input stops before training with one line, and each runs end to end in a tiny setting."""

import numpy as np
import pandas as pd
import pytest

from lab.cli import main
from lab.report.studies import common
from lab.report.studies import iterated_learning as il
from lab.report.studies import teacher_hacking as th
from lab.transmission.distill import eval_steps


def hacking_runs(steps: np.ndarray, n_seeds: int = 3) -> th.Trained:
    """Per condition, golden curves with a known minimum at step 100 (offline rises 50% after it, online 5%)."""
    golden_law = 8.0 * np.maximum(steps, 1) ** -0.5
    proxy = 8.0 * np.maximum(steps, 1) ** -0.7  # falls throughout
    histories = {}
    for condition, rise in (("offline", 0.5), ("online_teacher", 0.05), ("online_student", 0.05),
                            ("offline, fewer objects", 0.8), ("online_teacher, fewer objects", 0.05),
                            ("online_student, fewer objects", 0.05)):
        growth = np.clip(np.log(np.maximum(steps, 1) / 100) / np.log(steps[-1] / 100), 0, 1)
        after = golden_law[steps == 100][0] * (1 + rise * growth)
        golden = np.where(steps <= 100, golden_law, after)
        history = {name: np.tile(curve, (n_seeds, 1)) for name, curve in
                   (("proxy", proxy), ("golden", golden), ("proxy_train", proxy), ("golden_train", golden),
                    ("topsim", np.full_like(proxy, 0.5)), ("posdis", proxy), ("bosdis", proxy), ("distinct", proxy),
                    ("loss", proxy))}
        history.update({name: np.full(n_seeds, value) for name, value in
                        (("ease_of_teaching", 0.6), ("train_accuracy", 0.9), ("test_accuracy", 0.3),
                         ("teacher_golden", 1.2), ("teacher_topsim", 0.7))})
        histories[condition] = history
    return th.Trained(histories, steps, np.arange(n_seeds), {})


def test_teacher_hacking_reads_the_turn_and_the_departure_off_the_curves():
    from lab.experiment.config import load

    steps = np.union1d(eval_steps(2000, 24), [100])
    # the early law fitted on steps 10..80, as the study does (0.5% to 4% of the steps): it departs after 100
    config = load(overrides=["transmission.steps=2000", "transmission.fit_start=0.005", "transmission.fit_end=0.04"])
    trained = hacking_runs(steps)
    seeds = th.per_seed(trained, {c: config for c in trained.histories})
    offline = seeds[seeds["condition"] == "offline"].iloc[0]
    assert offline["golden rise"] == pytest.approx(0.5, abs=1e-6) and offline["golden min step"] == 100
    assert offline["turned"] == 1.0 and offline["golden exponent"] == pytest.approx(-0.5, abs=0.05)
    assert 100 < offline["departure step"] < 400
    online = seeds[seeds["condition"] == "online_teacher"].iloc[0]
    assert online["turned"] == 0.0 and online["golden rise"] == pytest.approx(0.05, abs=1e-6)
    judged = common.judge_claims(seeds.assign(**{"golden rise": seeds["golden rise"] + 0.01 * seeds["seed"]}), th.CLAIMS)
    assert set(judged["claim"]) == {claim.name for claim in th.CLAIMS}
    two = judged[judged["claim"] == "2a"]
    assert set(two["condition"]) == {"online_teacher", "online_student"} and set(two["call"]) == {common.REPRODUCED}
    table = th.tidy(trained)
    numbers = th.curves(table)
    assert numbers.groupby("condition").size().tolist() == [len(steps)] * 6
    assert set(table["split"]) == {"test", "train", "all", "batch"}


def test_iterated_learning_measures_the_first_generation_and_the_end():
    G, n_seeds = 8, 3
    topsim = np.tile(np.linspace(0.1, 0.8, G + 1), (n_seeds, 1))
    history = {name: np.tile(np.linspace(0.2, 0.9, G + 1), (n_seeds, 1)) for name in il.MEASURES}
    history.update(topsim=topsim, kind=np.tile(np.array([0, 1, 1, 1, 1, 2, 2, 2, 2.0]), (n_seeds, 1)))
    trained = il.Trained({"bottleneck + expressivity": history, "expressivity": {**history, "topsim": topsim * 0}},
                         np.arange(n_seeds))
    seeds = il.per_seed(trained, {})
    nil = seeds[seeds["condition"] == "bottleneck + expressivity"].iloc[0]
    assert nil["topsim first"] == pytest.approx(topsim[0, 1])
    assert nil["topsim end"] == pytest.approx(topsim[0, -2:].mean())  # the last quarter of 8 generations
    assert nil["topsim gain"] == pytest.approx(topsim[0, -2:].mean() - topsim[0, 1])
    assert nil["compositional at the end"] == 1.0 and nil["degenerate at the end"] == 0.0
    numbers = il.generations(il.tidy(trained))
    assert numbers["share compositional"].tolist()[-1] == 1.0
    judged = common.judge_claims(seeds.assign(**{"topsim end": seeds["topsim end"] + 0.01 * seeds["seed"]}), il.CLAIMS)
    assert judged[judged["claim"] == "1b"]["call"].tolist() == [common.REPRODUCED]


@pytest.mark.parametrize("study, override, field", [
    ("teacher-hacking", "transmission.n_objects=99", "transmission.n_objects=99"),
    ("teacher-hacking", "transmission.data=bogus", "transmission.data='bogus'"),
    ("teacher-hacking", "transmission.oracle=missing.npy", "transmission.oracle='missing.npy'"),
    ("iterated-learning", "transmission.n_objects=99", "transmission.n_objects=99"),
])
def test_bad_input_stops_with_one_line_naming_the_field(tmp_path, capsys, study, override, field):
    assert main(["study", study, override, "--small", "--quiet", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and field in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_bad_oracle_table_stops_with_one_line(tmp_path, capsys):
    table = tmp_path / "oracle.npy"
    np.save(table, np.array([[1, 0, 2, 0]] * 64))  # a symbol after the EOS
    assert main(["study", "teacher-hacking", f"transmission.oracle={table}", "--small", "--quiet", "--out",
                 str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "transmission.oracle" in err and "after its first EOS" in err


TINY = ["transmission.steps=30", "transmission.teacher_steps=20", "transmission.evals=5", "transmission.teach_steps=5",
        "train.seeds=2", "agents.hidden_size=16", "agents.embedding_size=8"]


def test_teacher_hacking_runs_end_to_end(tmp_path):
    study = common.run(th.STUDY, tmp_path / "th", small=True, progress=False, overrides=TINY, conditions=["online_teacher"])
    written = {p.name for p in (tmp_path / "th").iterdir()}
    assert {"metrics.parquet", "per_seed.csv", "claims.csv", "curves.csv", "curves.png", "proxy_golden.png",
            "report.md"} <= written
    assert "Claim 2a" in study.verdict and "sketch" in study.verdict
    table = pd.read_parquet(tmp_path / "th" / "metrics.parquet")
    assert set(table["condition"]) == {"offline", "online_teacher"}


def test_iterated_learning_runs_end_to_end(tmp_path):
    overrides = TINY + ["iterated.generations=2", "iterated.listener_steps=5", "iterated.interact_steps=3"]
    study = common.run(il.STUDY, tmp_path / "il", small=True, progress=False, overrides=overrides,
                       conditions=["expressivity"])
    assert {"generations.csv", "generations.png", "kinds.png", "report.md"} <= {p.name for p in (tmp_path / "il").iterdir()}
    numbers = pd.read_csv(tmp_path / "il" / "generations.csv")
    assert sorted(set(numbers["generation"])) == [0, 1, 2] and "Claim 3" in study.verdict
