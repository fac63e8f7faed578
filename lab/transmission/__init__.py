"""Cultural transmission: a student sender learns a teacher's language by distillation; chains of such generations.

* lab.transmission.oracle: hand-designed languages as tables (compositional, holistic, synonyms, or a file) that
  speak through the sender protocol;
* lab.transmission.distill: distillation losses (token-level forward / reverse KL, cross-entropy on sampled
  messages) from an offline corpus, fresh teacher messages or the student's own, and the KL a student is measured by;
* lab.transmission.hacking: oracle -> teacher -> student, proxy and golden distances over steps (Tiapkin et al. 2025);
* lab.transmission.detect: teacher hacking read off the curves: the proxy-golden turn, the power-law departure;
* lab.transmission.language: structure, ease of teaching, expressivity, hold-out accuracy and kind of a language;
* lab.transmission.chain: iterated-learning chains, with an optional expressivity phase (Kirby 2015; Ren et al. 2020);
* lab.transmission.config: the `transmission` and `iterated` config sections.
"""

from lab.transmission import detect
from lab.transmission.chain import Chains, run_chains
from lab.transmission.config import IteratedConfig, TransmissionConfig
from lab.transmission.distill import DATA, LOSSES, Distiller, Samples, kl, speak
from lab.transmission.hacking import Hacking
from lab.transmission.language import KINDS, kind_of, structure, teach
from lab.transmission.oracle import LANGUAGES, TableSender, language, oracle_sender

__all__ = ["Chains", "DATA", "Distiller", "Hacking", "IteratedConfig", "KINDS", "LANGUAGES", "LOSSES", "Samples",
           "TableSender", "TransmissionConfig", "detect", "kind_of", "kl", "language", "oracle_sender", "run_chains", "speak",
           "structure", "teach"]
