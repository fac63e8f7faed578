"""Studies: several conditions x seeds, one tidy table, figures and a verdict computed from the numbers.

`lab study NAME --out DIR [--small | --preset NAME]`; each study is a module here with one entry function, listed in STUDIES.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from lab.experiment.config import ConfigError
from lab.experiment.execute import setup
from lab.report.studies import coadaptation, curriculum_adam, dro, merging
from lab.report.studies.common import Study

STUDIES: dict[str, Callable[..., Study]] = {"coadaptation": coadaptation.coadaptation, "curriculum-adam": curriculum_adam.curriculum_adam,
                                            "dro": dro.dro, "merging": merging.merging}


PRESETS: dict[str, tuple[str, ...]] = {"coadaptation": tuple(coadaptation.PRESETS)}  # studies with named presets


def run_study(name: str, out: str | Path, preset: str | None = None, **kwargs) -> Study:
    setup()
    if name not in STUDIES:
        raise ConfigError(f"unknown study {name!r}; allowed: {', '.join(STUDIES)}")
    if preset is not None:
        allowed = PRESETS.get(name, ())
        if preset not in allowed:
            raise ConfigError(f"study {name!r} has no preset {preset!r}; allowed: {', '.join(allowed) or 'none (use --small)'}")
        kwargs["preset"] = preset
    return STUDIES[name](out, **kwargs)
