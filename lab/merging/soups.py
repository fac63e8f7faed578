"""Soups of fine-tuned pairs, gated on held-out games, with the barrier reported and the lineage checked.

* Greedy soup (Wortsman et al. 2022; DiWA's restricted average, Ramé et al. 2022): sort the
  ingredients by held-out accuracy; start from the best; add the next one to the running
  average, soup_{k+1} = (k soup_k + theta) / (k + 1), and keep it only if held-out accuracy does
  not drop (`strict=True`: only if it rises, as in Wortsman et al.). By construction the soup is
  never worse than the best single ingredient on the held-out games it was gated on.
* `merge`: uniform, greedy or SLERP soup of pairs that should share an ancestor. It warns
  (MergeWarning) when their lineages share none, computes the barrier between the best
  ingredient and every other one (at alpha = 0.5 by default: the merge gate of §D7), and warns
  when the largest is above `merge.max_barrier`.
* `pareto`: the non-dominated points of a rewarded-soups front.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple, Sequence

import numpy as np

from lab.merging import connectivity
from lab.merging.judge import Judge, Scores
from lab.merging.lineage import Lineage, MergeWarning, check_common
from lab.merging.weights import Pair, check_agents, slerp_soup, stack, uniform_soup

METHODS = ("uniform", "greedy", "slerp")


class GreedySoup(NamedTuple):
    pair: Pair
    chosen: list[int]  # indices of the ingredients in the soup, in the order they were added
    order: list[int]  # every ingredient, best held-out accuracy first
    ingredient_accuracy: np.ndarray  # [M] held-out accuracy of each ingredient alone
    accuracy: float  # held-out accuracy of the soup


def ranking(scores: Scores, split: str) -> list[int]:
    """Indices by held-out accuracy, best first (ties: lower loss first)."""
    accuracy, loss = scores[split]["accuracy"], scores[split]["loss"]
    return [int(i) for i in np.lexsort((loss, -accuracy))]


def greedy_soup(judge: Judge, pairs: Sequence[Pair], split: str = "validation", strict: bool = False) -> GreedySoup:
    """The greedy soup of `pairs` gated on the judge's `split` (module docstring)."""
    check_agents("pairs", pairs)
    if split not in judge.splits:
        raise ValueError(f"split={split!r}: the judge has {', '.join(judge.splits)}; a held-out split needs "
                         f"merge.validation > 0")
    scores = judge(stack(pairs))
    order = ranking(scores, split)
    chosen = [order[0]]
    best = float(scores[split]["accuracy"][order[0]])
    soup = pairs[order[0]]
    for i in order[1:]:
        candidate = uniform_soup([pairs[j] for j in chosen + [i]])
        accuracy = judge.pair(candidate)[split]["accuracy"]
        if accuracy > best or (not strict and accuracy == best):
            chosen, best, soup = chosen + [i], accuracy, candidate
    return GreedySoup(soup, chosen, order, np.asarray(scores[split]["accuracy"]), best)


class Merged(NamedTuple):
    pair: Pair
    method: str
    chosen: list[int]  # the ingredients averaged
    common_ancestor: bool
    barrier: dict  # {split: {"accuracy": B, "loss": B}}, the largest over the curves from the best ingredient
    curves: list  # [(0, i, Curve)] from the best ingredient (index order[0]) to each other one, of `pairs` reordered


def merge(judge: Judge, pairs: Sequence[Pair], lineages: Sequence[Lineage], method: str = "uniform",
          ancestor: Pair | None = None, split: str = "validation", max_barrier: float = 0.05,
          alphas: Sequence[float] = (0.0, 0.5, 1.0)) -> Merged:
    """A soup of `pairs` with its lineage checked and its barrier reported on `split` (module docstring).

    The barrier is read at `alphas`, by default the merge gate of algorithms.md §D7: the drop at
    alpha = 0.5 below the endpoints' mean, between the best ingredient and each other one.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r}: allowed values are {', '.join(METHODS)}")
    check_agents("pairs", pairs)
    if len(lineages) != len(pairs):
        raise ValueError(f"lineages: {len(lineages)} given for {len(pairs)} pairs; one per pair")
    if split not in judge.splits:
        raise ValueError(f"split={split!r}: the judge has {', '.join(judge.splits)}")
    common = check_common(lineages)
    if method == "greedy":
        greedy = greedy_soup(judge, pairs, split)
        merged, chosen, order = greedy.pair, greedy.chosen, greedy.order
    else:
        order = ranking(judge(stack(pairs)), split)
        chosen = list(range(len(pairs)))
        if method == "slerp":
            if ancestor is None:
                raise ValueError("ancestor: method='slerp' merges task vectors, it needs the ancestor they start from")
            merged = slerp_soup(list(pairs), ancestor)
        else:
            merged = uniform_soup(list(pairs))
    kind = "slerp" if method == "slerp" else "linear"
    ordered = [pairs[i] for i in order]
    curves = connectivity.pairwise(judge, ordered, "both", alphas, kind, ancestor) if len(pairs) > 1 else []
    worst = {s: {m: max([connectivity.barrier(c, s, m) for _, _, c in curves], default=0.0) for m in ("accuracy", "loss")}
             for s in judge.splits}
    if worst[split]["accuracy"] > max_barrier + 1e-6:  # accuracies are float32 fractions of a split
        warnings.warn(f"{method} merge of {len(pairs)} pairs: accuracy barrier {worst[split]['accuracy']:.3f} on "
                      f"{split} is above merge.max_barrier={max_barrier}", MergeWarning, stacklevel=2)
    return Merged(merged, method, chosen, common, worst, curves)


def pareto(points: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """`[n]` bool: the points `[n, d]` no other point is at least as good as in every coordinate and better in one."""
    signed = np.asarray(points, np.float64) * np.where(np.asarray(maximize), 1.0, -1.0)
    at_least = np.all(signed[None, :, :] >= signed[:, None, :], axis=-1)  # [i, j]: j at least as good as i
    better = np.any(signed[None, :, :] > signed[:, None, :], axis=-1)
    return ~np.any(at_least & better, axis=1)
