"""The course's printed check: a small run never says 'NOT reproduced', nor does an undecided comparison."""

import pytest

from lab.report.course import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, TOO_SHORT, check


@pytest.mark.parametrize("holds, small, inconclusive, call", [
    (True, False, False, REPRODUCED), (True, True, True, REPRODUCED),
    (False, False, False, NOT_REPRODUCED), (False, True, False, TOO_SHORT), (False, True, True, TOO_SHORT),
    (False, False, True, INCONCLUSIVE),
])
def test_the_call(holds, small, inconclusive, call, capsys):
    assert check("x rises", "A 2020", holds=holds, observed="x 0.5", small=small, inconclusive=inconclusive) == call
    out = capsys.readouterr().out
    assert out.startswith("Expected (A 2020): x rises.\nObserved: x 0.5 -> " + call)
    assert ("more seeds would decide" in out) == (call == INCONCLUSIVE)
