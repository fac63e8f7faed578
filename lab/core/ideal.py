"""The speaker's ideal listener and the decomposition of the game loss, as the trainer logs them.

Reconstruction game, prior p over a finite object set, speaker pi(m|x), listener rho(x|m)
(Rita et al. 2022, arXiv 2209.15342):

    pihat(x|m) = p(x) pi(m|x) / sum_x' p(x') pi(m|x')          the speaker's ideal listener
    L       = -E log rho(x|m) = L_info + L_adapt
    L_info  = -E log pihat(x|m) = H(X|M)                       0 iff no two objects share a message
    L_adapt =  E log pihat(x|m) - log rho(x|m) = E_m KL(pihat(.|m) || rho(.|m)) >= 0

Estimator over n objects with a uniform prior: one message m_i ~ pi(.|x_i) per object, every
message teacher-forced under every object, A_ij = log pi(m_i|x_j), and

    log pihat(x_i|m_i) = A_ii - logsumexp_j A_ij

(the 1/n of the prior cancels). Each term is unbiased.

`message_log_probs` teacher-forces the objects in blocks of at most MAX_PAIRS (prefix, object)
pairs: small blocks keep each level's hidden states in the CPU's cache. On the default game (205
messages x 205 objects, one seed, 2-core AMD EPYC, 2026-12-06) a split took 133 ms in blocks of
2^15 pairs and 87 ms in blocks of 2^12; sharing the recurrent matmul between the children of a
prefix brought it to 67 ms. The whole evaluation of 8 seeds on two devices: 1.99 s -> 1.28 s in
blocks of 2^10.

lab.analysis.decomposition has the exact enumeration, the sampled normaliser for thousands of
objects and the drivers for trained agents.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from games.messages import alive
from lab.core.agents import Sender

MAX_PAIRS = 1 << 10  # (message, object) pairs per block: a working set that stays in cache (module doc)


class Decomposition(NamedTuple):
    """Mean nats; `loss == l_info + l_adapt`."""

    loss: jax.Array  # -mean log rho(x|m)
    l_info: jax.Array  # -mean log pihat(x|m)
    l_adapt: jax.Array  # mean (log pihat(x|m) - log rho(x|m))


def _concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_decompose(log_pi, log_rho) -> None:
    if log_pi.ndim != 2 or log_pi.shape[0] != log_pi.shape[1]:
        raise ValueError(f"log_pi must be a square matrix [n, n] with log_pi[i, j] = log pi(m_i|x_j), got shape {log_pi.shape}")
    if log_pi.shape[0] == 0:
        raise ValueError("log_pi has n = 0 objects; the decomposition needs at least one")
    if log_rho.shape != log_pi.shape[:1]:
        raise ValueError(f"log_rho must have shape [n] = {log_pi.shape[:1]} to match log_pi {log_pi.shape}, got {log_rho.shape}")
    if _concrete(log_pi) and np.any(np.asarray(log_pi) > 1e-5):
        raise ValueError(f"log_pi holds log-probabilities, which are <= 0; its largest entry is {float(np.max(log_pi)):.4g}")
    if _concrete(log_rho) and np.any(np.asarray(log_rho) > 1e-5):
        raise ValueError(f"log_rho holds log-probabilities, which are <= 0; its largest entry is {float(np.max(log_rho)):.4g}")
    if _concrete(log_pi) and not np.all(np.isfinite(np.diagonal(np.asarray(log_pi)))):
        raise ValueError("log_pi must have a finite diagonal: m_i was sampled from pi(.|x_i), so log pi(m_i|x_i) > -inf")


def log_pihat(log_pi: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """log pihat(x_i|m_i) `[n]` under a uniform prior, from `log_pi[i, j] = log pi(m_i|x_j)` `[n, n]`.

    `mask: [n]` restricts the prior to the objects where it is True (rows outside it are not meaningful).
    """
    if mask is not None:
        log_pi = jnp.where(mask[None, :], log_pi, -jnp.inf)
    return jnp.diagonal(log_pi) - jax.nn.logsumexp(log_pi, axis=1)


def terms(log_pihat_: jax.Array, log_rho: jax.Array, mask: jax.Array | None = None) -> Decomposition:
    """(loss, l_info, l_adapt) as means over the objects (where `mask` is True)."""
    w = jnp.ones_like(log_rho) if mask is None else mask.astype(log_rho.dtype)
    mean = lambda v: jnp.sum(w * jnp.where(w > 0, v, 0.0)) / jnp.sum(w)  # noqa: E731
    return Decomposition(loss=-mean(log_rho), l_info=-mean(log_pihat_), l_adapt=mean(log_pihat_ - log_rho))


def decompose(log_pi: jax.Array, log_rho: jax.Array) -> Decomposition:
    """Estimate (loss, l_info, l_adapt) over n objects, one sampled message each, uniform prior.

    `log_pi: [n, n]`, `log_pi[i, j] = log pi(m_i|x_j)` for the message m_i sampled for x_i;
    `log_rho: [n]`, `log_rho[i] = log rho(x_i|m_i)`.

        >>> A = jnp.log(jnp.array([[1.0, 0.0], [0.0, 1.0]]))   # a one-to-one code
        >>> d = decompose(A, jnp.log(jnp.array([0.5, 0.5])))
        >>> round(float(d.l_info), 4), round(float(d.l_adapt), 4)   # no ambiguity; the listener hesitates
        (0.0, 0.6931)
    """
    log_pi, log_rho = jnp.asarray(log_pi, jnp.float32), jnp.asarray(log_rho, jnp.float32)
    _check_decompose(log_pi, log_rho)
    return terms(log_pihat(log_pi), log_rho)


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


def in_row_blocks(fn, rows: int, *arrays):
    """`fn(*arrays)` computed `rows` rows at a time (`lax.map`; the last block padded with row 0)."""
    n = arrays[0].shape[0]
    n_blocks = -(-n // min(rows, n))
    rows = -(-n // n_blocks)  # balanced blocks pad fewer rows
    padded = [jnp.concatenate([a, jnp.broadcast_to(a[:1], (n_blocks * rows - n, *a.shape[1:]))]) for a in arrays]
    out = jax.lax.map(lambda args: fn(*args), [a.reshape(n_blocks, rows, *a.shape[1:]) for a in padded])
    return jax.tree.map(lambda o: o.reshape(n_blocks * rows, *o.shape[2:])[:n], out)


def message_log_probs(sender: Sender, objects: jax.Array, messages: jax.Array, max_pairs: int = MAX_PAIRS,
                      objects_mask: jax.Array | None = None) -> jax.Array:
    """A `[n_messages, n_objects]`, A_ij = log pi(m_i|x_j): every message teacher-forced under every object.

    `objects: [n_objects, K]`, `messages: [n_messages, max_len]`. The sender's decoder runs once
    per (distinct prefix, object), not per (message, position, object): messages that share a
    prefix share its hidden states (half the work for 205 messages of 5 symbols from 10).
    Objects go in blocks (`lax.map`) of at most `max_pairs` (prefix, object) pairs, so memory
    stays bounded as n grows. The recurrent matmul `h @ W_hidden` is computed once per prefix and shared by its
    children (level sizes 1, 10, 100, 205, 205: 317 rows of it instead of 521). Same values as `sender.log_prob` on
    every pair (tested). `objects_mask [n_objects]`: a block of objects all outside it is not computed (its columns
    are 0): the padding of a small split, evaluated at the size of a larger one (lab.core.evaluate), costs nothing.
    """
    n_messages = messages.shape[0]
    levels = prefix_levels(messages, sender.vocab_size)
    widest = max(size for *_, size in levels)
    table = sender.input_table()
    live = alive(messages)

    def block(block_objects):  # [c, K] -> [c, n_messages]
        c = block_objects.shape[0]
        carry = jax.tree.map(lambda h: h[None], sender.start(block_objects))  # [1, c, H]
        out = jnp.zeros((n_messages, c))
        for t, (node, parent, symbol, size) in enumerate(levels):
            x_proj = table[-1:] if t == 0 else table[symbol]  # [size, gates*H]
            # the recurrent matmul once per prefix, not once per child: the children of a prefix share it
            h_proj = sender.cell.hidden_projection(carry)  # [parents, c, gates*H]
            carry, log_p = sender.step(jax.tree.map(lambda h: h[parent], carry), x_proj[:, None], h_proj[parent])
            picked = jnp.take_along_axis(log_p[node], messages[:, t, None, None], axis=2)[..., 0]  # [n, c]
            out = out + jnp.where(live[:, t, None], picked, 0.0)
        return out.T

    rows = max(1, max_pairs // widest)  # objects per block
    if objects_mask is None:
        return in_row_blocks(block, rows, objects).T
    skip = lambda block_objects: jnp.zeros((block_objects.shape[0], n_messages))  # noqa: E731
    return in_row_blocks(lambda o, m: jax.lax.cond(jnp.any(m), block, skip, o), rows, objects, objects_mask).T


def ideal_log_pihat(sender: Sender, objects: jax.Array, log_prior: jax.Array, own: jax.Array, symbols: jax.Array,
                    log_prob: jax.Array, key: jax.Array, size: int = 0) -> jax.Array:
    """log pihat(x_b|m_b) `[B]` over `objects [n, K]` with prior `exp(log_prior) [n]`; `own [B]` indexes each target.

    With `size` 0 or at least n, exact: every message is teacher-forced under every object.
    Otherwise the normaliser pi(m_b) = p(x_b) pi(m_b|x_b) + sum_{j != b} p_j pi(m_b|x_j) keeps its
    first term exactly (`log_prob [B]` = log pi(m_b|x_b)) and estimates the rest with `size`
    objects drawn from p: unbiased for pi(m_b), so log pihat is slightly overestimated, never above 0.
    """
    n = objects.shape[0]
    if size == 0 or size >= n:
        log_joint = log_prior + message_log_probs(sender, objects, symbols)  # [B, n] log p(x_j) pi(m_b|x_j)
        return jnp.take_along_axis(log_joint, own[:, None], axis=1)[:, 0] - jax.nn.logsumexp(log_joint, axis=1)
    reference = jax.random.choice(key, n, (size,), p=jnp.exp(log_prior))  # [S] drawn from the prior
    log_pi = message_log_probs(sender, objects[reference], symbols)  # [B, S]
    other = reference[None, :] != own[:, None]
    log_mean_other = jax.nn.logsumexp(jnp.where(other, log_pi, -jnp.inf), axis=1) - jnp.log(jnp.maximum(other.sum(1), 1))
    log_p_target = log_prior[own]
    log_own = log_p_target + log_prob
    log_rest = jnp.log1p(-jnp.exp(log_p_target)) + log_mean_other
    return log_own - jnp.logaddexp(log_own, log_rest)
