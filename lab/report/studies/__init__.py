"""Studies: several conditions x seeds, one tidy table, figures and a verdict computed from the numbers.

`lab study NAME --out DIR [--small]`; each study is a module here with one entry function, listed in STUDIES.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from lab.experiment.config import ConfigError
from lab.report.studies import coadaptation, curriculum_adam, dro, merging
from lab.report.studies.common import Study

STUDIES: dict[str, Callable[..., Study]] = {"coadaptation": coadaptation.coadaptation, "curriculum-adam": curriculum_adam.curriculum_adam,
                                            "dro": dro.dro, "merging": merging.merging}


def run_study(name: str, out: str | Path, **kwargs) -> Study:
    if name not in STUDIES:
        raise ConfigError(f"unknown study {name!r}; allowed: {', '.join(STUDIES)}")
    return STUDIES[name](out, **kwargs)
