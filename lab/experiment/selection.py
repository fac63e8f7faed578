"""Minmax model selection over the (model, adversary) pairs saved during training (Michel et al. 2022, Eq. 10).

Which checkpoint of a robust run to keep? Not the one with the best average error (that is
ERM's criterion) nor the best worst-group error (that needs group labels): the one whose error,
reweighted by the worst of the run's own saved adversaries, is smallest. Adversaries far from the
data (KL > log 10) are left out, and the uniform weighting is always in the pool, so for an
objective without an adversary (ERM, Group DRO, CVaR, KL-DRO) this is selection by the error
under the training distribution. The math is `lab.dro.minmax_select`; this module keeps the
snapshots and scores them:

    snapshots = Snapshots()
    state, history = train_runs(trainer, keys, hparams, on_block=snapshots)
    chosen = select(trainer, snapshots)        # per run: the snapshot picked, its step, its robust score

The validation set is every train object weighted by the training distribution p (the lab's
worlds are small enough to enumerate), and the 0-1 error is that of the greedy message, averaged
over the (sender, receiver) pairs of a population.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lab import dro
from lab.core.evaluate import members
from lab.core.rollout import rollout
from lab.core.spec import world_game_agents
from lab.core.trainer import Trainer


class Snapshots:
    """An `on_block(index, state, metrics)` callback keeping host copies of every run's agents and objective state.

    `every`: keep one block in every so many. `steps [M]` are the optimizer steps of the snapshots,
    `states[m]` a dict(senders, receivers, objective) with the runs on the leading axis (padding included).
    """

    def __init__(self, every: int = 1):
        self.every, self.steps, self.states = every, [], []

    def __call__(self, index: int, state, metrics) -> None:
        step = int(jax.device_get(state.step)[0])
        if index % self.every or (self.steps and self.steps[-1] == step):  # the last block only evaluates
            return
        self.steps.append(step)
        self.states.append(jax.device_get({"senders": state.senders, "receivers": state.receivers,
                                           "objective": state.components["objective"]}))

    def stacked(self, n_runs: int) -> dict:
        """Every snapshot as one pytree `[runs, M, ...]`, the padding runs dropped."""
        return jax.tree.map(lambda *leaves: np.stack([np.asarray(a)[:n_runs] for a in leaves], axis=1), *self.states)


class Selection(NamedTuple):
    index: np.ndarray  # [runs] the snapshot chosen
    step: np.ndarray  # [runs] its optimizer step
    robust: np.ndarray  # [runs, M] each snapshot's robust (worst reweighted) validation error
    kept: np.ndarray  # [runs, M] bool, the snapshot's adversary passed the KL filter (False without an adversary)
    correct: dict  # {split: [runs, M, n_split]} 0-1 correctness of every snapshot on every object of the split


CHUNK = 16  # snapshots scored per compiled call: one program for any number of runs and snapshots


@functools.lru_cache(maxsize=8)
def _correct_program(game_config, agents_config):
    """`jit(vmap(correct))(episodes, senders [CHUNK, P, ...], receivers [CHUNK, Q, ...]) -> [CHUNK, n]`, one per world and agents."""
    _, game, agents = world_game_agents(game_config, agents_config)

    def correct(episodes, senders, receivers):
        def per_sender(sender_params):
            message = agents.sender(sender_params).greedy(episodes.target)
            return members(lambda r: rollout(agents.receiver(r), episodes, message, game).correct, receivers)

        return jnp.mean(members(per_sender, senders).astype(jnp.float32), axis=(0, 1))  # over the pairs

    return jax.jit(jax.vmap(correct, in_axes=(None, 0, 0)))


def snapshot_correct(trainer: Trainer, snapshots: dict, split: str) -> np.ndarray:
    """`[runs, M, n]`: whether each snapshot's greedy message is decoded right, for each object of `split`."""
    program = _correct_program(trainer.config.game, trainer.config.agents)
    episodes = trainer.spec.split_episodes(split)
    runs, m = jax.tree.leaves(snapshots["senders"])[0].shape[:2]
    total = runs * m
    take = np.minimum(np.arange(-(-total // CHUNK) * CHUNK), total - 1)  # padded with the last snapshot
    flat = jax.tree.map(lambda a: a.reshape(total, *a.shape[2:])[take], (snapshots["senders"], snapshots["receivers"]))
    out = [np.asarray(program(episodes, *jax.tree.map(lambda a: a[i:i + CHUNK], flat))) for i in range(0, len(take), CHUNK)]
    return np.concatenate(out)[:total].reshape(runs, m, -1)


def adversary_log_ratios(trainer: Trainer, snapshots: dict) -> np.ndarray | None:
    """`[runs, M, n_train]`: each snapshot's adversary f(x) on the train objects; None for an objective without one."""
    objective = snapshots["objective"]
    if not (isinstance(objective, dict) and "params" in objective):
        return None
    features = trainer.game.features(jnp.asarray(trainer.world.train_objects))
    f = jax.jit(jax.vmap(jax.vmap(lambda params: dro.adversary_log_ratios(params, features))))
    return np.asarray(f(objective["params"]))


def select(trainer: Trainer, snapshots: Snapshots, n_runs: int | None = None, max_kl: float = dro.MAX_KL,
           splits: tuple[str, ...] = ("train", "test")) -> Selection:
    """The minmax choice of every run among its snapshots (module docstring); `n_runs` drops padding runs."""
    n_runs = n_runs or trainer.config.train.seeds
    stacked = snapshots.stacked(n_runs)
    correct = {split: snapshot_correct(trainer, stacked, split) for split in splits}
    train_correct = correct["train"] if "train" in correct else snapshot_correct(trainer, stacked, "train")
    log_ratios = adversary_log_ratios(trainer, stacked)
    probs = np.asarray(trainer.world.train_probs)
    index, robust, kept = [], [], []
    for run in range(n_runs):
        ratios = np.zeros((0, probs.size)) if log_ratios is None else log_ratios[run]
        best, scores, ok = dro.minmax_select(1.0 - train_correct[run], ratios, probs, max_kl)
        index.append(best)
        robust.append(np.asarray(scores))
        kept.append(np.asarray(ok) if log_ratios is not None else np.zeros(len(snapshots.steps), bool))
    index = np.asarray(index)
    return Selection(index, np.asarray(snapshots.steps)[index], np.stack(robust), np.stack(kept), correct)
