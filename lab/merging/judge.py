"""How well merged agents communicate: every object of each split played once, by many pairs in one compiled call.

`Judge(spec)` fixes the games: the train objects the runs trained on, the held-out `validation`
objects (`merge.validation`; greedy soups gate on them) and the compositional `test` split, each
object a target once with fixed candidates, and one fixed key for the sampled messages, so every
merge is scored on the same games. Per split and pair, as in lab.core.evaluate:

    accuracy        whole object right, on the sender's greedy messages
    loss            -mean log rho(x|m), on messages sampled with the fixed key
    topsim          of the greedy messages (on at most `eval_size` objects of the split; where they have attributes)
    message_length  of the greedy messages (EOS included)

`judge(pairs)` scores a stack of pairs `Pair [n, ...]` (in chunks of a fixed size: one compile);
`judge.ensemble(pairs)` scores the logit ensemble of n pairs, the non-merged reference: at every
position the senders' next-symbol logits are averaged (softmax of the mean log-probabilities;
every member is fed the symbol chosen), and so are the receivers' guesses.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lab.core import metrics
from lab.core.agents import Agents, Sender
from lab.core.evaluate import eval_sets
from lab.core.rollout import rollout
from lab.core.spec import Spec
from lab.merging.rewards import validation_of
from lab.merging.weights import Pair

Scores = dict  # {split: {metric: np.ndarray [n] or float}}


def _mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    w = mask.astype(jnp.float32)
    return jnp.sum(w * values) / jnp.sum(w)


class EnsembleSender(Sender):
    """The logit ensemble of stacked senders `[M, ...]`, with the protocol's `greedy` and `sample`.

    At every position the members' next-symbol log-probabilities are averaged (softmax of the mean
    logits) and every member is fed the symbol chosen. Members of any architecture: each is
    teacher-forced on the message so far (`symbol_log_probs`), max_len passes for a message, as the
    judge scores an ensemble once per split.
    """

    def __init__(self, agents: Agents, params):
        self.agents, self.params = agents, params  # params [M, ...]
        self.vocab_size, self.max_len = agents.config.vocab_size, agents.config.max_len

    def decode(self, objects: jax.Array, choose, xs, unroll: bool = True) -> tuple[jax.Array, jax.Array]:
        length = self.max_len if xs is None else jax.tree.leaves(xs)[0].shape[0]

        def body(symbols, step):  # symbols [B, length]: those chosen so far, 0 after
            t, x_t = step
            log_p = jax.vmap(lambda p: self.agents.sender(p).symbol_log_probs(objects, symbols)[:, t])(self.params)  # [M, B, vocab]
            log_p = jax.nn.log_softmax(jnp.mean(log_p, axis=0))
            one_hot = choose(log_p, x_t)
            return symbols.at[:, t].set(jnp.argmax(one_hot, -1)), (log_p, one_hot)

        symbols = jnp.zeros((objects.shape[0], length), jnp.int32)
        _, (log_p, one_hot) = jax.lax.scan(body, symbols, (jnp.arange(length), xs))
        return log_p.swapaxes(0, 1), one_hot.swapaxes(0, 1)


class EnsembleReceiver(NamedTuple):
    """The logit ensemble of stacked receivers `[M, ...]`, with the protocol's `read`."""

    agents: Agents
    params: object  # [M, ...]

    def read(self, one_hot, candidates=None, shown=None, unroll=True):
        log_p = jax.vmap(lambda p: self.agents.receiver(p).read(one_hot, candidates, shown, unroll))(self.params)
        return jax.nn.log_softmax(jnp.mean(log_p, axis=0))  # [B, K, V] or [B, C]; an unshown candidate stays -inf


class Judge:
    """Fixed games on each split and a fixed key; scores pairs and ensembles (module docstring)."""

    def __init__(self, spec: Spec, key: jax.Array | None = None, chunk: int = 16, eval_size: int | None = None):
        self.spec, self.chunk = spec, chunk
        world, config = spec.world, spec.config
        held_out = validation_of(spec)
        rows = {"train": world.train[~held_out]}
        if held_out.any():
            rows["validation"] = world.train[held_out]
        if len(world.test):
            rows["test"] = world.test
        self.splits = tuple(rows)
        self.sizes = {split: len(r) for split, r in rows.items()}
        objects = {split: world.objects[r] for split, r in rows.items()}
        attributes = None if world.attributes is None else {split: world.attributes[r] for split, r in rows.items()}
        groups = {split: np.zeros(len(r), np.int32) for split, r in rows.items()}
        eval_size = config.train.eval_size if eval_size is None else eval_size  # topsim's objects per split (n^2 pairs)
        self.sets = eval_sets(spec.game, objects, attributes, groups, eval_size)
        self.key = jax.random.key(0) if key is None else key
        game, agents = spec.game, spec.agents

        def score(sender, receiver, es):
            targets = es.episodes.target
            greedy, sampled = sender.greedy(targets), sender.sample(targets, self.key)
            g, s = rollout(receiver, es.episodes, greedy, game), rollout(receiver, es.episodes, sampled, game)
            out = dict(accuracy=_mean(g.correct, es.mask), loss=-_mean(s.log_rho, es.mask),
                       message_length=metrics.mean_length_jax(greedy.symbols, es.mask))
            if es.attributes is not None:
                out["topsim"] = metrics.topsim_jax(es.attributes[es.subset], greedy.symbols[es.subset], es.subset_mask)
            if g.attribute_correct is not None:
                out["attribute_accuracy"] = _mean(jnp.mean(g.attribute_correct, -1), es.mask)
            return out

        def pairs(stacked: Pair, sets):
            one = lambda p, es: score(agents.sender(p.sender), agents.receiver(p.receiver), es)  # noqa: E731
            # a barrier, or XLA constant-folds the sorts of topsim over the fixed objects at compile time
            return jax.lax.map(lambda es: jax.vmap(one, (0, None))(stacked, es), jax.lax.optimization_barrier(sets))

        def ensemble(stacked: Pair, sets):
            sender, receiver = EnsembleSender(agents, stacked.sender), EnsembleReceiver(agents, stacked.receiver)
            return jax.lax.map(lambda es: score(sender, receiver, es), jax.lax.optimization_barrier(sets))

        self._pairs, self._ensemble = jax.jit(pairs), jax.jit(ensemble)

    def _unpack(self, out: dict) -> Scores:
        return {split: {metric: np.asarray(v[i]) for metric, v in out.items()} for i, split in enumerate(self.splits)}

    def __call__(self, pairs: Pair) -> Scores:
        """Scores of each of n stacked pairs `Pair [n, ...]`: `{split: {metric: [n]}}`."""
        n = jax.tree.leaves(pairs)[0].shape[0]
        chunks = []
        for start in range(0, n, self.chunk):
            take = np.minimum(np.arange(start, start + self.chunk), n - 1)  # the last chunk padded with the last pair
            chunks.append(jax.device_get(self._pairs(jax.tree.map(lambda leaf: leaf[take], pairs), self.sets)))
        out = jax.tree.map(lambda *c: np.concatenate(c, axis=1)[:, :n], *chunks)  # [splits, n]
        return self._unpack(out)

    def pair(self, pair: Pair) -> Scores:
        """Scores of one pair: `{split: {metric: float}}`."""
        scores = self(jax.tree.map(lambda leaf: jnp.asarray(leaf)[None], pair))
        return jax.tree.map(lambda v: float(v[0]), scores)

    def ensemble(self, pairs: Pair) -> Scores:
        """Scores of the logit ensemble of n stacked pairs (every sender speaks together, every receiver listens)."""
        if jax.tree.leaves(pairs)[0].shape[0] == 0:
            raise ValueError("pairs: an ensemble needs at least one pair")
        return jax.tree.map(float, self._unpack(jax.device_get(self._ensemble(pairs, self.sets))))
