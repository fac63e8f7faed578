"""Distillation: a student sender learns to speak as a teacher speaks, from a chosen source of data.

The teacher is any sender of the protocol (lab.core.agents.protocol): a trained one, or an oracle
language (lab.transmission.oracle). Every loss is token-level, over the positions a message counts
(up to and including its first EOS), summed over the message and averaged over the batch
(Tiapkin et al. 2025, "On Teacher Hacking in Language Model Distillation", ../shared/science/algorithms.md §F):

    forward_kl     sum_t KL(pi_T(.|x, m_<t) || pi_S(.|x, m_<t))   the default
    reverse_kl     sum_t KL(pi_S(.|x, m_<t) || pi_T(.|x, m_<t))
    cross_entropy  -log pi_S(m|x)                                 sequence-level: the sampled message as the label

The prefixes m come from the data source (`DATA`):

    offline         a fixed corpus: `samples_per_object` teacher messages for each of `n_objects` objects (the
                    bottleneck), drawn once and reused, batches drawn from it uniformly with replacement
    online_teacher  fresh teacher messages every step, for objects drawn from the same `n_objects`
    online_student  the student's own messages (on-policy, as GKD), scored by the teacher

By the chain rule, sum_t KL(P_t || Q_t) over prefixes drawn from P is an unbiased estimate of the
sequence-level KL(P || Q): `kl` measures the distance of a student to a teacher or an oracle that way,
on fixed samples (`Samples`) so that successive evaluations compare.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from games.messages import alive
from lab.core.agents import Agents, Sender

DATA = ("offline", "online_teacher", "online_student")
LOSSES = ("forward_kl", "reverse_kl", "cross_entropy")


class Samples(NamedTuple):
    """Messages of a speaker with its next-symbol distributions at every prefix: a corpus, or reference samples."""

    objects: jax.Array  # [n, K]
    messages: jax.Array  # [n, T]
    log_p: jax.Array  # [n, T, vocab] the speaker's log pi(s | x, m_<t)


def speak(sender: Sender, objects: jax.Array, per_object: int, key: jax.Array) -> Samples:
    """`per_object` messages of `sender` for each of `objects [N, K]`: `Samples` of N * per_object rows, object-major.
    Row r's message is drawn with its own key (`sample_each`): the first rows do not depend on how many follow."""
    objects = jnp.repeat(objects, per_object, axis=0)
    messages = sender.sample_each(objects, key).symbols
    return Samples(objects, messages, sender.symbol_log_probs(objects, messages))


def token_kl(log_p: jax.Array, log_q: jax.Array, messages: jax.Array) -> jax.Array:
    """`[n]`: sum over the live positions of KL(p_t || q_t), for next-symbol log-probabilities `[n, T, vocab]`."""
    p = jnp.exp(log_p)
    per_position = jnp.sum(jnp.where(p > 0, p * (log_p - log_q), 0.0), axis=-1)  # [n, T]
    return jnp.sum(jnp.where(alive(messages), per_position, 0.0), axis=-1)


def kl(reference: Samples, student: Sender) -> jax.Array:
    """Scalar: KL(reference speaker || student) per message, estimated on the reference's own samples (module doc)."""
    return jnp.mean(token_kl(reference.log_p, student.symbol_log_probs(reference.objects, reference.messages),
                             reference.messages))


def loss(kind: str, batch: Samples, student: Sender) -> jax.Array:
    """Scalar: the distillation loss `kind` (LOSSES) of the student on a batch of teacher-scored prefixes."""
    log_s = student.symbol_log_probs(batch.objects, batch.messages)
    if kind == "forward_kl":
        return jnp.mean(token_kl(batch.log_p, log_s, batch.messages))
    if kind == "reverse_kl":
        return jnp.mean(token_kl(log_s, batch.log_p, batch.messages))
    picked = jnp.take_along_axis(log_s, batch.messages[..., None], axis=-1)[..., 0]
    return -jnp.mean(jnp.sum(jnp.where(alive(batch.messages), picked, 0.0), axis=-1))


def eval_steps(steps: int, evals: int) -> np.ndarray:
    """The steps evaluated: 0, then about `evals - 1` steps spaced evenly on a log scale up to `steps` (log-log fits)."""
    return np.unique(np.concatenate([[0], np.round(np.geomspace(1, steps, max(evals - 1, 1))).astype(int), [steps]]))


class Distiller:
    """A student's distillation: `data` (DATA) and `loss` (LOSSES) static, `run` pure; jit and vmap it.

    `measure(student_sender, context) -> {name: scalar}` is evaluated at `eval_steps(steps, evals)` (0 and the last
    included); `context` is what `run` is given to compare with (reference samples drawn in the run, or None).
    """

    def __init__(self, agents: Agents, data: str, loss: str, steps: int, batch_size: int, evals: int,
                 measure: Callable[[Sender, object], dict] | None = None):
        if data not in DATA or loss not in LOSSES:
            raise ValueError(f"data {data!r} / loss {loss!r}: allowed {DATA} / {LOSSES}")
        self.agents, self.data, self.loss, self.steps, self.batch_size = agents, data, loss, steps, batch_size
        self.steps_evaluated = eval_steps(steps, evals)
        self.measure = measure or (lambda student, context: {})

    def batch(self, teacher: Sender, student: Sender, data, key: jax.Array) -> Samples:
        """This step's teacher-scored prefixes: from the corpus (`data` a `Samples`), or fresh for objects drawn from
        the pool (`data` objects `[N, K]`)."""
        key_draw, key_speak = jax.random.split(key)
        if self.data == "offline":
            rows = jax.random.randint(key_draw, (self.batch_size,), 0, data.objects.shape[0])
            return jax.tree.map(lambda leaf: leaf[rows], data)
        objects = data[jax.random.randint(key_draw, (self.batch_size,), 0, data.shape[0])]
        speaker = teacher if self.data == "online_teacher" else student
        messages = jax.lax.stop_gradient(speaker.sample(objects, key_speak).symbols)
        return Samples(objects, messages, jax.lax.stop_gradient(teacher.symbol_log_probs(objects, messages)))

    def run(self, key: jax.Array, teacher: Sender, data, student_params, lr: jax.Array, context=None):
        """`(student_params, history)`: `steps` Adam steps at rate `lr` from `student_params`; `history[name]` holds
        `measure(student, context)` at each evaluated step `[n_evals]`, `history["loss"]` the mean loss of the steps
        since the previous evaluation (NaN at step 0)."""
        optimizer = optax.adam(lr)
        measure = lambda student: self.measure(student, context)  # noqa: E731
        evaluated = self.steps_evaluated
        slot = np.full(self.steps + 1, -1)
        slot[evaluated] = np.arange(len(evaluated))

        def objective(params, batch):
            return loss(self.loss, batch, self.agents.sender(params))

        def record(history, params, i):
            values = measure(self.agents.sender(params))
            return {name: history[name].at[i].set(values[name]) for name in history}

        def step(carry, xs):
            params, opt_state, history = carry
            key_step, i = xs
            # `i` comes with the scan, unbatched under vmap: a real branch, the evaluation runs only where it is due
            history = jax.lax.cond(i >= 0, lambda h: record(h, params, i), lambda h: h, history)
            batch = self.batch(teacher, self.agents.sender(params), data, key_step)
            value, grads = jax.value_and_grad(objective)(params, batch)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state, history), value

        shapes = jax.eval_shape(measure, self.agents.sender(student_params))
        history = {name: jnp.full(len(evaluated), jnp.nan, s.dtype) for name, s in shapes.items()}
        carry = (student_params, optimizer.init(student_params), history)
        xs = (jax.random.split(key, self.steps), jnp.asarray(slot[:-1]))
        (params, _, history), losses = jax.lax.scan(step, carry, xs)
        history = record(history, params, len(evaluated) - 1)
        total = jnp.concatenate([jnp.zeros(1), jnp.cumsum(losses)])
        history["loss"] = jnp.concatenate([jnp.full(1, jnp.nan), (total[evaluated[1:]] - total[evaluated[:-1]])
                                           / np.diff(evaluated)])
        return params, history
