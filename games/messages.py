"""Message conventions, decided once (README): symbol 0 is EOS, `vocab_size` counts it, `max_len` counts
every position including the EOS position, a message is `[..., max_len]` padded with 0 after its first
EOS, and its length is the index of the first 0 plus one, or `max_len` when it has none.

    >>> import jax.numpy as jnp
    >>> m = jnp.array([[3, 0, 5], [1, 2, 4]])
    >>> truncate_at_eos(m).tolist(), message_length(m).tolist(), content_length(m).tolist()
    ([[3, 0, 0], [1, 2, 4]], [2, 3], [1, 3])
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def content_mask(message: jax.Array) -> jax.Array:
    """`[..., max_len]` bool: True at the symbols before the first EOS (the message's content)."""
    return jnp.cumprod(jnp.asarray(message) != 0, axis=-1).astype(bool)


def alive(message: jax.Array) -> jax.Array:
    """`[..., max_len]` bool: True up to and including the first EOS (the positions pi(m|x) counts)."""
    content = content_mask(message)
    return jnp.concatenate([jnp.ones_like(content[..., :1]), content[..., :-1]], axis=-1)


def truncate_at_eos(message: jax.Array) -> jax.Array:
    """Zero every symbol after the first EOS: `[..., max_len]`."""
    message = jnp.asarray(message)
    return jnp.where(content_mask(message), message, 0)


def content_length(message: jax.Array) -> jax.Array:
    """`[...]` int: the symbols before the first EOS (the EOS itself excluded)."""
    return content_mask(message).sum(-1)


def message_length(message: jax.Array) -> jax.Array:
    """`[...]` int: index of the first EOS plus one, or `max_len` when there is none."""
    return jnp.minimum(content_length(message) + 1, jnp.shape(message)[-1])


def end_weights(eos: jax.Array) -> jax.Array:
    """P(message ends at t) `[B, T]` from per-position EOS indicators `eos: [B, T]` in [0, 1].

    ends_at[t] = eos[t] * prod_{s<t} (1 - eos[s]); the last position takes what is left. With hard
    indicators this is the one-hot of the end position; with straight-through ones it carries
    gradients (EGG's variable-length Gumbel-softmax loss).
    """
    not_yet = jnp.cumprod(1.0 - eos, axis=1)
    before = jnp.concatenate([jnp.ones_like(not_yet[:, :1]), not_yet[:, :-1]], axis=1)
    ends = before * eos
    return ends.at[:, -1].set(before[:, -1])
