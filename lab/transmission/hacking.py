"""Oracle -> teacher -> student (Tiapkin et al. 2025's controlled setup, ../shared/science/algorithms.md §F), pure JAX.

`Hacking(config)` holds the static part: the world, the oracle (`transmission.oracle`), the agents,
the student's distillation. Its pure functions, each for one run (jit and vmap them over seeds):

* `teacher(key, lr)`: a sender distilled from the oracle's messages for `teacher_objects` train
  objects (`teacher_samples` each, cross-entropy, `teacher_steps`): supervised fine-tuning on oracle
  data, an imperfect copy of the oracle outside its bottleneck;
* `student(key, teacher_params, lr)`: a student distilled from the teacher (or from the oracle,
  `transmission.teacher=oracle`) by `transmission.data` and `transmission.loss` on `n_objects` train
  objects, measured at log-spaced steps on the held-out (test) objects: `proxy` = KL(teacher || student),
  `golden` = KL(oracle || student) (nats per message, on `eval_samples` fixed messages per object), and
  the same two on the bottleneck's objects (`proxy_train`, `golden_train`); the structure of its greedy
  language over every object of the world (topsim, posdis, bosdis, distinct). The student starts fresh
  (`student_objects=0`), or, as the paper's students do, from supervised fine-tuning on the oracle's messages
  for the first `student_objects` of the teacher's objects (the teacher's recipe on less data: the teacher is
  the better speaker, as the paper's larger teacher is);
* `language(key, student_params, teacher_params, lr)`: at the end, the ease of teaching, expressivity and
  hold-out accuracy of the student's language (lab.transmission.language.teach), the teacher's own
  distance to the oracle (`teacher_golden`) and topsim.

A trained sender may teach instead (`transmission.teacher=trained`: the caller passes its parameters, e.g.
read from a `lab run` checkpoint by lab.experiment.checkpoint). There is then no oracle, and `golden` is
the task's error instead: 1 - the hold-out accuracy of a fresh listener taught the student's language on the
train objects (lab.transmission.language.teach, `teach_steps`), at every evaluation; `golden_train` is its
error on the train objects.

Keys are folded from the run key by purpose, so the conditions of a study that share a seed share the
teacher, the objects (the first n_objects of one permutation of the train objects), the reference
messages and the student's initial weights.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lab.core.spec import Spec
from lab.transmission import config as transmission_config
from lab.transmission.distill import Distiller, Samples, kl, speak, token_kl
from lab.transmission.language import structure, teach
from lab.transmission.oracle import TableSender, oracle_sender

# what each key folded from the run key is for
TEACHER, OBJECTS, CORPUS, STUDENT, RUN, REFERENCE, TEACH = range(7)



class References(NamedTuple):
    """Fixed messages the distances are estimated on: the teacher's and the oracle's, each on the test objects and on the
    bottleneck's, in one `Samples` (one teacher forcing of the student measures all four); `part [rows]` says whose."""

    samples: Samples
    part: jax.Array  # [rows] index into PARTS (the first two only, without an oracle)

    PARTS = ("proxy", "proxy_train", "golden", "golden_train")  # teacher on test, on train; oracle on test, on train

    def distances(self, student) -> dict:
        """KL(speaker || student) per message (lab.transmission.distill.kl) of each part (NaN for a part with no rows)."""
        s = self.samples
        per_row = token_kl(s.log_p, student.symbol_log_probs(s.objects, s.messages), s.messages)
        n = len(self.PARTS)
        means = jax.ops.segment_sum(per_row, self.part, n) / jnp.bincount(self.part, length=n)
        return dict(zip(self.PARTS, means))


class Hacking:
    def __init__(self, config):
        transmission_config.check(config, config.transmission.teacher == "distilled")
        self.config = config
        t, g = config.transmission, config.game
        self.spec = spec = Spec(config)
        self.agents, self.game, world = spec.agents, spec.game, spec.world
        self.oracle: TableSender | None = None
        if t.teacher != "trained":
            self.oracle = oracle_sender(t.oracle, world.objects, g.n_values, config.agents.vocab_size,
                                        config.agents.max_len, t.oracle_noise, g.seed)
        self.objects = jnp.asarray(world.objects)
        self.train_objects, self.test_objects = jnp.asarray(world.train_objects), jnp.asarray(world.test_objects)
        self.n_objects = t.bottleneck(len(world.train))
        self.teacher_distiller = Distiller(self.agents, "offline", "cross_entropy", t.teacher_steps, t.batch_size, 2)
        self.distiller = Distiller(self.agents, t.data, t.loss, t.steps, t.batch_size, t.evals, self.measure)
        self.train_env = self.game.default_params(world.train_objects)
        self.episodes = {"train": spec.split_episodes("train"), "test": spec.split_episodes("test")}

    @property
    def steps_evaluated(self) -> np.ndarray:
        return self.distiller.steps_evaluated

    def bottleneck(self, key: jax.Array, n: int) -> jax.Array:
        """`[n, K]`: the first n of a permutation of the train objects drawn with `key`."""
        return self.train_objects[jax.random.permutation(key, self.train_objects.shape[0])[:n]]

    def fine_tuned(self, key: jax.Array, n_objects: int, start, lr: jax.Array):
        """Parameters `start` after supervised fine-tuning on the oracle's messages for the first `n_objects` of the
        teacher's objects (`teacher_samples` each: the first rows of the teacher's corpus), `teacher_steps` of
        cross-entropy."""
        t = self.config.transmission
        if self.oracle is None:
            raise ValueError("transmission.teacher='trained': the teacher is given, not distilled from an oracle")
        keys = jax.random.split(jax.random.fold_in(key, TEACHER), 4)
        corpus = speak(self.oracle, self.bottleneck(keys[0], t.teacher_objects)[:n_objects], t.teacher_samples, keys[1])
        return self.teacher_distiller.run(keys[2], self.oracle, corpus, start, lr)[0]

    def teacher(self, key: jax.Array, lr: jax.Array):
        """A sender distilled from the oracle on `teacher_objects` train objects (module doc): its parameters."""
        start = self.agents.init_sender(jax.random.split(jax.random.fold_in(key, TEACHER), 4)[3])
        return self.fine_tuned(key, self.config.transmission.teacher_objects, start, lr)

    def start(self, key: jax.Array, lr: jax.Array):
        """The student's parameters before its distillation: fresh, or fine-tuned on oracle data (module doc)."""
        params = self.agents.init_sender(jax.random.fold_in(key, STUDENT))
        n = self.config.transmission.student_objects
        return self.fine_tuned(key, n, params, lr) if n > 0 else params

    def teacher_sender(self, teacher_params):
        """The teacher as a sender: the oracle itself (`teacher=oracle`), or the sender of the parameters given."""
        return self.oracle if self.config.transmission.teacher == "oracle" else self.agents.sender(teacher_params)

    def measure(self, student, context) -> dict:
        """The measures over steps: proxy and golden (module doc), and the structure of the student's language."""
        references, key = context
        distances = references.distances(student)
        if self.oracle is None:  # golden: the task's error with a fresh listener taught the student's language
            t = self.config.transmission
            key_listener, key_teach = jax.random.split(key)
            taught = teach(self.agents, self.game, student, self.agents.init_receiver(key_listener), self.train_env,
                           self.episodes, key_teach, t.teach_steps, t.batch_size, t.lr)
            distances.update(golden=1.0 - taught["test_accuracy"], golden_train=1.0 - taught["train_accuracy"])
        return {**distances, **structure(student, self.objects, self.config.game.n_values)}

    def references(self, key: jax.Array, teacher, pool: jax.Array) -> References:
        """`eval_samples` messages per object of the teacher and of the oracle (when there is one), on the test
        objects and on the pool."""
        per = self.config.transmission.eval_samples
        both = jnp.concatenate([self.test_objects, pool])
        key_teacher, key_oracle = jax.random.split(jax.random.fold_in(key, REFERENCE))
        samples = speak(teacher, both, per, key_teacher)
        split = np.repeat([0, 1], per * np.array([self.test_objects.shape[0], pool.shape[0]]))
        if self.oracle is None:
            return References(samples, jnp.asarray(split))
        samples = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), samples, speak(self.oracle, both, per, key_oracle))
        return References(samples, jnp.asarray(np.concatenate([split, split + 2])))

    def data(self, key: jax.Array, teacher, pool: jax.Array):
        """The student's data: the offline corpus (Samples), or the pool of objects the online sources speak of."""
        t = self.config.transmission
        if t.data == "offline":
            return speak(teacher, pool, t.samples_per_object, jax.random.fold_in(key, CORPUS))
        return pool

    def student(self, key: jax.Array, teacher_params, lr: jax.Array):
        """`(student_params, history)`: one run's distillation of a fresh student from the teacher (module doc);
        `history[name] [n_evals]`, the measures over steps."""
        teacher = self.teacher_sender(teacher_params)
        pool = self.bottleneck(jax.random.fold_in(key, OBJECTS), self.n_objects)
        references = self.references(key, teacher, pool)
        return self.distiller.run(jax.random.fold_in(key, RUN), teacher, self.data(key, teacher, pool), self.start(key, lr), lr,
                                  (references, jax.random.fold_in(key, TEACH + 1)))

    def language(self, key: jax.Array, student_params, teacher_params, lr: jax.Array) -> dict:
        """At the end of a run (the same key): the student's language taught to a fresh listener (ease of teaching,
        train and test accuracy: lab.transmission.language.teach), and the teacher's own distance to the oracle
        (`teacher_golden`, on the messages `golden` is measured on) and topsim. It does not depend on the data source:
        one compiled call serves every condition of a study."""
        t = self.config.transmission
        teacher = self.teacher_sender(teacher_params)
        key_listener, key_teach = jax.random.split(jax.random.fold_in(key, TEACH))
        out = teach(self.agents, self.game, self.agents.sender(student_params), self.agents.init_receiver(key_listener),
                    self.train_env, self.episodes, key_teach, t.teach_steps, t.batch_size, lr)
        out["teacher_topsim"] = structure(teacher, self.objects, self.config.game.n_values)["topsim"]
        if self.oracle is None:
            return out
        # the oracle's messages of the test objects, as `references` drew them (row keys: the first rows are these)
        oracle = speak(self.oracle, self.test_objects, t.eval_samples, jax.random.split(jax.random.fold_in(key, REFERENCE))[1])
        out["teacher_golden"] = kl(oracle, teacher)
        return out
