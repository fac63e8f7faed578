"""Merges as pure functions over parameter pytrees (../shared/science/algorithms.md §D).

Every function takes pytrees of one structure and shape (a sender's parameters, a receiver's, or
a `Pair` of both) and returns one of the same:

    interpolate(a, b, alpha)      (1 - alpha) a + alpha b                          (LMC, §D7)
    uniform_soup(agents)          (1/M) sum_i theta_i                              (Wortsman et al. 2022)
    task_vector(agent, ancestor)  delta = theta - theta_0
    slerp(a, b, alpha, ancestor)  theta_0 + sin((1-alpha) Omega)/sin Omega delta_a
                                          + sin(alpha Omega)/sin Omega delta_b, per leaf  (WARP, Ramé et al. 2024)
    slerp_soup(agents, ancestor)  SLERP of M task vectors, folded in one at a time with weight 1/(k+1)
    liti(agent, ancestor, eta)    (1 - eta) theta_0 + eta theta                    (WARP's LITI)

Bad input (pytrees of different structure or shapes, a fraction outside [0, 1], no agents) raises
`ValueError` naming the argument. Fractions are checked when they are concrete numbers; under
`jit`/`vmap` they are traced and taken as valid.

    >>> import jax.numpy as jnp
    >>> interpolate({"w": jnp.zeros(2)}, {"w": jnp.ones(2)}, 0.25)["w"].tolist()
    [0.25, 0.25]
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


class Pair(NamedTuple):
    """One sender's and one receiver's parameters (a pytree; leaves `[n, ...]` for n pairs stacked)."""

    sender: PyTree
    receiver: PyTree


# -- checks at the boundary ----------------------------------------------------------------------------


def check_compatible(reference: PyTree, other: PyTree, names: tuple[str, str] = ("a", "b")) -> None:
    """Raise `ValueError` naming `names[1]` unless `other` has the structure and leaf shapes of `reference`."""
    first, second = names
    leaves_a, tree_a = jax.tree_util.tree_flatten_with_path(reference)
    leaves_b, tree_b = jax.tree_util.tree_flatten_with_path(other)
    if tree_a != tree_b:
        paths_a = {jax.tree_util.keystr(p) for p, _ in leaves_a}
        paths_b = {jax.tree_util.keystr(p) for p, _ in leaves_b}
        differ = sorted(paths_a ^ paths_b)[:3]
        raise ValueError(f"{second}: its pytree structure differs from {first}'s"
                         + (f" (leaves only in one of them: {', '.join(differ)})" if differ else ""))
    for (path, leaf_a), (_, leaf_b) in zip(leaves_a, leaves_b):
        if np.shape(leaf_a) != np.shape(leaf_b):
            raise ValueError(f"{second}: leaf {jax.tree_util.keystr(path)} has shape {np.shape(leaf_b)}, "
                             f"{first}'s has {np.shape(leaf_a)}")


def check_fraction(name: str, value) -> None:
    """Raise `ValueError` naming `name` unless every entry of a concrete `value` is in [0, 1]."""
    if isinstance(value, jax.core.Tracer):
        return
    array = np.asarray(value, dtype=np.float64)
    if not np.all((array >= 0.0) & (array <= 1.0)):  # NaN fails too
        raise ValueError(f"{name}={value!r}: must be in [0, 1]")


def check_agents(name: str, agents: Sequence[PyTree]) -> None:
    """Raise `ValueError` naming `name` unless `agents` is a non-empty sequence of compatible pytrees."""
    if isinstance(agents, (str, bytes)) or not isinstance(agents, Sequence):
        raise ValueError(f"{name}: expected a list of parameter pytrees, got {type(agents).__name__}")
    if len(agents) == 0:
        raise ValueError(f"{name}: the list of agents is empty; a merge needs at least one")
    for i, agent in enumerate(agents[1:], start=1):
        check_compatible(agents[0], agent, (f"{name}[0]", f"{name}[{i}]"))


# -- the merges ----------------------------------------------------------------------------------------


def lerp(x: jax.Array, y: jax.Array, t) -> jax.Array:
    """(1 - t) x + t y, written from the nearer endpoint: exactly x at t=0, y at t=1, and x wherever x == y."""
    return jnp.where(t < 0.5, x + t * (y - x), y - (1.0 - t) * (y - x))


def interpolate(a: PyTree, b: PyTree, alpha) -> PyTree:
    """(1 - alpha) a + alpha b, leaf by leaf; returns a and b exactly at alpha 0 and 1."""
    check_compatible(a, b, ("a", "b"))
    check_fraction("alpha", alpha)
    return jax.tree.map(lambda x, y: lerp(x, y, alpha), a, b)


def uniform_soup(agents: Sequence[PyTree]) -> PyTree:
    """(1/M) sum_i theta_i as a running mean, soup_k = soup_{k-1} + (theta_k - soup_{k-1}) / k: exact for identical agents."""
    check_agents("agents", agents)
    soup = agents[0]
    for k, agent in enumerate(agents[1:], start=2):
        soup = jax.tree.map(lambda s, x: s + (x - s) / k, soup, agent)
    return soup


def task_vector(agent: PyTree, ancestor: PyTree) -> PyTree:
    """delta = theta - theta_0: what fine-tuning from `ancestor` changed."""
    check_compatible(ancestor, agent, ("ancestor", "agent"))
    return jax.tree.map(lambda x, x0: x - x0, agent, ancestor)


def _slerp_weights(delta_a: jax.Array, delta_b: jax.Array, t, eps: float = 1e-6) -> tuple[jax.Array, jax.Array]:
    """(sin((1-t) Omega) / sin Omega, sin(t Omega) / sin Omega) for the angle Omega between two flattened leaves.

    When sin Omega is ~0 (parallel or opposite task vectors, or a leaf fine-tuning left unchanged)
    the angle is undefined or the ratio blows up: LERP's (1 - t, t) instead.
    """
    norm = jnp.linalg.norm(delta_a) * jnp.linalg.norm(delta_b)
    cos = jnp.clip(jnp.vdot(delta_a, delta_b) / jnp.where(norm > 0, norm, 1.0), -1.0, 1.0)
    omega = jnp.arccos(cos)
    sin = jnp.sin(omega)
    flat = (norm <= 0) | (sin < eps)
    safe = jnp.where(flat, 1.0, sin)
    return (jnp.where(flat, 1.0 - t, jnp.sin((1.0 - t) * omega) / safe), jnp.where(flat, t, jnp.sin(t * omega) / safe))


def slerp(a: PyTree, b: PyTree, alpha, ancestor: PyTree) -> PyTree:
    """Spherical interpolation of the task vectors of `a` and `b` relative to `ancestor`, one angle per leaf.

    Equal-norm task vectors keep their norm along the path (LERP would shrink it by cos(Omega/2)
    at the middle); a and b come back exactly at alpha 0 and 1.
    """
    check_compatible(a, b, ("a", "b"))
    check_compatible(a, ancestor, ("a", "ancestor"))
    check_fraction("alpha", alpha)

    def leaf(x, y, x0):
        delta_a, delta_b = x - x0, y - x0
        w_a, w_b = _slerp_weights(delta_a.ravel(), delta_b.ravel(), alpha)
        # x0 + w_a delta_a + w_b delta_b, from the nearer endpoint so that the endpoints are exact
        return jnp.where(alpha < 0.5, x + (w_a - 1.0) * delta_a + w_b * delta_b, y + w_a * delta_a + (w_b - 1.0) * delta_b)

    return jax.tree.map(leaf, a, b, ancestor)


def slerp_soup(agents: Sequence[PyTree], ancestor: PyTree) -> PyTree:
    """SLERP(theta_0, {theta_m}, 1/M): agent k+1 folded into the merge of the first k with weight 1/(k+1)."""
    check_agents("agents", agents)
    check_compatible(agents[0], ancestor, ("agents[0]", "ancestor"))
    merged = agents[0]
    for k, agent in enumerate(agents[1:], start=1):
        merged = slerp(merged, agent, 1.0 / (k + 1), ancestor)
    return merged


def liti(agent: PyTree, ancestor: PyTree, eta) -> PyTree:
    """(1 - eta) theta_0 + eta theta: part of the way from the ancestor towards `agent` (WARP's LITI)."""
    check_compatible(ancestor, agent, ("ancestor", "agent"))
    check_fraction("eta", eta)
    return jax.tree.map(lambda x0, x: lerp(x0, x, eta), ancestor, agent)


# -- stacks of agents ----------------------------------------------------------------------------------


def unstack(stacked: PyTree) -> list[PyTree]:
    """A pytree with leaves `[n, ...]` as a list of n pytrees."""
    n = jax.tree.leaves(stacked)[0].shape[0]
    return [jax.tree.map(lambda leaf: leaf[i], stacked) for i in range(n)]


def stack(agents: Sequence[PyTree]) -> PyTree:
    """n pytrees of one structure as one with leaves `[n, ...]`."""
    check_agents("agents", agents)
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *agents)


def pairs_of(senders: PyTree, receivers: PyTree, sender: int = 0, receiver: int = 0) -> Pair:
    """`Pair [runs, ...]` from a population's final parameters `[runs, P, ...]`, `[runs, Q, ...]` (one member each)."""
    return Pair(jax.tree.map(lambda leaf: leaf[:, sender], senders), jax.tree.map(lambda leaf: leaf[:, receiver], receivers))


def as_population(pairs: Pair) -> tuple[PyTree, PyTree]:
    """`(senders [n, 1, ...], receivers [n, 1, ...])`: n pairs as the starting `agents` of n runs of one pair each."""
    return jax.tree.map(lambda leaf: leaf[:, None], pairs.sender), jax.tree.map(lambda leaf: leaf[:, None], pairs.receiver)


def repeat(pair: Pair, n: int) -> Pair:
    """One pair repeated n times, `[n, ...]`: the shared start of n fine-tunings."""
    return jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (n, *jnp.shape(leaf))), pair)
