"""The trainer: `make_train(config) -> train(key, hparams) -> (final_state, metrics)`.

The whole run is one pure function: `lax.scan` over evaluation blocks, each a `lax.scan`
over `eval_every` optimizer steps followed by an evaluation on the train and test splits.
`jax.jit(jax.vmap(train))(keys, hparams)` trains a population; continuous hyperparameters
(`Hparams`) vary across it, structural ones (sizes, game, cell, mode) are fixed by `config`.

Game loss (Rita et al. 2022): L = -E_{x~p, m~pi(.|x)} log rho(x|m).
* listener: minimises L by cross-entropy;
* speaker, REINFORCE: reward log rho(x|m) minus a running-mean baseline, plus an entropy bonus;
* speaker, Gumbel-softmax straight-through: gradients of L through the relaxed symbols.
Evaluation splits the reconstruction loss of each split into L_info + L_adapt
(lab.analysis.decomposition), and `train.control` selects a co-adaptation control (lab.controls).

Two seams for what builds on it: the loss takes per-example `weights` (DRO reweights them),
and targets are drawn from `TrainState.probs`, a distribution over the train objects held in
the loop state (curricula change it).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, struct

import games
from lab import metrics
from lab.analysis import decomposition
from lab.agents import Message, Receiver, Sender, eos_weights, make_agents
from lab.config import Config

SPLITS = ("train", "test")


@struct.dataclass
class Hparams:
    """Continuous hyperparameters: scalars here, arrays `[population]` under vmap."""

    sender_lr: jax.Array
    receiver_lr: jax.Array
    entropy_coeff: jax.Array
    temperature: jax.Array


# Config fields that reach the trainer only through `Hparams`: a sweep varies them inside one
# compiled call. Every other field is static (shapes or code) and splits a sweep into compile
# groups. A new vmappable field goes into `Hparams`, `hparams_from_config` and this set.
CONTINUOUS = frozenset({"train.lr", "train.sender_lr", "train.receiver_lr", "train.entropy_coeff", "train.temperature"})


def hparams_from_config(config: Config, n: int | None = None) -> Hparams:
    """The config's values, as scalars or repeated `n` times for a population."""
    t = config.train
    values = Hparams(
        sender_lr=t.sender_lr or t.lr,
        receiver_lr=t.receiver_lr or t.lr,
        entropy_coeff=t.entropy_coeff,
        temperature=t.temperature,
    )
    shape = () if n is None else (n,)
    return jax.tree.map(lambda v: jnp.full(shape, v, jnp.float32), values)


@struct.dataclass
class TrainState:
    sender: nnx.State
    receiver: nnx.State
    sender_opt: optax.OptState
    receiver_opt: optax.OptState
    baseline: jax.Array  # [] running mean of the reward (bias-corrected on read)
    probs: jax.Array  # [n_train] p(target) over the train objects: the curriculum seam
    step: jax.Array  # []


class Episode(NamedTuple):
    """One batch of games, as the losses and the metrics see it."""

    targets: jax.Array  # [B, K]
    candidates: jax.Array  # [B, C, K] (reconstruction: C = 1)
    target_index: jax.Array  # [B]
    message: Message
    log_rho: jax.Array  # [B] log rho(x|m) read where the message ends
    correct: jax.Array  # [B] bool, the listener's best guess is the target


class Trainer:
    """Everything static about a run: world, game, agent definitions, optimizer.

    `Trainer(config)` with `train.control` other than none builds the control's subclass
    (lab.controls), so every entry point honours the control.
    """

    def __new__(cls, config: Config):
        if cls is Trainer and config.train.control != "none":
            from lab.controls import TRAINERS  # the controls subclass Trainer

            cls = TRAINERS[config.train.control]
        return super().__new__(cls)

    def __init__(self, config: Config):
        self.config = config
        self.on_block = None  # optional host callback(block_index), e.g. a progress bar
        g, a, t = config.game, config.agents, config.train
        self.world = games.make_world(g.n_attributes, g.n_values, g.n_objects, g.split, g.test_fraction,
                                      g.distribution, g.zipf_exponent, g.seed)
        self.game = games.make_game(g.kind, g.n_attributes, g.n_values, a.vocab_size, a.max_len,
                                    g.n_distractors, g.hard_negatives)
        sender, receiver = make_agents(config, jax.random.key(0))
        self.sender_def, _ = nnx.split(sender)
        self.receiver_def, _ = nnx.split(receiver)
        self.optimizer = optax.inject_hyperparams(optax.adam)
        self.n_evals = t.steps // t.eval_every
        self.split_objects = {"train": self.world.train_objects, "test": self.world.test_objects}
        # fixed candidate sets per evaluated object, so evaluations are comparable over time
        self.eval_episodes = {split: self._eval_episodes(objs, seed) for seed, (split, objs) in enumerate(self.split_objects.items())}
        # topsim and the loss decomposition cost n^2 (pairs of objects, of messages): a larger split is
        # measured on a fixed uniform subset of eval_size objects (uniform prior over that subset)
        self.eval_subset = {split: np.sort(np.random.default_rng(seed).permutation(len(objs))[: t.eval_size])
                                    for seed, (split, objs) in enumerate(self.split_objects.items())}

    # -- agents as pure functions of their parameters -------------------------------------
    def sender(self, params) -> Sender:
        return nnx.merge(self.sender_def, params)

    def receiver(self, params) -> Receiver:
        return nnx.merge(self.receiver_def, params)

    def init(self, key: jax.Array, hparams: Hparams) -> TrainState:
        sender, receiver = make_agents(self.config, key)
        sender_params, receiver_params = nnx.state(sender), nnx.state(receiver)
        n_train = len(self.world.train)
        return TrainState(
            sender=sender_params,
            receiver=receiver_params,
            sender_opt=self.optimizer(learning_rate=hparams.sender_lr).init(sender_params),
            receiver_opt=self.optimizer(learning_rate=hparams.receiver_lr).init(receiver_params),
            baseline=jnp.zeros(()),
            probs=jnp.asarray(self.world.train_probs, jnp.float32).reshape(n_train),
            step=jnp.zeros((), jnp.int32),
        )

    # -- the game ---------------------------------------------------------------------------
    def listen(self, receiver_params, message: Message, targets, candidates, target_index) -> tuple[jax.Array, jax.Array]:
        """(log rho(x|m) `[B]`, correct `[B]`), the listener's reading where the message ends."""
        receiver = self.receiver(receiver_params)
        ends = eos_weights(message.one_hot[..., 0])  # [B, T]
        if self.game.kind == "reconstruction":
            log_p = receiver.reconstruct(message.one_hot)  # [B, T, K, V]
            per_attribute = jnp.take_along_axis(log_p, targets[:, None, :, None], axis=-1)[..., 0]  # [B, T, K]
            log_rho_t = per_attribute.sum(-1)
            guess = jnp.argmax(log_p, -1)  # [B, T, K]
            correct_t = jnp.all(guess == targets[:, None, :], axis=-1)
        else:
            log_p = receiver.discriminate(message.one_hot, candidates)  # [B, T, C]
            log_rho_t = jnp.take_along_axis(log_p, target_index[:, None, None], axis=-1)[..., 0]
            correct_t = jnp.argmax(log_p, -1) == target_index[:, None]
        log_rho = jnp.sum(ends * log_rho_t, axis=1)
        correct = jnp.sum(jax.lax.stop_gradient(ends) * correct_t, axis=1) > 0.5
        return log_rho, correct

    def play(self, sender_params, receiver_params, batch: games.EnvState, key, hparams: Hparams, how: str) -> Episode:
        sender = self.sender(sender_params)
        if how == "sample":
            message = sender.sample(batch.target, key)
        elif how == "greedy":
            message = sender.greedy(batch.target)
        else:
            message = sender.gumbel(batch.target, key, hparams.temperature)
        log_rho, correct = self.listen(receiver_params, message, batch.target, batch.candidates, batch.target_index)
        return Episode(batch.target, batch.candidates, batch.target_index, message, log_rho, correct)

    def loss(self, params, batch: games.EnvState, weights: jax.Array, baseline: jax.Array, key, hparams: Hparams):
        """Weighted game loss `sum_b w_b * loss_b` (weights sum to one) and its parts."""
        sender_params, receiver_params = params
        gumbel = self.config.train.mode == "gumbel"
        episode = self.play(sender_params, receiver_params, batch, key, hparams, "gumbel" if gumbel else "sample")
        game_loss = -jnp.sum(weights * episode.log_rho)
        if gumbel:
            total = game_loss
        else:
            advantage = jax.lax.stop_gradient(episode.log_rho) - baseline
            sender_loss = -jnp.sum(weights * (advantage * episode.message.log_prob + hparams.entropy_coeff * episode.message.entropy))
            total = game_loss + sender_loss  # the game loss reaches the receiver only: sampled symbols carry no gradient
        aux = dict(loss=game_loss, reward=jnp.sum(weights * episode.log_rho), accuracy=jnp.mean(episode.correct),
                   entropy=jnp.mean(episode.message.entropy))
        return total, aux

    def train_step(self, state: TrainState, key: jax.Array, hparams: Hparams, weights: jax.Array | None = None):
        """One optimizer step on a batch drawn from `state.probs`; `weights: [B]` default uniform."""
        t = self.config.train
        key_batch, key_play = jax.random.split(key)
        params = games.EnvParams(objects=jnp.asarray(self.world.train_objects), probs=state.probs)
        batch = self.game.sample_batch(key_batch, params, t.batch_size)
        if weights is None:
            weights = jnp.full(t.batch_size, 1.0 / t.batch_size)
        corrected_baseline = state.baseline / jnp.maximum(1.0 - t.baseline_decay ** state.step.astype(jnp.float32), 1e-8)
        baseline = jnp.where(state.step > 0, corrected_baseline, 0.0)
        grads, aux = jax.grad(self.loss, has_aux=True)((state.sender, state.receiver), batch, weights, baseline, key_play, hparams)
        sender_updates, sender_opt = self.optimizer(learning_rate=hparams.sender_lr).update(grads[0], state.sender_opt, state.sender)
        receiver_updates, receiver_opt = self.optimizer(learning_rate=hparams.receiver_lr).update(grads[1], state.receiver_opt, state.receiver)
        state = state.replace(
            sender=optax.apply_updates(state.sender, sender_updates),
            receiver=optax.apply_updates(state.receiver, receiver_updates),
            sender_opt=sender_opt,
            receiver_opt=receiver_opt,
            baseline=t.baseline_decay * state.baseline + (1 - t.baseline_decay) * aux["reward"],
            step=state.step + 1,
        )
        return state, aux

    # -- evaluation -------------------------------------------------------------------------
    def _eval_episodes(self, objects: np.ndarray, seed: int) -> games.EnvState:
        """Every object of a split as a target once, with candidates drawn from the same split."""
        params = self.game.default_params(objects)
        ids = jnp.arange(len(objects))
        keys = jax.random.split(jax.random.key(seed), len(objects))
        candidates, target_index = jax.vmap(lambda k, i: self.game.sample_candidates(k, params, i))(keys, ids)
        return games.EnvState(target=params.objects, candidates=candidates, target_index=target_index,
                              message=jnp.zeros((len(objects), self.config.agents.max_len), jnp.int32),
                              turn=jnp.zeros(len(objects), jnp.int32))

    def evaluate(self, state: TrainState, key: jax.Array, hparams: Hparams) -> dict[str, dict[str, jax.Array]]:
        """Metrics per split: accuracy on greedy messages, loss on sampled ones, language measures."""
        a, t = self.config.agents, self.config.train
        out = {}
        for split in SPLITS:
            # a barrier, or XLA constant-folds the sorts of topsim over the fixed objects at compile time
            batch = jax.lax.optimization_barrier(self.eval_episodes[split])
            greedy = self.play(state.sender, state.receiver, batch, key, hparams, "greedy")
            sampled = self.play(state.sender, state.receiver, batch, key, hparams, "sample")
            symbols = greedy.message.symbols
            subset = self.eval_subset[split]
            out[split] = dict(
                accuracy=jnp.mean(greedy.correct),
                loss=-jnp.mean(sampled.log_rho),
                topsim=metrics.topsim_jax(batch.target[subset], symbols[subset]),
                posdis=metrics.posdis_jax(batch.target, symbols, self.config.game.n_values, a.vocab_size),
                bosdis=metrics.bosdis_jax(batch.target, symbols, self.config.game.n_values, a.vocab_size),
                message_length=jnp.mean(games.message_length(symbols).astype(jnp.float32)),
                message_entropy=metrics.message_entropy_jax(symbols),
                vocab_use=metrics.vocab_use_jax(symbols, a.vocab_size).astype(jnp.float32),
            )
            if self.game.kind == "reconstruction":
                guess = self._greedy_guess(state.receiver, greedy.message)
                out[split]["attribute_accuracy"] = jnp.mean(guess == batch.target)
                out[split].update(self.decompose(state.sender, sampled, split))
        return out

    def decompose(self, sender_params, sampled: Episode, split: str) -> dict[str, jax.Array]:
        """l_info and l_adapt of a split's sampled episode (lab.analysis.decomposition).

        They sum to the logged `loss` when the split has at most `eval_size` objects; a larger
        split is decomposed on a fixed subset of them.
        """
        index = self.eval_subset[split]
        log_pi = decomposition.message_log_probs(self.sender(sender_params), sampled.targets[index], sampled.message.symbols[index])
        terms = decomposition.decompose(log_pi, sampled.log_rho[index])
        return dict(l_info=terms.l_info, l_adapt=terms.l_adapt)

    def _greedy_guess(self, receiver_params, message: Message) -> jax.Array:
        log_p = self.receiver(receiver_params).reconstruct(message.one_hot)  # [B, T, K, V]
        ends = eos_weights(message.one_hot[..., 0])
        return jnp.argmax(jnp.einsum("bt,btkv->bkv", ends, log_p), -1)

    # -- the whole run -----------------------------------------------------------------------
    def train(self, key: jax.Array, hparams: Hparams):
        """One run: `(final TrainState, metrics)` with `metrics[split][name]: [n_evals + 1]` (step 0 first)."""
        t = self.config.train
        key_init, key_run, key_eval = jax.random.split(key, 3)
        state = self.init(key_init, hparams)

        keys = jax.random.split(key_run, self.n_evals + 1)

        def block(state, index):
            # evaluate, then train (except after the last evaluation): one evaluate to compile, not two
            metrics = self.evaluate(state, key_eval, hparams)

            def train_block(state):
                state = self.train_block(state, keys[index], index, hparams)
                if self.on_block is not None:
                    jax.debug.callback(self.on_block, index)
                return state

            state = jax.lax.cond(index < self.n_evals, train_block, lambda s: s, state)
            return state, metrics

        state, history = jax.lax.scan(block, state, jnp.arange(self.n_evals + 1))
        return state, history

    def train_block(self, state: TrainState, key: jax.Array, index: jax.Array, hparams: Hparams) -> TrainState:
        """`eval_every` optimizer steps; `index` is the block's number (not batched under vmap)."""
        keys = jax.random.split(key, self.config.train.eval_every)
        return jax.lax.scan(lambda s, k: self.train_step(s, k, hparams), state, keys)[0]

    @property
    def eval_steps(self) -> np.ndarray:
        return np.arange(self.n_evals + 1) * self.config.train.eval_every


def make_train(config: Config):
    """`train(key, hparams) -> (final TrainState, metrics)`, pure; jit and vmap it."""
    return Trainer(config).train


def seed_keys(config: Config) -> jax.Array:
    """One key per seed of the population: seeds `seed, seed+1, ...`."""
    t = config.train
    return jax.vmap(jax.random.key)(jnp.arange(t.seed, t.seed + t.seeds))


def train_population(config: Config, trainer: Trainer | None = None, hparams: Hparams | None = None):
    """Train `config.train.seeds` seeds as one jitted, vmapped call."""
    trainer = trainer or Trainer(config)
    keys = seed_keys(config)
    hparams = hparams if hparams is not None else hparams_from_config(config, len(keys))
    return jax.jit(jax.vmap(trainer.train))(keys, hparams)
