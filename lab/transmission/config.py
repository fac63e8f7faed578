"""The `transmission` and `iterated` config sections: distillation (oracle, teacher, student, data) and chains.

Checks across sections that depend on the world (a bottleneck larger than the train objects, an
oracle that does not fit the vocabulary or the message length) are made by `check(config)` when a
transmission is built (lab.transmission.hacking, lab.transmission.chain), not whenever a config is
read: `lab run` never uses these sections and need not satisfy them.
"""

from __future__ import annotations

from dataclasses import dataclass

from games.fields import ConfigError, doc
from lab.transmission.distill import DATA, LOSSES
from lab.transmission.oracle import LANGUAGES

TEACHERS = ("oracle", "distilled", "trained")
STARTS = ("random", "oracle")


@dataclass(frozen=True)
class TransmissionConfig:
    oracle: str = doc(f"the oracle language: {', '.join(LANGUAGES)} (games.languages; lab.transmission.oracle), or a table "
                      "file (.npy, .csv or .txt) of one message, or [synonyms] messages, per object of the world in its "
                      "order", "compositional")
    oracle_noise: float = doc("uniform noise mixed into the oracle's next-symbol distribution (0: the table exactly; > 0 "
                              "gives every message some probability)", 0.05, low=0.0, high=1.0, high_open=True)
    teacher: str = doc("who teaches the student: oracle (the oracle language itself), distilled (a sender distilled from "
                       "the oracle's messages for teacher_objects objects: an imperfect teacher) or trained (a trained "
                       "sender, given: no oracle, and golden is the task's error with a fresh listener)", "distilled",
                       choices=TEACHERS)
    teacher_objects: int = doc("distilled teacher: train objects whose oracle messages it learns (its bottleneck)", 16, low=1)
    teacher_samples: int = doc("distilled teacher: oracle messages per object in its corpus", 4, low=1)
    teacher_steps: int = doc("distilled teacher: Adam steps of cross-entropy on its corpus (supervised fine-tuning on "
                             "oracle data, the paper's first stage)", 1000, low=1)
    student_objects: int = doc("the student's start: 0, a freshly initialised sender; n > 0, a sender first fine-tuned "
                               "on the oracle's messages for the first n of the distilled teacher's objects (its recipe on "
                               "less data), as the paper's students start from supervised fine-tuning", 0, low=0)
    data: str = doc("where the student's messages come from: offline (a fixed corpus of teacher messages, reused), "
                    "online_teacher (fresh teacher messages every step) or online_student (the student's own messages, "
                    "scored by the teacher)", "offline", choices=DATA)
    loss: str = doc("the student's loss: forward_kl or reverse_kl (token-level, against the teacher's next-symbol "
                    "distributions) or cross_entropy (on the sampled messages, as labels)", "forward_kl", choices=LOSSES)
    n_objects: int = doc("the student's bottleneck: train objects its data speaks of (the offline corpus's, and the "
                         "online data's); 0: every train object", 16, low=0)
    samples_per_object: int = doc("offline: teacher messages per object in the corpus (n_objects x samples_per_object "
                                  "rows)", 4, low=1)
    steps: int = doc("the student's Adam steps", 2000, low=1)
    batch_size: int = doc("messages per distillation step (teacher's and student's)", 64, low=1)
    lr: float = doc("Adam learning rate of the distillations (teacher's and student's)", 3e-3, low=0.0, low_open=True,
                    continuous=True)
    evals: int = doc("evaluations of the student, at steps spaced evenly on a log scale (step 0 and the last included)",
                     24, low=2)
    eval_samples: int = doc("messages per held-out object on which the proxy (KL to the teacher) and golden (KL to the "
                            "oracle) metrics are estimated, drawn once per run", 8, low=1)
    fit_start: float = doc("teacher-hacking detection: the golden metric's early power law is fitted from this fraction "
                           "of the steps", 0.01, low=0.0, high=1.0)
    fit_end: float = doc("... to this fraction of the steps", 0.1, low=0.0, high=1.0)
    tolerance: float = doc("teacher-hacking detection: the golden metric departs from its power law, or turns, when it "
                           "exceeds the fit, or its minimum, by this fraction", 0.1, low=0.0, low_open=True)
    teach_steps: int = doc("steps of the fresh listener that measures a language's ease of teaching, expressivity and "
                           "hold-out accuracy (lab.transmission.language.teach)", 200, low=1)

    def validate(self, config) -> None:
        if self.fit_start >= self.fit_end:
            raise ConfigError(f"transmission.fit_start={self.fit_start}: must be below transmission.fit_end={self.fit_end}")
        if self.loss == "cross_entropy" and self.data == "online_student":
            raise ConfigError("transmission.loss='cross_entropy' needs the teacher's messages (data offline or "
                              "online_teacher): on the student's own messages it would teach the student itself")
        if self.loss == "reverse_kl" and self.teacher == "oracle" and self.oracle_noise == 0:
            raise ConfigError("transmission.loss='reverse_kl' from the oracle needs transmission.oracle_noise > 0: the "
                              "student's messages off the table have probability 0 under it")

        if self.student_objects > self.teacher_objects:
            raise ConfigError(f"transmission.student_objects={self.student_objects}: the student fine-tunes on the first of "
                              f"the teacher's objects; allowed 0..{self.teacher_objects} (transmission.teacher_objects)")
        if self.student_objects and self.teacher == "trained":
            raise ConfigError(f"transmission.student_objects={self.student_objects} needs an oracle to fine-tune on; "
                              "transmission.teacher='trained' has none: allowed 0")

    def bottleneck(self, n_train: int) -> int:
        """The student's objects: `n_objects`, or every train object when it is 0."""
        return self.n_objects or n_train


@dataclass(frozen=True)
class IteratedConfig:
    generations: int = doc("generations of a chain: each generation's student learns from the previous generation's "
                           "speaker (as the transmission section says) and speaks to the next", 10, low=1)
    start: str = doc("the first teacher: random (a freshly initialised sender, as in neural iterated learning) or oracle "
                     "(transmission.oracle)", "random", choices=STARTS)
    interact_steps: int = doc("expressivity phase: steps the new speaker and a fresh listener play the game (the train "
                              "section: REINFORCE or Gumbel, learning rates, batch) before it passes its language on; "
                              "0: no expressivity phase", 0, low=0)
    listener_steps: int = doc("expressivity phase: at most this many steps the fresh listener first learns alone "
                              "(early-stopped as interventions.refit_patience and refit_tolerance say)", 200, low=1)
    distinct_min: float = doc("a language is degenerate when its distinct messages number fewer than this share of the "
                              "objects", 0.5, low=0.0, high=1.0)
    topsim_min: float = doc("a language that is not degenerate is compositional from this topsim on, else holistic", 0.8,
                            low=-1.0, high=1.0)


def check(config, distilled_teacher: bool = False) -> None:
    """The checks across sections a transmission needs (module doc): bottlenecks within the train objects (the distilled
    teacher's too, when there is one)."""
    t, n_train = config.transmission, config.game.n_train
    sizes = (("n_objects", t.n_objects),) + ((("teacher_objects", t.teacher_objects),) if distilled_teacher else ())
    for name, value in sizes:
        if value > n_train:
            raise ConfigError(f"transmission.{name}={value}: a bottleneck larger than the {n_train} train objects of the "
                              f"world (game section); allowed {'0..' if name == 'n_objects' else '1..'}{n_train}")
