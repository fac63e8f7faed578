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

The n x n matrix A is `message_log_probs` (lab.core.agents.forcing): the sender's fast hook when
it has one, generic teacher forcing otherwise.

lab.analysis.decomposition has the exact enumeration, the sampled normaliser for thousands of
objects and the drivers for trained agents.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lab.core.agents import Sender
from lab.core.agents.forcing import message_log_probs


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
