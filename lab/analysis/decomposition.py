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

import jax
import jax.numpy as jnp
import numpy as np
import scipy.special

import games
from lab.core.agents import Agents, Receiver, Sender
from lab.core.agents.forcing import MAX_PAIRS, in_row_blocks, message_log_probs
from lab.core.evaluate import members
from lab.core.ideal import Decomposition, decompose, terms
from lab.core.rollout import rollout


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

    def block(index, log_scale, messages, keys):  # [rows, screened] ..., [rows, T], [rows]
        rows = index.shape[0]
        pairs = partial(jnp.repeat, repeats=screened, axis=0)
        head = sender.log_prob(objects[index].reshape(rows * screened, -1), pairs(messages[:, :middle]))
        log_w = log_scale + head.reshape(rows, screened)  # weights of y_ij = scale_ij pi(m_i|x_j): scale_ij pi(m_i[:middle]|x_j)
        if middle == max_len:
            return jax.nn.logsumexp(log_w, axis=1)
        keep, log_scale_kept = priority_sample(keys[0], log_w, columns)  # [rows, columns]; the block draws with its first row's key
        kept = jnp.take_along_axis(index, keep, axis=1)
        whole = sender.log_prob(objects[kept].reshape(rows * columns, -1), partial(jnp.repeat, repeats=columns, axis=0)(messages))
        log_y = jnp.take_along_axis(log_scale, keep, axis=1) + whole.reshape(rows, columns)  # scale_ij pi(m_i|x_j)
        return jax.nn.logsumexp(log_y + log_scale_kept, axis=1)

    others = in_row_blocks(block, max(1, max_pairs // screened), index, log_scale, messages, jax.random.split(key_keep, n))
    return jnp.logaddexp(log_own, others)


def decompose_agents(sender: Sender, receiver: Receiver, objects: jax.Array, key: jax.Array, columns: int | None = None,
                     max_pairs: int = MAX_PAIRS) -> Decomposition:
    """The decomposition of a sender/receiver pair over `objects: [n, K]` (uniform prior).

    One message per object is sampled with `key` (as the trainer's evaluation samples with its
    evaluation key), then all n^2 log pi(m_i|x_j) are teacher-forced in blocks. With `columns=k`
    (k < n - 1) the normaliser of the ideal listener is estimated instead, forcing k objects per
    message to the end (see the module docstring): for n = 4096 at max_len 10, k = 64 takes 7 s
    instead of 70 s on 2 CPU cores, L_info a few thousandths of a nat low. Jit and vmap it.
    """
    objects = jnp.asarray(objects, jnp.int32)
    message = sender.sample_each(objects, key)
    episodes = games.reconstruction_episodes(objects, message.symbols.shape[1])
    log_rho = rollout(receiver, episodes, message, games.LewisReconstruction).log_rho
    if columns is None or columns >= objects.shape[0] - 1:
        return decompose(message_log_probs(sender, objects, message.symbols, max_pairs), log_rho)
    log_norm = sampled_log_normaliser(sender, objects, message.symbols, message.log_prob, jax.random.fold_in(key, 1), columns, max_pairs)
    return terms(message.log_prob - log_norm, log_rho)


def decompose_population(agents: Agents, senders, receivers, objects, key: jax.Array, columns: int | None = None,
                         max_pairs: int = MAX_PAIRS) -> Decomposition:
    """`decompose_agents` for every run and every (sender, receiver) pair of trained populations.

    `senders: [runs, P, ...]`, `receivers: [runs, Q, ...]` (a checkpoint's, or a final TrainState's);
    `key`: one key for every run, or one per run `[runs]`. Leaves are `[runs, P, Q]`, or `[runs]`
    for runs of a lone pair.
    """
    objects = jnp.asarray(objects, jnp.int32)

    def run(senders, receivers, key):
        return members(lambda s: members(lambda r: decompose_agents(agents.sender(s), agents.receiver(r), objects, key,
                                                                    columns, max_pairs), receivers), senders)

    out = jax.jit(jax.vmap(run, in_axes=(0, 0, 0 if key.ndim else None)))(senders, receivers, key)
    lone = jax.tree.leaves(senders)[0].shape[1] == jax.tree.leaves(receivers)[0].shape[1] == 1
    return jax.tree.map(lambda v: v[:, 0, 0], out) if lone else out
