"""Evaluation inside the training scan: every object of each split once, for every (sender, receiver) pair.

Per split: accuracy (whole object, greedy messages), attribute accuracy (where the guess is an
object's attributes), loss (-mean log rho on messages sampled with a fixed key), and the
speaker's language: message length and entropy, symbols used, and, where the referents have
attributes, topsim, posdis and bosdis; in a game whose listener's output is a posterior over
every object (`game.DECOMPOSABLE`: reconstruction) the loss splits into l_info + l_adapt
(lab.core.ideal); when the world has groups, per-group and worst-group accuracy and loss. topsim
and the decomposition cost n^2 (pairs of objects, of messages), so a split larger than
`eval_size` is measured on a fixed uniform subset of eval_size objects.

The splits are padded to one size and evaluated by one compiled function (`lax.map` over the
splits, masks for the padding): one program to compile, not one per split. A split whose data
equals an earlier one's (`game.split=none`: test is train) is evaluated once.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

import games
from lab.core import ideal, metrics
from lab.core.agents import Agents
from lab.core.agents.forcing import message_log_probs
from lab.core.rollout import rollout


class EvalSet(NamedTuple):
    """One split, padded; leaves get a leading split axis when stacked."""

    episodes: games.EnvState  # [n, ...] every object of the split as a target once, candidates from the same split
    attributes: jax.Array | None  # [n, K] int attributes of the targets (None: the world has none)
    mask: jax.Array  # [n] bool, a real object (not padding)
    subset: jax.Array  # [m] int, positions of the objects topsim and the decomposition see
    subset_mask: jax.Array  # [m] bool
    groups: jax.Array  # [n] int


def _pad(array: np.ndarray, size: int) -> np.ndarray:
    return np.concatenate([array, np.repeat(array[:1], size - len(array), axis=0)]) if size > len(array) else array


def split_episodes(game: games.LewisGame, objects: np.ndarray, seed: int) -> games.EnvState:
    """Every object of a split as a target once, candidates from the same split drawn with `key(seed)`; `seed` is the
    split's position (train 0, test 1), so evaluations and analyses see the same episodes."""
    return jax.jit(game.episodes)(jax.random.key(seed), game.default_params(objects), jnp.arange(len(objects)))


def eval_sets(game: games.LewisGame, objects: dict[str, np.ndarray], attributes: dict[str, np.ndarray] | None,
              groups: dict[str, np.ndarray], eval_size: int) -> EvalSet:
    """The splits' evaluation data stacked `[n_splits, ...]`, in the order of `objects` (`attributes`: of the same objects).

    Candidates and subsets are fixed by the split's position (its seed), so evaluations compare over time.
    """
    n = max(len(o) for o in objects.values())
    m = max(min(len(o), eval_size) for o in objects.values())
    sets = []
    every_split = jax.jit(lambda objs: [split_episodes(game, o, seed) for seed, o in enumerate(objs)])  # one compile
    episodes_of = jax.device_get(every_split(list(objects.values())))
    for seed, ((split, objs), episodes) in enumerate(zip(objects.items(), episodes_of)):
        subset = np.sort(np.random.default_rng(seed).permutation(len(objs))[:eval_size])
        sets.append(EvalSet(
            episodes=jax.tree.map(lambda leaf: _pad(np.asarray(leaf), n), episodes),
            attributes=None if attributes is None else _pad(np.asarray(attributes[split], np.int32), n),
            mask=np.arange(n) < len(objs),
            subset=_pad(subset, m),
            subset_mask=np.arange(m) < len(subset),
            groups=_pad(np.asarray(groups[split], np.int32), n),
        ))
    # on the device as they are, in JAX's dtypes (int32: numpy's int64 converted here, not by a compiled program)
    stack = lambda *leaves: np.stack(leaves).astype(jax.dtypes.canonicalize_dtype(leaves[0].dtype))  # noqa: E731
    return jax.tree.map(lambda *leaves: jax.device_put(stack(*leaves)), *sets)


class Ravel:
    """`ravel(tree)`: the leaves as one vector (jax.flatten_util.ravel_pytree), and `ravel.unravel` of the last tree.

    In a loop's body (`lax.map`, `lax.scan`): the loop stacks one array instead of one per leaf, and the program reads
    its outputs from it in order; each stacked leaf and each output cut out of a stack is a kernel of its own for
    XLA to compile (the default evaluation: 223 -> 203 kernels, 2-core AMD EPYC, 2026-12-06).
    """

    def __call__(self, tree) -> jax.Array:
        flat, self.unravel = jax.flatten_util.ravel_pytree(tree)
        return flat


def _mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean over the rows in `mask` (padding may hold -inf or nan: it is never multiplied in)."""
    return jnp.sum(jnp.where(mask, values, 0.0)) / jnp.sum(mask)


def _stack(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.concatenate([a, b])


def members(fn, stacked):
    """`fn` on every member of a stacked pytree `[n, ...]` (vmap; a plain call for a population of one)."""
    n = jax.tree.leaves(stacked)[0].shape[0]
    if n == 1:
        return jax.tree.map(lambda leaf: leaf[None], fn(jax.tree.map(lambda leaf: leaf[0], stacked)))
    return jax.vmap(fn)(stacked)


def evaluate_split(agents: Agents, game: games.LewisGame, n_groups: int, es: EvalSet, senders, receivers,
                   key: jax.Array) -> tuple[dict, dict]:
    """(sender metrics `[P]`, pair metrics `[P, Q]`) on one split."""
    vocab_size = agents.config.vocab_size
    episodes, mask = es.episodes, es.mask
    targets, attributes = episodes.target, es.attributes
    sub_mask = es.subset_mask
    n = mask.shape[0]
    twice = jax.tree.map(_stack, episodes, episodes)  # one reading of both languages: the greedy rows, then the sampled

    def per_sender(sender_params):
        sender = agents.sender(sender_params)
        greedy, sampled = sender.greedy_and_sample_each(targets, key)
        symbols = greedy.symbols
        speaker = {}
        if attributes is not None:
            speaker["topsim"] = metrics.topsim_jax(attributes[es.subset], symbols[es.subset], sub_mask)
            speaker.update(zip(("posdis", "bosdis"), metrics.disentanglement_jax(attributes, symbols, game.n_values,
                                                                                 vocab_size, mask)))
        speaker.update(message_length=metrics.mean_length_jax(symbols, mask),
                       message_entropy=metrics.message_entropy_jax(symbols, mask),
                       vocab_use=metrics.vocab_use_jax(symbols, vocab_size, mask).astype(jnp.float32))
        log_pihat = None
        messages = jax.tree.map(_stack, greedy, sampled)
        if game.DECOMPOSABLE:
            log_pi = message_log_probs(sender, targets[es.subset], sampled.symbols[es.subset], objects_mask=sub_mask)
            log_pihat = ideal.log_pihat(log_pi, sub_mask)
            speaker["l_info"] = -_mean(log_pihat, sub_mask)

        def per_receiver(receiver_params):
            both = rollout(agents.receiver(receiver_params), twice, messages, game, unroll=False)
            g, s = jax.tree.map(lambda leaf: leaf[:n], both), jax.tree.map(lambda leaf: leaf[n:], both)
            pair = dict(accuracy=_mean(g.correct, mask), loss=-_mean(s.log_rho, mask))
            if g.attribute_correct is not None:
                pair["attribute_accuracy"] = _mean(jnp.mean(g.attribute_correct, -1), mask)
            if log_pihat is not None:
                pair["l_adapt"] = _mean(log_pihat - s.log_rho[es.subset], sub_mask)
            if n_groups > 1:
                in_group = (es.groups[None, :] == jnp.arange(n_groups)[:, None]) & mask[None, :]  # [G, n]
                accuracy = jax.vmap(_mean, (None, 0))(g.correct, in_group)
                loss = jax.vmap(_mean, (None, 0))(-s.log_rho, in_group)
                present = jnp.any(in_group, axis=1)
                pair["worst_group_accuracy"] = jnp.min(jnp.where(present, accuracy, jnp.inf))
                pair["worst_group_loss"] = jnp.max(jnp.where(present, loss, -jnp.inf))
                for group in range(n_groups):
                    pair[f"group_{group}_accuracy"] = accuracy[group]
                    pair[f"group_{group}_loss"] = loss[group]
            return pair

        return speaker, members(per_receiver, receivers)

    return members(per_sender, senders)


def distinct(sets: EvalSet) -> list[int]:
    """For each split, the first split with the same evaluation data: `game.split=none` tests on the training set,
    and a split evaluated twice would only repeat itself (the same objects, episodes and key: the same numbers)."""
    leaves = jax.tree.leaves(sets)
    n = leaves[0].shape[0]
    if any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):  # data known only at run time: every split
        return list(range(n))
    leaves = [np.asarray(leaf) for leaf in leaves]
    return [next(j for j in range(i + 1) if all(np.array_equal(leaf[i], leaf[j]) for leaf in leaves)) for i in range(n)]


def evaluate(agents: Agents, game: games.LewisGame, n_groups: int, sets: EvalSet, split_names: tuple[str, ...],
             senders, receivers, key: jax.Array) -> dict[str, dict[str, jax.Array]]:
    """`{split: {metric: [P] or [P, Q]}}`, every distinct split (`distinct`) by one compiled `evaluate_split`."""
    same = distinct(sets)
    kept = sorted(set(same))
    if len(kept) < len(same):
        sets = jax.tree.map(lambda leaf: leaf[np.asarray(kept)], sets)
    # a barrier, or XLA constant-folds the sorts of topsim over the fixed objects at compile time
    sets = jax.lax.optimization_barrier(sets)
    ravel = Ravel()

    def one_split(es):
        speaker, pair = evaluate_split(agents, game, n_groups, es, senders, receivers, key)
        return ravel({**speaker, **pair})

    flats = jax.lax.map(one_split, sets)  # [splits, metrics]
    rows = [kept.index(j) for j in same]
    return {split: ravel.unravel(flats[rows[i]]) for i, split in enumerate(split_names)}
