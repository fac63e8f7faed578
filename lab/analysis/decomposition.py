"""The game loss as information plus co-adaptation: L = L_info + L_adapt (Rita et al. 2022, arXiv 2209.15342).

Reconstruction game, prior p over a finite object set, speaker pi(m|x), listener rho(x|m):

    L       = -E_{x~p, m~pi(.|x)} log rho(x|m)
    pihat(x|m) = p(x) pi(m|x) / sum_x' p(x') pi(m|x')          the speaker's ideal listener
    L_info  = -E log pihat(x|m) = H(X|M)                       0 iff no two objects share a message
    L_adapt =  E log pihat(x|m) - log rho(x|m) = E_m KL(pihat(.|m) || rho(.|m)) >= 0

Estimator over a set of n objects with a uniform prior (`decompose`): one message m_i ~ pi(.|x_i)
per object, every message teacher-forced under every object, A_ij = log pi(m_i|x_j), and

    log pihat(x_i|m_i) = A_ii - logsumexp_j A_ij

(the 1/n of the prior cancels). Each term is unbiased. `exact_decomposition` enumerates a
tabular speaker and listener instead: the ground truth the estimator is tested against.

The n^2 teacher-forced pairs are the cost (n = 4096 at max_len 10 is about 10^8 decoder steps).
For large n, `decompose_agents(..., columns=k)` estimates the normaliser S_i = sum_j pi(m_i|x_j)
and teacher-forces only k objects per message to the end. The own term pi(m_i|x_i) is exact; the
rest is narrowed down in stages along the message, each a priority sample (Duffield, Lund &
Thorup 2007) that is unbiased given the stage before:

    1. w_ij = pi(m_i[:d]|x_j) for every pair: short prefixes are shared by many messages, so the
       table is cheap (d as long as its cost stays within the forced pairs').
    2. 4k objects per message by priority w_ij / u_ij, each weighted by max(w_ij, tau_i) / w_ij
       (tau_i the (4k+1)-th priority), forced two more symbols: weights w'_ij.
    3. k of those by priority on w'_ij, forced to the end.

An object that could have said m_i (a homonym, the terms that make L_info) stands out in its
prefix probability and is kept with its exact weight; the many that could not are represented
by a few, weighted up. The estimate of S_i is unbiased; its log makes L_info slightly low
(Jensen). benchmarks/analysis.py measures the error against the exact value.

Only the reconstruction game has this decomposition: a discrimination listener chooses among
sampled candidates, so its loss is not -log rho(x|m) over the object set, and the trainer does
not log these terms for it.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.special

import games
from lab.agents import Receiver, Sender, eos_weights

MAX_PAIRS = 1 << 15  # teacher-forced (message, object) pairs per block: bounds the memory of `message_log_probs`


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


def log_pihat(log_pi: jax.Array) -> jax.Array:
    """log pihat(x_i|m_i) `[n]` under a uniform prior, from `log_pi[i, j] = log pi(m_i|x_j)` `[n, n]`."""
    return jnp.diagonal(log_pi) - jax.nn.logsumexp(log_pi, axis=1)


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
    return _terms(log_pihat(log_pi), log_rho)


def _terms(log_pihat_: jax.Array, log_rho: jax.Array) -> Decomposition:
    return Decomposition(loss=-jnp.mean(log_rho), l_info=-jnp.mean(log_pihat_), l_adapt=jnp.mean(log_pihat_ - log_rho))


def _check_distributions(name: str, rows: np.ndarray, what: str) -> None:
    if rows.ndim != 2:
        raise ValueError(f"{name} must be a matrix {what}, got shape {rows.shape}")
    if not np.all(np.isfinite(rows)) or np.any(rows < 0):
        bad = np.argwhere(~np.isfinite(rows) | (rows < 0))[0]
        raise ValueError(f"{name} must hold probabilities >= 0; {name}[{bad[0]}, {bad[1]}] = {rows[tuple(bad)]:.4g}")
    sums = rows.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1.0) > 1e-4)
    if off.size:
        raise ValueError(f"rows of {name} must be distributions summing to 1; row {off[0]} sums to {sums[off[0]]:.6g}")


def exact_decomposition(pi, rho, prior=None) -> Decomposition:
    """Exact (loss, l_info, l_adapt) by enumeration for tabular agents.

    `pi: [n_objects, n_messages]` rows pi(.|x); `rho: [n_messages, n_objects]` rows rho(.|m);
    `prior: [n_objects]`, uniform by default. Pairs with p(x) pi(m|x) = 0 do not count; a listener
    giving probability 0 to a pair that occurs has an infinite loss.

        >>> d = exact_decomposition(np.ones((4, 1)), np.full((1, 4), 0.25))   # one message for all
        >>> round(float(d.l_info), 4), round(float(d.l_adapt), 4)               # log 4, and an ideal listener
        (1.3863, 0.0)
    """
    pi, rho = np.asarray(pi, np.float64), np.asarray(rho, np.float64)
    _check_distributions("pi", pi, "[n_objects, n_messages]")
    n_objects, n_messages = pi.shape
    if n_objects == 0:
        raise ValueError("pi has n = 0 objects; the decomposition needs at least one")
    _check_distributions("rho", rho, "[n_messages, n_objects]")
    if rho.shape != (n_messages, n_objects):
        raise ValueError(f"rho must have shape [n_messages, n_objects] = {(n_messages, n_objects)} to match pi {pi.shape}, got {rho.shape}")
    if prior is None:
        prior = np.full(n_objects, 1.0 / n_objects)
    prior = np.asarray(prior, np.float64)
    if prior.shape != (n_objects,):
        raise ValueError(f"prior must have shape [n_objects] = ({n_objects},) to match pi {pi.shape}, got {prior.shape}")
    if np.any(prior < 0) or not np.all(np.isfinite(prior)):
        bad = int(np.flatnonzero((prior < 0) | ~np.isfinite(prior))[0])
        raise ValueError(f"prior must have non-negative mass; prior[{bad}] = {prior[bad]:.4g}")
    if abs(prior.sum() - 1.0) > 1e-4:
        raise ValueError(f"prior must sum to 1, it sums to {prior.sum():.6g}")

    joint = prior[:, None] * pi  # [x, m] p(x) pi(m|x)

    def expectation(values):  # E_{x~p, m~pi(.|x)} values[x, m], with 0 log 0 = 0
        return float(np.sum(np.where(joint > 0, joint * values, 0.0)))

    with np.errstate(divide="ignore", invalid="ignore"):  # log 0 = -inf where a pair never occurs
        log_joint = np.log(joint)
        log_rho = np.log(rho.T)  # [x, m]
        log_marginal = scipy.special.logsumexp(log_joint, axis=0)  # [m] log pi(m)
        log_pihat_ = np.where(joint > 0, log_joint - log_marginal[None, :], 0.0)
        loss = 0.0 - expectation(log_rho)  # 0.0 - x: no negative zero for a lossless code
        l_info = 0.0 - expectation(log_pihat_)
        l_adapt = expectation(log_pihat_ - log_rho)
    return Decomposition(*(jnp.asarray(v, jnp.float32) for v in (loss, l_info, l_adapt)))


def ideal_listener(pi, prior=None) -> np.ndarray:
    """pihat(x|m) `[n_messages, n_objects]` of a tabular speaker `pi: [n_objects, n_messages]` (Bayes' rule).

    A message the speaker never sends gets the prior (nothing was learned about it).

        >>> ideal_listener(np.array([[1.0, 0.0], [0.5, 0.5]]))[0]   # message 0: object 0 twice as likely
        array([0.66666667, 0.33333333])
    """
    pi = np.asarray(pi, np.float64)
    _check_distributions("pi", pi, "[n_objects, n_messages]")
    prior = np.full(pi.shape[0], 1.0 / pi.shape[0]) if prior is None else np.asarray(prior, np.float64)
    if prior.shape != pi.shape[:1] or np.any(prior < 0):
        raise ValueError(f"prior must be non-negative with shape [n_objects] = {pi.shape[:1]}, got {prior}")
    joint = (prior[:, None] * pi).T  # [m, x]
    marginal = joint.sum(axis=1, keepdims=True)
    return np.where(marginal > 0, joint / np.where(marginal > 0, marginal, 1.0), prior[None, :])


def prefix_levels(messages: jax.Array, vocab_size: int) -> list[tuple[jax.Array, jax.Array, jax.Array, int]]:
    """The prefix tree of `messages: [n, T]`, one level per position t.

    Level t lists the distinct prefixes m_<t (at most min(vocab^t, n), a static bound):
    `(node [n]` the prefix of each message, `parent [size]` its prefix one symbol shorter,
    `symbol [size]` that last symbol, `size)`.
    """
    n, max_len = messages.shape
    order = jnp.lexsort(messages.T[::-1])  # lexicographic order: equal prefixes are contiguous
    ranked = messages[order]
    levels, previous = [], jnp.zeros(n, jnp.int32)
    for t in range(max_len):
        size = min(vocab_size**t, n)
        first = jnp.concatenate([jnp.ones(1, bool), jnp.any(ranked[1:, :t] != ranked[:-1, :t], axis=1)])
        node = jnp.zeros(n, jnp.int32).at[order].set(jnp.cumsum(first) - 1)
        parent = jnp.zeros(size, jnp.int32).at[node].set(previous)
        symbol = jnp.zeros(size, jnp.int32).at[node].set(messages[:, t - 1] if t else 0)
        levels.append((node, parent, symbol, size))
        previous = node
    return levels


def message_log_probs(sender: Sender, objects: jax.Array, messages: jax.Array, max_pairs: int = MAX_PAIRS) -> jax.Array:
    """A `[n_messages, n_objects]`, A_ij = log pi(m_i|x_j): every message teacher-forced under every object.

    `objects: [n_objects, K]`, `messages: [n_messages, max_len]`. The sender's decoder runs once
    per (distinct prefix, object), not per (message, position, object): messages that share a
    prefix share its hidden states (half the work for 205 messages of 5 symbols from 10).
    Objects go in blocks (`lax.map`) of at most `max_pairs` (prefix, object) pairs, so memory
    stays bounded as n grows. Same values as `sender.log_prob` on every pair (tested).
    """
    n_messages = messages.shape[0]
    levels = prefix_levels(messages, sender.vocab_size)
    widest = max(size for *_, size in levels)
    table = input_table(sender)
    alive = alive_positions(messages)

    def block(block_objects):  # [c, K] -> [n_messages, c]
        c = block_objects.shape[0]
        one_hot = jax.nn.one_hot(block_objects, sender.n_values).reshape(c, -1)
        carry = jax.tree.map(lambda h: h[None], sender.cell.initial_carry(sender.encoder(one_hot)))  # [1, c, H]
        out = jnp.zeros((n_messages, c))
        for t, (node, parent, symbol, size) in enumerate(levels):
            x_proj = table[-1:] if t == 0 else table[symbol]  # [size, gates*H]
            x_proj = jnp.broadcast_to(x_proj[:, None], (size, c, x_proj.shape[-1])).reshape(size * c, -1)
            carry = sender.cell.step(jax.tree.map(lambda h: h[parent].reshape(size * c, -1), carry), x_proj)
            log_p = jax.nn.log_softmax(sender.head(sender.cell.hidden(carry))).reshape(size, c, -1)  # [size, c, vocab]
            carry = jax.tree.map(lambda h: h.reshape(size, c, -1), carry)
            picked = jnp.take_along_axis(log_p[node], messages[:, t, None, None], axis=2)[..., 0]  # [n, c]
            out = out + jnp.where(alive[:, t, None], picked, 0.0)
        return out

    return _in_row_blocks(lambda block_objects: block(block_objects).T, max(1, max_pairs // widest), objects).T


def input_table(sender: Sender) -> jax.Array:
    """`[vocab + 1, gates * H]`: each symbol's input projection in the sender's cell, the start symbol last."""
    return sender.embedding[...] @ sender.cell.w_input[...] + sender.cell.bias[...]


def reconstruction_log_rho(receiver: Receiver, one_hot: jax.Array, objects: jax.Array) -> jax.Array:
    """log rho(x|m) `[n]`, read where each message ends (as the trainer reads it)."""
    log_p = receiver.reconstruct(one_hot)  # [n, T, K, V]
    per_attribute = jnp.take_along_axis(log_p, objects[:, None, :, None], axis=-1)[..., 0]  # [n, T, K]
    return jnp.sum(eos_weights(one_hot[..., 0]) * per_attribute.sum(-1), axis=1)


def priority_sample(key: jax.Array, log_w: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """Priority sampling of `k` columns per row of weights `log_w: [rows, m]` (Duffield, Lund & Thorup 2007).

    Returns `(index [rows, k], log_scale [rows, k])`: row i keeps the k columns of largest priority
    w_ij / u_ij (u uniform), with scale max(w_ij, tau_i) / w_ij, tau_i the (k+1)-th largest
    priority. Then sum_s scale_is * y_{i, index_is} is an unbiased estimate of sum_j y_ij for any
    y that is 0 where w is; its variance is small when y_ij / w_ij varies little. A column of
    weight 0 (log -inf) is never kept while others are left; kept anyway, it gets scale 0.
    """
    m = log_w.shape[-1]
    if not 1 <= k <= m - 1:
        raise ValueError(f"priority sampling keeps 1 <= k <= m - 1 = {m - 1} of m = {m} columns per row, got k = {k}")
    u = jax.random.uniform(key, log_w.shape, minval=jnp.finfo(jnp.float32).tiny)  # (0, 1)
    top, index = jax.lax.top_k(log_w - jnp.log(u), k + 1)
    kept = jnp.take_along_axis(log_w, index[:, :k], axis=1)
    return index[:, :k], jnp.where(kept > -jnp.inf, jnp.maximum(kept, top[:, k:]) - kept, -jnp.inf)


def alive_positions(messages: jax.Array) -> jax.Array:
    """`[n, T]` True up to and including each message's first EOS (the positions pi(m|x) counts)."""
    return jnp.arange(messages.shape[1]) < games.message_length(messages)[:, None]


def teacher_force(sender: Sender, carry, previous: jax.Array, symbols: jax.Array, alive: jax.Array):
    """Continue the decoder from `carry`, `previous [B]` the symbol it consumed last (vocab_size: start).

    Returns `(sum of log pi(symbol_t|...) over the alive positions [B], carry)` for `symbols, alive: [B, s]`.
    """
    table = input_table(sender)

    def body(state, xs):
        carry, previous = state
        symbol, live = xs
        carry = sender.cell.step(carry, table[previous])
        log_p = jax.nn.log_softmax(sender.head(sender.cell.hidden(carry)))
        return (carry, symbol), jnp.where(live, jnp.take_along_axis(log_p, symbol[:, None], axis=1)[:, 0], 0.0)

    (carry, _), log_p = jax.lax.scan(body, (carry, previous), (symbols.T, alive.T))
    return log_p.sum(axis=0), carry


def _in_row_blocks(fn, rows: int, *arrays):
    """`fn(*arrays)` computed `rows` rows at a time (`lax.map`; the last block padded with row 0)."""
    n = arrays[0].shape[0]
    n_blocks = -(-n // min(rows, n))
    rows = -(-n // n_blocks)  # balanced blocks pad fewer rows
    padded = [jnp.concatenate([a, jnp.broadcast_to(a[:1], (n_blocks * rows - n, *a.shape[1:]))]) for a in arrays]
    out = jax.lax.map(lambda args: fn(*args), [a.reshape(n_blocks, rows, *a.shape[1:]) for a in padded])
    return jax.tree.map(lambda o: o.reshape(n_blocks * rows, *o.shape[2:])[:n], out)


SCREEN = 4  # the estimate screens SCREEN * columns objects per message on a longer prefix before forcing `columns` to the end


def proposal_depth(vocab_size: int, max_len: int, n: int, columns: int) -> int:
    """The longest prefix d whose table pi(m_i[:d]|x_j) costs at most the forced pairs' teacher forcing.

    The table costs n * sum_{t<d} min(vocab^t, n) decoder steps, the pairs n * columns * max_len.
    """
    depth = 1
    while depth < max_len and sum(min(vocab_size**t, n) for t in range(depth + 1)) <= columns * max_len:
        depth += 1
    return depth


def sampled_log_normaliser(sender: Sender, objects: jax.Array, messages: jax.Array, log_own: jax.Array, key: jax.Array,
                           columns: int, max_pairs: int = MAX_PAIRS) -> jax.Array:
    """An estimate of log sum_j pi(m_i|x_j) `[n]` that teacher-forces `columns` objects per message to the end.

    `messages[i]` was sampled for `objects[i]`, `log_own[i] = log pi(m_i|x_i)` (kept exactly).
    Three steps, each unbiased given the one before (see the module docstring): the prefix
    table w_ij = pi(m_i[:d]|x_j) for every pair; priority sampling of SCREEN * columns objects
    per message, forced two symbols further; priority sampling of `columns` of those on those
    weights, forced to the end.
    """
    n, max_len = messages.shape
    screened = min(SCREEN * columns, n - 1)
    depth = proposal_depth(sender.vocab_size, max_len, n, columns)
    middle = min(max_len, depth + 2)
    key_screen, key_keep = jax.random.split(key)
    log_w = message_log_probs(sender, objects, messages[:, :depth], max_pairs)  # log pi(m_i[:d]|x_j) >= log pi(m_i|x_j)
    index, log_scale = priority_sample(key_screen, jnp.where(jnp.eye(n, dtype=bool), -jnp.inf, log_w), screened)
    alive = alive_positions(messages)

    def block(index, log_scale, messages, alive, keys):  # [rows, screened] ..., [rows, T], [rows]
        rows = index.shape[0]
        pairs = partial(jnp.repeat, repeats=screened, axis=0)
        carry = sender.cell.initial_carry(sender.encoder(jax.nn.one_hot(objects[index], sender.n_values).reshape(rows * screened, -1)))
        start = jnp.full(rows * screened, sender.vocab_size)
        head, carry = teacher_force(sender, carry, start, pairs(messages[:, :middle]), pairs(alive[:, :middle]))
        log_w = log_scale + head.reshape(rows, screened)  # weights of y_ij = scale_ij pi(m_i|x_j): scale_ij pi(m_i[:middle]|x_j)
        if middle == max_len:
            return jax.nn.logsumexp(log_w, axis=1)
        keep, log_scale = priority_sample(keys[0], log_w, columns)  # [rows, columns]; the block draws with its first row's key
        carry = jax.tree.map(lambda h: h[(jnp.arange(rows)[:, None] * screened + keep).reshape(-1)], carry)
        tails = partial(jnp.repeat, repeats=columns, axis=0)
        tail, _ = teacher_force(sender, carry, tails(messages[:, middle - 1]), tails(messages[:, middle:]), tails(alive[:, middle:]))
        return jax.nn.logsumexp(jnp.take_along_axis(log_w, keep, axis=1) + log_scale + tail.reshape(rows, columns), axis=1)

    others = _in_row_blocks(block, max(1, max_pairs // screened), index, log_scale, messages, alive, jax.random.split(key_keep, n))
    return jnp.logaddexp(log_own, others)


def decompose_agents(sender: Sender, receiver: Receiver, objects: jax.Array, key: jax.Array, columns: int | None = None,
                     max_pairs: int = MAX_PAIRS) -> Decomposition:
    """The decomposition of a sender/receiver pair over `objects: [n, K]` (uniform prior).

    One message per object is sampled with `key` (as `Trainer.evaluate` samples), then all n^2
    log pi(m_i|x_j) are teacher-forced in blocks. With `columns=k` (k < n - 1) the normaliser of
    the ideal listener is estimated instead, forcing k objects per message to the end (see the
    module docstring): for n = 4096 at max_len 10, k = 64 takes 7 s instead of 70 s on 2 CPU
    cores, L_info a few thousandths of a nat low. Jit and vmap it over a population.
    """
    message = sender.sample(objects, key)
    log_rho = reconstruction_log_rho(receiver, message.one_hot, objects)
    if columns is None or columns >= objects.shape[0] - 1:
        return decompose(message_log_probs(sender, objects, message.symbols, max_pairs), log_rho)
    log_norm = sampled_log_normaliser(sender, objects, message.symbols, message.log_prob, jax.random.fold_in(key, 1), columns, max_pairs)
    return _terms(message.log_prob - log_norm, log_rho)


def decompose_population(trainer, state, objects, key: jax.Array, columns: int | None = None,
                         max_pairs: int = MAX_PAIRS) -> Decomposition:
    """`decompose_agents` for every seed of a trained population (`state` from `train_population`).

    `key`: one key for every seed, or one per seed `[seeds]`; `columns`: as in `decompose_agents`.
    Leaves are `[seeds]`, or
    `[seeds, n_listeners]` for a population-control run.
    """
    objects = jnp.asarray(objects, jnp.int32)

    def one(sender_params, receiver_params, key):
        return decompose_agents(trainer.sender(sender_params), trainer.receiver(receiver_params), objects, key, columns, max_pairs)

    if trainer.config.train.control == "population":
        one = jax.vmap(one, in_axes=(None, 0, None))
    return jax.jit(jax.vmap(one, in_axes=(0, 0, 0 if key.ndim else None)))(state.sender, state.receiver, key)
