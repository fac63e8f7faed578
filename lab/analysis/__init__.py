"""Why a protocol generalizes or not: the information / co-adaptation decomposition, probe listeners, ease of teaching.

    >>> import numpy as np
    >>> from lab import analysis
    >>> pi = np.eye(3)                         # a one-to-one code: 3 objects, 3 messages
    >>> rho = np.full((3, 3), 1 / 3)           # a listener that guesses at random
    >>> d = analysis.exact_decomposition(pi, rho)
    >>> round(float(d.l_info), 4), round(float(d.l_adapt), 4)   # nothing lost, log 3 of co-adaptation
    (0.0, 1.0986)
"""

from lab.analysis.decomposition import (
    decompose_agents,
    decompose_population,
    exact_decomposition,
    ideal_listener,
    priority_sample,
    sampled_log_normaliser,
)
from lab.analysis.probe import ProbeResult, fit_probe, probe, probe_population
from lab.analysis.teaching import TeachingCurve, ease_of_teaching
from lab.core.agents.forcing import every_pair, message_log_probs
from lab.core.ideal import Decomposition, decompose, log_pihat
from lab.core.refit import ReceiverFit, fit_receiver

__all__ = [
    "Decomposition", "decompose", "decompose_agents", "decompose_population", "exact_decomposition", "ideal_listener", "log_pihat",
    "every_pair", "message_log_probs", "priority_sample", "sampled_log_normaliser", "ReceiverFit", "fit_receiver",
    "ProbeResult", "fit_probe", "probe", "probe_population", "TeachingCurve", "ease_of_teaching",
]
