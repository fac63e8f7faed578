"""Ease of teaching: how fast a fresh listener learns a frozen language (Li & Bowling 2019, NeurIPS).

The language is a table, a message for each object (a trained speaker's greedy messages, or a
hand-made language from `games.languages`). A newly initialised listener of the lab's receiver
architecture is trained on it with the reconstruction loss, -sum_k log rho(x_k | m), on batches of
the table's objects drawn uniformly, and its accuracy on every object of the table (and of a
held-out table, when given) is recorded along the way: the learning curve. A language that is
easier to teach has a curve that rises sooner; Li & Bowling find that compositional languages are
(Chaabouni et al. 2020 find the same of languages with high posdis).

    >>> import numpy as np, games
    >>> from games import languages
    >>> objects = games.all_objects(2, 3)
    >>> curve = ease_of_teaching(objects, languages.compositional(objects, 3), steps=50, eval_every=25, seeds=2)
    >>> curve.accuracy.shape                              # [seeds, evaluations]: steps 0, 25, 50
    (2, 3)
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from games.reconstruction import LewisReconstruction
from lab.core.agents import Agents, AgentsConfig


class TeachingCurve(NamedTuple):
    step: np.ndarray  # [E] listener steps at each evaluation, 0 first
    accuracy: np.ndarray  # [seeds, E] whole-object accuracy on the taught objects
    attribute_accuracy: np.ndarray  # [seeds, E] per-attribute accuracy, averaged over attributes
    test_accuracy: np.ndarray | None  # [seeds, E] whole-object accuracy on the held-out table, when given

    def area(self) -> np.ndarray:
        """`[seeds]` mean accuracy over the evaluations: one number per listener, higher = taught faster."""
        return self.accuracy.mean(-1)


def _table(objects, messages, vocab_size: int):
    """(objects `[n, K]`, the messages as the listener reads them `[n, max_len, vocab]`)."""
    return jnp.asarray(objects, jnp.int32), jax.nn.one_hot(jnp.asarray(messages, jnp.int32), vocab_size)


def ease_of_teaching(objects, messages, *, test_objects=None, test_messages=None, n_values: int | None = None,
                     vocab_size: int | None = None, listener: AgentsConfig | None = None, steps: int = 500,
                     batch_size: int = 32, lr: float = 3e-3, eval_every: int = 25, seeds: int = 4, seed: int = 0) -> TeachingCurve:
    """Train `seeds` fresh listeners on the language `messages [n, max_len]` for `objects [n, K]`; their learning curves.

    `listener`: the receiver's architecture (cell, hidden and embedding sizes; default GRU 64, embedding 16);
    its vocabulary and length come from the messages. Sizes not given are inferred (largest value or
    symbol + 1). The listeners train side by side in one compiled call (vmapped over `seeds`).
    """
    objects, messages = np.asarray(objects), np.asarray(messages)
    if objects.ndim != 2 or messages.ndim != 2 or len(objects) != len(messages):
        raise ValueError(f"objects [n, K] and messages [n, max_len] must have one row per object, got shapes "
                         f"{objects.shape} and {messages.shape}")
    tables = [(objects, messages)] + ([(np.asarray(test_objects), np.asarray(test_messages))] if test_objects is not None else [])
    n_values = n_values or int(max(t[0].max() for t in tables)) + 1
    vocab_size = vocab_size or int(max(t[1].max() for t in tables)) + 1
    if steps < 1 or eval_every < 1 or steps % eval_every:
        raise ValueError(f"steps={steps}, eval_every={eval_every}: both >= 1 and steps a multiple of eval_every")
    base = listener or AgentsConfig(hidden_size=64, embedding_size=16)
    agents = Agents(LewisReconstruction(objects.shape[1], n_values, vocab_size, messages.shape[1]),
                    AgentsConfig(cell=base.cell, hidden_size=base.hidden_size, embedding_size=base.embedding_size,
                                 vocab_size=vocab_size, max_len=messages.shape[1]))
    taught = _table(objects, messages, vocab_size)
    held_out = _table(*tables[1], vocab_size) if len(tables) > 1 else None
    keys = jax.random.split(jax.random.key(seed), seeds)
    run = partial(_teach, agents, taught, held_out, steps=steps, batch_size=batch_size, lr=lr, eval_every=eval_every)
    accuracy, attribute_accuracy, test_accuracy = jax.device_get(jax.jit(jax.vmap(run))(keys))
    return TeachingCurve(np.arange(0, steps + 1, eval_every), accuracy, attribute_accuracy,
                         test_accuracy if held_out is not None else None)


def _scores(receiver, table):
    """(whole-object accuracy, mean per-attribute accuracy) of the receiver's readings of a whole table."""
    objects, one_hot = table
    correct = jnp.argmax(receiver.read(one_hot, unroll=False), -1) == objects  # [n, K]
    return jnp.mean(jnp.all(correct, -1)), jnp.mean(correct)


def _teach(agents: Agents, taught, held_out, key, *, steps: int, batch_size: int, lr: float, eval_every: int):
    """One listener's curve: `(accuracy [E], attribute accuracy [E], held-out accuracy [E])`."""
    objects, one_hot = taught
    optimizer = optax.adam(lr)
    key_init, key_batches = jax.random.split(key)
    params = agents.init_receiver(key_init)

    def loss(params, rows):
        log_p = agents.receiver(params).read(one_hot[rows])  # [B, K, V]
        return -jnp.mean(jnp.take_along_axis(log_p, objects[rows][..., None], -1).sum((-2, -1)))

    def train_step(carry, key):
        params, opt_state = carry
        rows = jax.random.randint(key, (batch_size,), 0, objects.shape[0])
        grads = jax.grad(loss)(params, rows)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    def evaluate(params):
        receiver = agents.receiver(params)
        whole, per_attribute = _scores(receiver, taught)
        test = _scores(receiver, held_out)[0] if held_out is not None else jnp.float32(0.0)
        return jnp.stack([whole, per_attribute, test])

    def block(carry, keys):
        carry, _ = jax.lax.scan(train_step, carry, keys)
        return carry, evaluate(carry[0])

    n_blocks = steps // eval_every
    block_keys = jax.random.split(key_batches, n_blocks * eval_every).reshape(n_blocks, eval_every)
    _, scores = jax.lax.scan(block, (params, optimizer.init(params)), block_keys)
    scores = jnp.concatenate([evaluate(params)[None], scores])  # [E, 3]
    return scores[:, 0], scores[:, 1], scores[:, 2]
