"""Every message teacher-forced under every object: A_ij = log pi(m_i|x_j), the loss decomposition's cost.

`message_log_probs(sender, objects, messages)` calls the sender's fast hook when it has one (the
protocol's optional `message_log_probs`, lab.core.agents.protocol), and otherwise `every_pair`:
generic teacher forcing through the sender's `log_prob`, one row per (message, object) pair. Both
go through the objects in blocks (`by_object_blocks`, a `lax.map`) so memory stays bounded as n
grows, and skip a block whose objects are all outside a mask (the padding of a small split,
evaluated at the size of a larger one: lab.core.evaluate). `prefix_levels` is the prefix tree of
a set of messages, for hooks that decode each distinct prefix once.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

MAX_PAIRS = 1 << 10  # pairs per block: a working set that stays in cache (lab.core.agents.rnn)


def message_log_probs(sender, objects: jax.Array, messages: jax.Array, max_pairs: int = MAX_PAIRS,
                      objects_mask: jax.Array | None = None) -> jax.Array:
    """A `[n_messages, n_objects]`, A_ij = log pi(m_i|x_j), for `objects: [n_objects, K]`, `messages: [n_messages, T]`.

    `objects_mask [n_objects]`: a block of objects all outside it is not computed (its columns are 0).
    """
    fast = getattr(sender, "message_log_probs", None)
    if fast is not None:
        return fast(objects, messages, max_pairs, objects_mask)
    return every_pair(sender, objects, messages, max_pairs, objects_mask)


def every_pair(sender, objects: jax.Array, messages: jax.Array, max_pairs: int = MAX_PAIRS,
               objects_mask: jax.Array | None = None) -> jax.Array:
    """`message_log_probs` by generic teacher forcing: `sender.log_prob` on blocks of at most `max_pairs` pairs."""
    n_messages = messages.shape[0]

    def block(block_objects):  # [c, K] -> [c, n_messages]
        c = block_objects.shape[0]
        pairs = sender.log_prob(jnp.repeat(block_objects, n_messages, axis=0), jnp.tile(messages, (c, 1)))
        return pairs.reshape(c, n_messages)

    return by_object_blocks(block, objects, max(1, max_pairs // n_messages), n_messages, objects_mask)


def by_object_blocks(block, objects: jax.Array, rows: int, n_messages: int, objects_mask: jax.Array | None = None) -> jax.Array:
    """`[n_messages, n_objects]` from `block(objects [c, K]) -> [c, n_messages]` over blocks of `rows` objects; a block
    with no object in `objects_mask` is skipped (zeros)."""
    if objects_mask is None:
        return in_row_blocks(block, rows, objects).T
    skip = lambda block_objects: jnp.zeros((block_objects.shape[0], n_messages))  # noqa: E731
    return in_row_blocks(lambda o, m: jax.lax.cond(jnp.any(m), block, skip, o), rows, objects, objects_mask).T


def in_row_blocks(fn, rows: int, *arrays):
    """`fn(*arrays)` computed `rows` rows at a time (`lax.map`; the last block padded with row 0)."""
    n = arrays[0].shape[0]
    n_blocks = -(-n // min(rows, n))
    rows = -(-n // n_blocks)  # balanced blocks pad fewer rows
    padded = [jnp.concatenate([a, jnp.broadcast_to(a[:1], (n_blocks * rows - n, *a.shape[1:]))]) for a in arrays]
    out = jax.lax.map(lambda args: fn(*args), [a.reshape(n_blocks, rows, *a.shape[1:]) for a in padded])
    return jax.tree.map(lambda o: o.reshape(n_blocks * rows, *o.shape[2:])[:n], out)


def prefix_levels(messages: jax.Array, vocab_size: int) -> list[tuple[jax.Array, jax.Array, jax.Array, int]]:
    """The prefix tree of `messages: [n, T]`, one level per position t.

    Level t lists the distinct prefixes m_<t (at most min(vocab^t, n), a static bound):
    `(node [n]` the prefix of each message, `parent [size]` its prefix one symbol shorter,
    `symbol [size]` that last symbol, `size)`.
    """
    n, max_len = messages.shape
    sizes = [min(vocab_size**t, n) for t in range(max_len)]
    order = jnp.lexsort(messages.T[::-1])  # lexicographic order: equal prefixes are contiguous
    ranked = messages[order]
    # every level at once: a sorted message starts a new prefix of length t when it differs from the one before in
    # its first t symbols (the first message starts every level's first prefix)
    differs = jnp.cumsum(ranked[1:] != ranked[:-1], axis=1) > 0  # [n - 1, T]: within the first t + 1 symbols
    first = jnp.concatenate([jnp.zeros((n - 1, 1), bool), differs[:, :-1]], axis=1)
    first = jnp.concatenate([jnp.ones((1, max_len), bool), first])  # [n, T]
    node = jnp.zeros((n, max_len), jnp.int32).at[order].set(jnp.cumsum(first, axis=0, dtype=jnp.int32) - 1)
    previous = jnp.concatenate([jnp.zeros((n, 1), jnp.int32), node[:, :-1]], axis=1)  # [n, T] the prefix one shorter
    last = jnp.concatenate([jnp.zeros((n, 1), messages.dtype), messages[:, :-1]], axis=1)  # its last symbol
    level = jnp.broadcast_to(jnp.arange(max_len), (n, max_len))
    parent = jnp.zeros((max_len, max(sizes)), jnp.int32).at[level, node].set(previous)
    symbol = jnp.zeros((max_len, max(sizes)), jnp.int32).at[level, node].set(last)
    return [(node[:, t], parent[t, :size], symbol[t, :size], size) for t, size in enumerate(sizes)]
