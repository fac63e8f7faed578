"""Weight-averaged agent merging: interpolation barriers, soups, SLERP, LITI, WARP and rewarded soups (issue 13).

Science and defaults: ../shared/science/algorithms.md §D. The caution of its §0 is the first
thing the lab shows: agents trained from independent random starts speak symbol-permuted
languages and their weights do not average (a large barrier); agents fine-tuned from one trained
ancestor do (a small one). Merges are pure functions over parameter pytrees; the EMA of weights
is `lab.interventions.ema`.

    weights    interpolate, uniform_soup, task_vector, slerp, slerp_soup, liti, Pair
    judge      Judge(spec): accuracy, loss, topsim, message length of many pairs; logit ensembles
    connectivity  curve, barrier: interpolation curves of senders, receivers or both
    soups      greedy_soup, merge (lineage checked, barrier reported), pareto
    lineage    the ancestor a checkpoint's runs were fine-tuned from
    rewards    held-out sampler; KL-to-EMA-anchor and structure rewards (components, built by lab.experiment.build)
    config     the `merge` config section

WARP's loop and fine-tuning from given pairs train, so they live with the runner: lab.experiment.warp
(`lab.fine_tune`, `lab.warp`).
"""

from lab.merging.connectivity import Curve, barrier, barriers, curve
from lab.merging.config import MergeConfig
from lab.merging.judge import Judge
from lab.merging.lineage import Lineage, MergeWarning, check_common, digest
from lab.merging.soups import GreedySoup, Merged, greedy_soup, merge, pareto
from lab.merging.weights import (Pair, as_population, interpolate, liti, pairs_of, repeat, slerp, slerp_soup, stack,
                                 task_vector, uniform_soup, unstack)

__all__ = [
    "Curve", "barrier", "barriers", "curve", "MergeConfig", "Judge", "Lineage", "MergeWarning", "check_common", "digest",
    "GreedySoup", "Merged", "greedy_soup", "merge", "pareto", "Pair",
    "as_population", "interpolate", "liti", "pairs_of", "repeat", "slerp", "slerp_soup", "stack", "task_vector",
    "uniform_soup", "unstack",
]
