"""Fine-tuning runs from given pairs, and WARP's iterated merging (Ramé et al. 2024, Algorithm 1): the loops
that train (the runner, lab.experiment.execute) around lab.merging's pure merges.

    for i in 1..I:
        theta_m = theta_ema,m = theta_init,  m = 1..M       (M runs of one call)
        T REINFORCE steps on r - beta log(pi_m(y|x) / pi_ema,m(y|x)),  theta_ema,m <- (1 - mu) theta_ema,m + mu theta_m
        theta_slerp = SLERP(theta_init, {theta_m}, 1/M)    (lab.merging.weights.slerp_soup, per leaf)
        theta_init  <- (1 - eta) theta_init + eta theta_slerp   (LITI)

The trainer's config carries the knobs: `merge.kl_beta` (beta, > 0), `interventions.ema=true`
with `interventions.ema_rate` (mu), `train.steps` (T), `merge.warp_agents` (M),
`merge.warp_iterations` (I), `merge.liti_eta` (eta). Sender and receiver are both merged; the
receiver learns on the game loss as always.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import numpy as np

from lab.core.hparams import Hparams, hparams_from_config
from lab.core.trainer import Trainer
from lab.experiment.execute import train_runs
from lab.merging.weights import Pair, as_population, liti, pairs_of, repeat, slerp_soup, unstack


def fine_tune(trainer: Trainer, keys: jax.Array, hparams: Hparams, start: Pair, on_block: Callable | None = None):
    """n runs (one pair each) trained from `start`, a `Pair [n, ...]`: `(Pair [n, ...], history)` as numpy.

    `keys [n]` and `hparams [n]` are the runs' own (seeds, learning rates, reward weights, ...).
    """
    p = trainer.population
    if (p.n_senders, p.n_receivers) != (1, 1):
        raise ValueError(f"trainer: fine_tune trains one pair per run; its population is "
                         f"{p.n_senders} senders x {p.n_receivers} receivers")
    state, history = train_runs(trainer, keys, hparams, on_block=on_block, agents=as_population(start))
    return pairs_of(state.senders, state.receivers), history


class Warp(NamedTuple):
    starts: list  # [I + 1] Pair: theta_init before each iteration, and the final one
    merged: list  # [I] Pair: the SLERP merge of each iteration
    runs: list  # [I] Pair [M, ...]: the fine-tuned runs of each iteration
    histories: list  # [I] the runs' histories


def warp(trainer: Trainer, key: jax.Array, start: Pair, hparams: Hparams | None = None,
         on_iteration: Callable | None = None) -> Warp:
    """WARP from `start` (an unstacked Pair); `hparams [M]` default to the config's. Module docstring for the loop."""
    c = trainer.config
    m = c.merge
    if not (c.interventions.ema and m.kl_beta > 0):
        raise ValueError(f"trainer: WARP needs an EMA anchor and a KL penalty to it; its config has interventions.ema="
                         f"{c.interventions.ema}, merge.kl_beta={m.kl_beta}")
    M = m.warp_agents
    hparams = hparams_from_config(c, M) if hparams is None else hparams
    starts, merged, runs, histories = [start], [], [], []
    for i in range(m.warp_iterations):
        keys = jax.random.split(jax.random.fold_in(key, i), M)
        pairs, history = fine_tune(trainer, keys, hparams, repeat(start, M))
        merge = slerp_soup(unstack(pairs), start) if M > 1 else jax.tree.map(lambda leaf: leaf[0], pairs)
        start = jax.device_get(liti(merge, start, m.liti_eta))
        runs.append(pairs)
        merged.append(jax.device_get(merge))
        starts.append(start)
        histories.append(history)
        if on_iteration is not None:
            on_iteration(i, start)
    return Warp(starts, merged, runs, histories)


def liti_front(start: Pair, merged: Pair, etas=tuple(np.linspace(0, 1, 11))) -> Pair:
    """WARP's output front {(1 - eta) theta_start + eta theta_merged}, stacked `[len(etas), ...]`."""
    return jax.tree.map(lambda *leaves: np.stack(leaves), *[liti(merged, start, float(eta)) for eta in etas])
