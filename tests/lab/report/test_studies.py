"""`lab study` rejects bad input with one line and exit 2, before anything trains.

Each study's summary and verdict are tested in its own module (test_coadaptation.py, ...); the
studies themselves run in the notebooks under the notebook tests.
"""

import pytest

from lab.cli import main


@pytest.mark.parametrize("argv, message", [
    (["study", "nonsense", "--out", "{out}"], "unknown study 'nonsense'; allowed: coadaptation"),
    (["study", "coadaptation", "train.bogus=1", "--out", "{out}", "--small"], "unknown config key train.bogus"),
    (["study", "coadaptation", "--out", "{full}", "--small"], "exists and is not empty; pass --overwrite"),
    (["study", "coadaptation", "--out", "{out}", "--preset", "huge"], "study 'coadaptation' has no preset 'huge'; allowed: small, full, paper"),
    (["study", "dro", "--out", "{out}", "--preset", "paper"], "study 'dro' has no preset 'paper'; allowed: small, full"),
    (["study", "coadaptation", "--out", "{out}", "--small", "--preset", "paper"], "--small and --preset paper disagree"),
])
def test_study_command_rejects_bad_input_with_one_line_and_exit_2(argv, message, tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_text("x")
    argv = [a.format(out=tmp_path / "new", full=tmp_path / "full") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lab study: error:") and message in err and "\n" not in err
    assert not (tmp_path / "new").exists()
