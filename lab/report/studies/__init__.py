"""Studies: several conditions x seeds, one tidy table, figures and a verdict computed from the numbers.

`lab study NAME --out DIR [--small | --preset NAME]`; each study is a module here declaring its conditions, claims and
outputs (lab.report.studies.common.Declaration) with one entry function, listed in STUDIES.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from lab.experiment.config import ConfigError
from lab.experiment.execute import setup
from lab.report.studies import coadaptation, curriculum_adam, dro, iterated_learning, merging, teacher_hacking
from lab.report.studies.common import Declaration, Study

DECLARATIONS: dict[str, Declaration] = {module.STUDY.name: module.STUDY for module in
                                         (coadaptation, curriculum_adam, dro, merging, teacher_hacking, iterated_learning)}
STUDIES: dict[str, Callable[..., Study]] = {"coadaptation": coadaptation.coadaptation, "curriculum-adam": curriculum_adam.curriculum_adam,
                                            "dro": dro.dro, "merging": merging.merging,
                                            "teacher-hacking": teacher_hacking.teacher_hacking,
                                            "iterated-learning": iterated_learning.iterated_learning}
PRESETS: dict[str, tuple[str, ...]] = {name: tuple(spec.presets) for name, spec in DECLARATIONS.items()}


def run_study(name: str, out: str | Path, preset: str | None = None, **kwargs) -> Study:
    setup()
    if name not in STUDIES:
        raise ConfigError(f"unknown study {name!r}; allowed: {', '.join(STUDIES)}")
    DECLARATIONS[name].preset(kwargs.get("small", False), preset)  # a bad preset is refused before anything trains
    return STUDIES[name](out, preset=preset, **kwargs)
