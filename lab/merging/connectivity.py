"""Interpolation curves and barriers: is there a path of good agents between two agents? (LMC, §D7)

Along alpha in [0, 1] the merged agent theta(alpha) = (1 - alpha) theta_a + alpha theta_b (or
the SLERP of their task vectors, `path="slerp"`) plays every game of each split. The barrier of
a curve (Frankle et al. 2020; Entezari et al. 2022) is how far it falls below the chord between
its endpoints:

    B_accuracy = max_alpha [(1 - alpha) A(0) + alpha A(1) - A(alpha)]      (a drop in accuracy)
    B_loss     = max_alpha [L(alpha) - (1 - alpha) L(0) - alpha L(1)]      (a rise in loss)

B ~ 0 is linear mode connectivity. `side` says what is merged:

* `both`: the pair (s(alpha), r(alpha)), sender and receiver merged together;
* `senders`: the merged sender s(alpha), heard by each endpoint's receiver r_a and r_b (mean of
  the two): does the merged language stay understood by the listeners of both endpoints?
* `receivers`: the merged receiver r(alpha), listening to each endpoint's sender s_a and s_b.

For `senders` and `receivers` the endpoints include cross-play (s_a with r_b), so the chord is
already low for agents that do not understand each other; the barrier measures only what the
interpolation loses beyond that.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lab.merging.judge import Judge, Scores
from lab.merging.weights import Pair, check_compatible, check_fraction, lerp, slerp, stack

SIDES = ("both", "senders", "receivers")
PATHS = ("linear", "slerp")
LOWER_IS_BETTER = ("loss", "message_length")


class Curve(NamedTuple):
    alphas: np.ndarray  # [n]
    scores: Scores  # {split: {metric: [n]}} of the merged agent at each alpha


def path(a, b, alphas: Sequence[float], kind: str = "linear", ancestor=None):
    """The merged agents along alpha, stacked `[n, ...]` (any pytree: a Pair, a sender, a receiver)."""
    if kind not in PATHS:
        raise ValueError(f"path={kind!r}: allowed values are {', '.join(PATHS)}")
    check_compatible(a, b, ("a", "b"))
    alphas = np.asarray(alphas, np.float32)
    if alphas.ndim != 1 or len(alphas) == 0:
        raise ValueError(f"alphas: expected a non-empty list of numbers, got shape {alphas.shape}")
    check_fraction("alphas", alphas)
    if kind == "slerp":
        if ancestor is None:
            raise ValueError("ancestor: path='slerp' interpolates task vectors, it needs the ancestor they start from")
        return jax.vmap(lambda t: slerp(a, b, t, ancestor))(jnp.asarray(alphas))
    return jax.vmap(lambda t: jax.tree.map(lambda x, y: lerp(x, y, t), a, b))(jnp.asarray(alphas))


def points(a: Pair, b: Pair, side: str, alphas: Sequence[float], kind: str = "linear", ancestor: Pair | None = None) -> Pair:
    """The pairs a curve plays, stacked: `[n]` for side `both`, `[2n]` (the merged side with each endpoint's partner) otherwise."""
    if side not in SIDES:
        raise ValueError(f"side={side!r}: allowed values are {', '.join(SIDES)}")
    check_compatible(a, b, ("a", "b"))
    n = len(alphas)
    if side == "both":
        return path(a, b, alphas, kind, ancestor)
    twice = lambda tree: jax.tree.map(lambda leaf: jnp.concatenate([leaf, leaf]), tree)  # noqa: E731
    each = lambda x, y: jax.tree.map(lambda u, v: jnp.concatenate([u, v]), _repeat(x, n), _repeat(y, n))  # noqa: E731
    if side == "senders":
        merged = path(a.sender, b.sender, alphas, kind, None if ancestor is None else ancestor.sender)
        return Pair(twice(merged), each(a.receiver, b.receiver))
    merged = path(a.receiver, b.receiver, alphas, kind, None if ancestor is None else ancestor.receiver)
    return Pair(each(a.sender, b.sender), twice(merged))


def curves(judge: Judge, ends: Sequence[tuple[Pair, Pair]], side: str = "both",
           alphas: Sequence[float] = tuple(np.linspace(0, 1, 11)), kind: str = "linear",
           ancestor: Pair | None = None) -> list[Curve]:
    """The curve between each `(a, b)` of `ends`, all played in one call of the judge (module docstring for the rest)."""
    if len(ends) == 0:
        raise ValueError("ends: no (a, b) pairs of endpoints given")
    stacked = [points(a, b, side, alphas, kind, ancestor) for a, b in ends]
    sizes = [jax.tree.leaves(p)[0].shape[0] for p in stacked]
    scores = judge(jax.tree.map(lambda *leaves: jnp.concatenate(leaves), *stacked))
    out, offset, n = [], 0, len(alphas)
    for size in sizes:
        part = jax.tree.map(lambda v: v[offset:offset + size], scores)
        if size > n:  # the merged side with the first endpoint's partner, then with the second's
            part = jax.tree.map(lambda v: (v[:n] + v[n:]) / 2, part)
        out.append(Curve(np.asarray(alphas), part))
        offset += size
    return out


def curve(judge: Judge, a: Pair, b: Pair, side: str = "both", alphas: Sequence[float] = tuple(np.linspace(0, 1, 11)),
          kind: str = "linear", ancestor: Pair | None = None) -> Curve:
    """Scores of the merged agent at each alpha (module docstring for `side` and `kind`)."""
    return curves(judge, [(a, b)], side, alphas, kind, ancestor)[0]


def _repeat(tree, n: int):
    return jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (n, *jnp.shape(leaf))), tree)


def chord(alphas: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(1 - alpha) v(0) + alpha v(1) at each alpha (exactly v(0) everywhere when the endpoints agree)."""
    v0, v1 = values[0], values[-1]
    return np.where(alphas < 0.5, v0 + alphas * (v1 - v0), v1 - (1 - alphas) * (v1 - v0))


def barrier(c: Curve, split: str = "test", metric: str = "accuracy") -> float:
    """max over alpha of how much worse the curve is than its chord (>= 0 when alpha 0 and 1 are on the curve)."""
    values = np.asarray(c.scores[split][metric], np.float64)
    alphas = np.asarray(c.alphas, np.float64)
    worse = values - chord(alphas, values) if metric in LOWER_IS_BETTER else chord(alphas, values) - values
    return float(np.max(worse))


def barriers(c: Curve, metrics: Sequence[str] = ("accuracy", "loss")) -> dict[str, dict[str, float]]:
    """`{split: {metric: barrier}}` of one curve."""
    return {split: {m: barrier(c, split, m) for m in metrics} for split in c.scores}


def pairwise(judge: Judge, pairs: Sequence[Pair], side: str = "both", alphas: Sequence[float] = tuple(np.linspace(0, 1, 11)),
             kind: str = "linear", ancestor: Pair | None = None) -> list[tuple[int, int, Curve]]:
    """The curve between the first pair and each other one: `[(0, i, curve)]`, in one call of the judge."""
    stack(pairs)  # checks the list
    found = curves(judge, [(pairs[0], p) for p in pairs[1:]], side, alphas, kind, ancestor)
    return [(0, i, c) for i, c in enumerate(found, start=1)]
