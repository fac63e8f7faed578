"""What every study returns: a tidy table, a summary, a verdict computed from the numbers, and its time."""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd


class Study(NamedTuple):
    table: pd.DataFrame  # tidy, with a `condition` column
    summary: pd.DataFrame  # one row per condition
    verdict: str
    seconds: float
