"""What the course's notebooks share: the printed check of an expected result against a run.

Every notebook states the result the literature expects and its source, then checks its own run:

    >>> check("every pair finds a working convention", "Lewis 1969", holds=True, observed="4 of 4 pairs", small=False)
    Expected (Lewis 1969): every pair finds a working convention.
    Observed: 4 of 4 pairs -> reproduced.
    'reproduced'
"""

from __future__ import annotations

REPRODUCED, NOT_REPRODUCED, TOO_SHORT = "reproduced", "NOT reproduced", "not seen in this small run"
INCONCLUSIVE = "inconclusive"


def check(expected: str, source: str, holds: bool, observed: str, small: bool, inconclusive: bool = False) -> str:
    """Print the expectation, what the run shows and the call; return the call.

    A small-mode run (LAB_SMALL=1) is a sketch: an expectation it does not show is 'not seen in this
    small run', never 'NOT reproduced', since the run may simply be too short to tell. `inconclusive`:
    the expectation does not hold, but only because the seeds disagree too much to tell (the studies' rule,
    lab.report.studies.common.judge), so the call is 'inconclusive', not 'NOT reproduced'.
    """
    call = REPRODUCED if holds else TOO_SHORT if small else INCONCLUSIVE if inconclusive else NOT_REPRODUCED
    why = {TOO_SHORT: " (small mode is a sketch, too short to judge: run the full mode to decide)",
           INCONCLUSIVE: " (the seeds disagree too much to tell either way: more seeds would decide)"}.get(call, "")
    print(f"Expected ({source}): {expected}.\nObserved: {observed} -> {call}{why}.")
    return call
