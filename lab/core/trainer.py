"""The trainer: `Trainer(config, components)`, whose `train(key, hparams) -> (final_state, history)` is pure.

The whole run is one function: `lax.scan` over evaluation blocks, each an evaluation of every
split followed by `eval_every` optimizer steps. The runner (lab.experiment.execute, behind `lab run`,
sweeps, studies and `lab.train_seeds`) calls its two halves, `evaluation` and `steps`, from the host
as two compiled programs, for progress, divergence checks and a quicker compile; `trainer.train` composes
the same two for whoever wants one pure function (`jax.jit(jax.vmap(trainer.train))(keys, hparams)`).

One optimizer step (`train_step`), from the slots of lab.core.components:

    interventions             may change the state first (listener reset and refit, EMA, ...)
    pairs   = pairing rule    every sender plays one receiver (lab.core.population)
    env     = sampler.env     the distribution targets are drawn from (curricula)
    ids ~ env.probs, per pair; episodes with their candidates
    loss    = sum over pairs of estimator.loss(rollout, w), w = objective.weights(-log rho)
    grads; Adam on the agents that played
    sampler, objective, estimator updated from the per-example Stats

Every slot at its identity default is plain self-play with REINFORCE or Gumbel-softmax. Nothing
subclasses the trainer: a new sampler, objective, estimator or intervention is a value passed in
`Components` (lab.experiment.build makes them from the config).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, struct

import games
from curricula.base import Stats
from games.fields import ConfigError, doc
from lab.core import population as pop
from lab.core.spec import Spec
from lab.core.components import Components
from lab.core.estimators import Context
from lab.core.evaluate import Ravel, eval_sets, evaluate
from lab.core.hparams import Hparams
from lab.core.optim import adam_init, adam_statistics, adam_step, learning_rates
from lab.core.rollout import rollout

SPLIT_NAMES = ("train", "test")
REWARDS = ("listener", "ideal")
# Each mode's learning rate when train.lr is 0 (the default). Gumbel's straight-through gradient keeps moving a
# converged sender at lr-sized Adam steps until messages merge: at 3e-3 seeds decay after step 500 (4-6 of 8 held
# >= 0.95 at step 1500), at 1e-3 all 8 held through step 3000; REINFORCE at 3e-3 held 7 of 8 (README, default game).
MODE_LR = {"reinforce": 3e-3, "gumbel": 1e-3}


@dataclass(frozen=True)
class TrainConfig:
    mode: str = doc("how the sender learns: reinforce (log-likelihood reward) or gumbel (straight-through Gumbel-softmax)",
                    "reinforce", choices=("reinforce", "gumbel"))
    steps: int = doc("optimizer steps", 1500, low=1)
    batch_size: int = doc("games per step (per pair of a population)", 512, low=1)
    seeds: int = doc("runs trained together as one vmapped call, seeds seed, seed+1, ...", 8, low=1)
    seed: int = doc("first seed", 0, low=0)
    lr: float = doc("Adam learning rate of sender and receiver; 0: the mode's own (reinforce 3e-3, gumbel 1e-3)", 0.0,
                    low=0.0, continuous=True)
    sender_lr: float = doc("sender learning rate; 0 means use lr", 0.0, low=0.0, continuous=True)
    receiver_lr: float = doc("receiver learning rate; 0 means use lr", 0.0, low=0.0, continuous=True)
    beta1: float = doc("Adam beta1 (first-moment decay)", 0.9, low=0.0, high=1.0, high_open=True, continuous=True)
    beta2: float = doc("Adam beta2 (second-moment decay)", 0.999, low=0.0, high=1.0, high_open=True, continuous=True)
    eps: float = doc("Adam epsilon", 1e-8, low=0.0, low_open=True, continuous=True)
    sender_p_step: float = doc("probability that the sender learns from a batch (Rita et al.'s p_step; its speed relative "
                               "to the receiver's)", 1.0, low=0.0, high=1.0, continuous=True)
    receiver_p_step: float = doc("probability that a receiver learns from a batch it played (p_step)", 1.0, low=0.0, high=1.0,
                                 continuous=True)
    receiver_weight_decay: float = doc("decoupled weight decay of the receivers' Adam (AdamW; times the learning rate): "
                                       "a regularised listener", 0.0, low=0.0, continuous=True)
    entropy_coeff: float = doc("reinforce: weight of the sender's entropy bonus", 0.01, low=0.0, continuous=True)
    baseline_decay: float = doc("reinforce: decay of the running-mean reward baseline", 0.99, low=0.0, high=1.0, high_open=True)
    length_cost: float = doc("cost per message symbol (EOS included) in the sender's reward (EGG's length_cost)", 0.0,
                             low=0.0, continuous=True)
    impatient: bool = doc("impatient listener (Rita et al. 2020, LazImpa): it guesses after every symbol; its loss, and the "
                          "speaker's reward, average over the message's prefixes", False)
    temperature: float = doc("gumbel: Gumbel-softmax temperature at step 0", 1.0, low=0.0, low_open=True, continuous=True)
    temperature_decay: float = doc("gumbel: temperature multiplied by this every step (EGG's TemperatureUpdater)", 1.0,
                                   low=0.0, high=1.0, low_open=True, continuous=True)
    temperature_min: float = doc("gumbel: floor of the decayed temperature", 0.1, low=0.0, low_open=True, continuous=True)
    eval_every: int = doc("steps between evaluations (metrics on train and test)", 100, low=1)
    eval_size: int = doc("at most this many objects per split for topsim and the loss decomposition (pairs grow as n^2)", 256, low=2)
    stop_accuracy: float = doc("early stopping: a run freezes at the first evaluation whose train accuracy is >= this "
                               "(0: never)", 0.0, low=0.0, high=1.0)
    stop_l_info: float = doc("early stopping on the speaker alone: a run freezes at the first evaluation whose train L_info "
                             "(the ambiguity of its messages on the train objects, nats) is <= this; 0: never. Either "
                             "rule stops a run (reconstruction game)", 0.0, low=0.0)
    reward: str = doc("the sender's REINFORCE reward: listener (log rho(x|m), the game) or ideal (log pihat(x|m) of its "
                      "ideal listener over the train objects: a demonstration of information overfitting, lab.controls)",
                      "listener", choices=REWARDS)
    ideal_size: int = doc("ideal reward: train objects that normalise the ideal listener, drawn anew each step; "
                          "0 or >= the train split means all of them (exact)", 64, low=0)

    @property
    def n_evals(self) -> int:
        return self.steps // self.eval_every

    @property
    def stops(self) -> bool:
        """Whether an early-stopping rule is on."""
        return self.stop_accuracy > 0 or self.stop_l_info > 0

    def resolved(self) -> "TrainConfig":
        """This section with `lr` = 0 replaced by the mode's learning rate (MODE_LR): what training uses."""
        return self if self.lr else dataclasses.replace(self, lr=MODE_LR[self.mode])

    def validate(self, config) -> None:
        if self.steps % self.eval_every:
            raise ConfigError(f"train.steps={self.steps}: must be a multiple of train.eval_every={self.eval_every}")
        decomposable = " or ".join(f"game.kind={kind!r}" for kind, game in games.GAMES.items() if game.DECOMPOSABLE)
        if self.stop_l_info > 0 and not games.game_class(config.game.kind).DECOMPOSABLE:
            raise ConfigError(f"train.stop_l_info={self.stop_l_info}: L_info is measured where the listener guesses the "
                              f"object itself ({decomposable}); game.kind={config.game.kind!r}")
        if self.reward == "ideal" and (self.mode != "reinforce" or not games.game_class(config.game.kind).DECOMPOSABLE):
            raise ConfigError(f"train.reward='ideal' needs train.mode='reinforce' and {decomposable}, a game whose listener "
                              f"guesses the object itself (the ideal listener is a posterior over objects, a REINFORCE "
                              f"reward); got mode={self.mode!r}, kind={config.game.kind!r}")


@struct.dataclass
class TrainState:
    """The agents, their optimizer states, each component's state under its name, and the step."""

    senders: nnx.State  # [P, ...]
    receivers: nnx.State  # [Q, ...]
    sender_opt: optax.OptState  # [P, ...]
    receiver_opt: optax.OptState  # [Q, ...]
    components: dict  # {name: state} of every component (lab.core.components): estimator, sampler, objective, interventions
    step: jax.Array  # [] optimizer steps taken
    stopped: jax.Array  # [] bool, early-stopped: frozen from then on
    stop_step: jax.Array  # [] int, the step it stopped at (-1: never)

    def with_components(self, **states) -> "TrainState":
        """A copy with the named components' states replaced."""
        return self.replace(components={**self.components, **states})


class Draw(NamedTuple):
    """What one step plays: P pairs, each on its own batch of B games."""

    pairs: pop.Pairs
    ids: jax.Array  # [P, B] target ids among the train objects
    episodes: games.EnvState  # leaves [P, B, ...]
    groups: jax.Array  # [P, B]


class Trainer:
    """Everything static about a run (world, game, agents, components) and its pure functions.

    `init`, `train_step`, `evaluate`, `block` and `train` are pure in (state, key, hparams); jit
    and vmap them. `groups [n_objects]` assigns each object of the world a group (default: one).
    """

    def __init__(self, config, components: Components, groups: np.ndarray | None = None, spec: Spec | None = None):
        self.config, self.components = config, components.check()
        t = config.train
        self.population = config.population
        self.spec = spec or Spec(config)
        self.world, self.game, self.agents, self.train_env = self.spec.world, self.spec.game, self.spec.agents, self.spec.train_env
        groups = np.zeros(len(self.world.objects), np.int32) if groups is None else np.asarray(groups, np.int32)
        self.groups, self.n_groups = groups, int(groups.max()) + 1
        self.train_groups = jnp.asarray(groups[self.world.train])
        self.split_objects = {"train": self.world.train_objects, "test": self.world.test_objects}
        self.eval_sets = eval_sets(self.game, self.split_objects, self.spec.split_attributes,
                                   {"train": groups[self.world.train], "test": groups[self.world.test]}, t.eval_size)
        self.n_evals = t.n_evals
        # names everything the programs depend on besides their arguments and the lab's source, or None;
        # make_trainer sets it for a trainer made from its config alone (lab.experiment.cache.lower)
        self.fingerprint: str | None = None

    @property
    def eval_steps(self) -> np.ndarray:
        return np.arange(self.n_evals + 1) * self.config.train.eval_every

    # -- state ------------------------------------------------------------------------------------
    def init(self, key: jax.Array, hparams: Hparams, agents: tuple | None = None) -> TrainState:
        """A fresh training state; `agents=(senders [P, ...], receivers [Q, ...])` starts from given parameters
        (fine-tuning from an ancestor) instead of fresh ones, with fresh optimizer states."""
        P, Q = self.population.n_senders, self.population.n_receivers
        c = self.components
        key_agents, key_sampler, key_objective, key_interventions = jax.random.split(key, 4)
        key_estimator = jax.random.fold_in(key, 4)  # beside the four, so that their draws stay what they were
        if agents is not None:
            senders, receivers = agents
        elif P == Q == 1:  # the keys of a lone pair, as `Agents.init` splits them
            senders, receivers = jax.tree.map(lambda leaf: leaf[None], self.agents.init(key_agents))
        else:
            key_s, key_r = jax.random.split(key_agents)
            senders = jax.vmap(self.agents.init_sender)(jax.random.split(key_s, P))
            receivers = jax.vmap(self.agents.init_receiver)(jax.random.split(key_r, Q))
        hp = hparams["train"]
        sender_lr, receiver_lr = learning_rates(hp)
        state = TrainState(
            senders=senders, receivers=receivers,
            sender_opt=jax.vmap(lambda p: adam_init(p, sender_lr, hp))(senders),
            receiver_opt=jax.vmap(lambda p: adam_init(p, receiver_lr, hp, hp["receiver_weight_decay"]))(receivers),
            components=dict(estimator=c.estimator.init(key_estimator), sampler=c.sampler.init(key_sampler),
                            objective=c.objective.init(key_objective)),
            step=jnp.zeros((), jnp.int32), stopped=jnp.zeros((), bool), stop_step=jnp.full((), -1, jnp.int32),
        )
        keys = jax.random.split(key_interventions, max(1, len(c.interventions)))
        return state.with_components(**{name: intervention.init(k, state)
                                        for (name, intervention), k in zip(c.interventions.items(), keys)})

    def sender(self, state: TrainState, index: int = 0):
        return self.agents.sender(pop.take(state.senders, index))

    def receiver(self, state: TrainState, index: int = 0):
        return self.agents.receiver(pop.take(state.receivers, index))

    # -- one optimizer step -------------------------------------------------------------------------
    def intervene(self, state: TrainState, key: jax.Array, step: jax.Array, hparams: Hparams) -> TrainState:
        """Every intervention in turn, each on the state the previous one left."""
        interventions = self.components.interventions
        keys = jax.random.split(key, max(1, len(interventions)))
        for (name, intervention), k in zip(interventions.items(), keys):
            own, state = intervention.update(state.components[name], state, k, step, hparams.get("interventions", {}))
            state = state.with_components(**{name: own})
        return state

    def draw(self, state: TrainState, key: jax.Array, step: jax.Array, hparams: Hparams) -> Draw:
        """This step's pairs and their batches: targets drawn from the sampler's distribution, with candidates."""
        pairs = pop.pair(self.population, jax.random.fold_in(key, 0), step)
        n_pairs = self.population.n_senders
        env = self.components.sampler.env(state.components["sampler"], self.train_env, state.step, hparams.get("curriculum", {}))
        key_ids, key_episodes = jax.random.split(jax.random.fold_in(key, 1))
        batch_size = self.config.train.batch_size
        ids = jax.vmap(lambda k: self.game.sample_ids(k, env, batch_size))(jax.random.split(key_ids, n_pairs))  # [P, B]
        episodes = jax.vmap(self.game.episodes, (0, None, 0))(jax.random.split(key_episodes, n_pairs), env, ids)
        return Draw(pairs, ids, episodes, self.train_groups[ids])

    def loss(self, params: tuple, state: TrainState, draw: Draw, key: jax.Array, hparams: Hparams):
        """`(sum over pairs of the estimator's surrogate, (rollouts, weights, aux))` for `params = (senders, receivers)`."""
        c, own = self.components, state.components
        hp_train, hp_objective, hp_curriculum = hparams["train"], hparams.get("objective", {}), hparams.get("curriculum", {})
        read = {name: own[name] for name in c.estimator.reads}

        def pair_loss(sender_params, receiver_params, episodes, ids, groups, key):
            key_speak, key_reward = jax.random.split(key)
            sender = self.agents.sender(sender_params)
            message = c.estimator.speak(own["estimator"], sender, episodes.target, key_speak, state.step, hp_train)
            ro = rollout(self.agents.receiver(receiver_params), episodes, message, self.game,
                         impatient=self.config.train.impatient)
            weights = jax.lax.stop_gradient(c.objective.weights(own["objective"], -ro.log_rho, groups, ids, hp_objective)
                                            * c.sampler.weights(own["sampler"], ids, state.step, hp_curriculum))
            context = Context(sender, episodes.target, ids, state.step, key_reward, hparams, read)
            loss, aux = c.estimator.loss(own["estimator"], ro, weights, context, hp_train)
            return loss, (ro, weights, aux)

        senders, receivers = params
        pairs = draw.pairs
        if self.population.n_senders == 1:  # no vmap over a single pair: plain (unbatched) matmuls
            receiver = pop.take(receivers, 0 if self.population.n_receivers == 1 else pairs.receivers[0])
            loss, out = pair_loss(pop.take(senders, 0), receiver, *jax.tree.map(lambda x: x[0], (draw.episodes, draw.ids, draw.groups)), key)
            return loss, jax.tree.map(lambda x: x[None], out)
        keys = jax.random.split(key, self.population.n_senders)
        losses, out = jax.vmap(lambda s, r, *rest: pair_loss(pop.take(senders, s), pop.take(receivers, r), *rest))(
            pairs.senders, pairs.receivers, draw.episodes, draw.ids, draw.groups, keys)
        return jnp.sum(losses), out

    def train_step(self, state: TrainState, key: jax.Array, step: jax.Array, hparams: Hparams) -> tuple[TrainState, dict]:
        """One optimizer step; `step` is the unbatched step number (the same for every run, for schedules and branches)."""
        c = self.components
        hp_train, hp_objective, hp_curriculum = hparams["train"], hparams.get("objective", {}), hparams.get("curriculum", {})
        key_intervene, key_draw, key_play = jax.random.split(key, 3)
        state = self.intervene(state, key_intervene, step, hparams)
        draw = self.draw(state, key_draw, step, hparams)
        grads, (ro, weights, aux) = jax.grad(self.loss, has_aux=True)((state.senders, state.receivers), state, draw, key_play, hparams)
        ids, groups, pairs = draw.ids, draw.groups, draw.pairs
        P, Q = self.population.n_senders, self.population.n_receivers
        # p_step: who learns from this batch (a key of its own, so that every other draw stays what it was)
        key_sender, key_receiver = jax.random.split(jax.random.fold_in(key, 3))
        senders_step = jax.random.bernoulli(key_sender, hp_train["sender_p_step"], (P,))
        receivers_step = jax.random.bernoulli(key_receiver, hp_train["receiver_p_step"], (Q,))
        if Q > 1:
            receivers_step &= pop.played(pairs.receivers, Q)
        senders, sender_opt, sender_updates = adam_step(grads[0], state.sender_opt, state.senders, senders_step)
        receivers, receiver_opt, receiver_updates = adam_step(grads[1], state.receiver_opt, state.receivers, receivers_step)
        aux = jax.tree.map(lambda v: jnp.mean(v, axis=0), aux)  # over pairs
        stats = Stats(ids=ids.reshape(-1), groups=groups.reshape(-1), loss=-jax.lax.stop_gradient(ro.log_rho).reshape(-1),
                      correct=ro.correct.reshape(-1), weights=weights.reshape(-1), step=state.step)
        own = state.components
        state = state.replace(
            senders=senders, receivers=receivers, sender_opt=sender_opt, receiver_opt=receiver_opt, step=state.step + 1,
        ).with_components(
            estimator=c.estimator.update(own["estimator"], aux, hp_train),
            sampler=c.sampler.update(own["sampler"], stats, hp_curriculum),
            objective=c.objective.update(own["objective"], stats, hp_objective),
        )
        own = state.components
        sender_lr, receiver_lr = learning_rates(hp_train)
        sender_norm, sender_v = adam_statistics(sender_updates, sender_opt, sender_lr)
        receiver_norm, receiver_v = adam_statistics(receiver_updates, receiver_opt, receiver_lr)
        summary = dict(
            loss=jnp.mean(stats.loss), accuracy=jnp.mean(stats.correct), entropy=jnp.mean(ro.message.entropy),
            message_length=jnp.mean(games.message_length(ro.message.symbols)), weight_mean=jnp.mean(stats.weights),
            sender_update_ratio=sender_norm, receiver_update_ratio=receiver_norm, sender_adam_v=sender_v, receiver_adam_v=receiver_v,
            **aux, **c.estimator.summary(own["estimator"], hp_train), **c.sampler.summary(own["sampler"], hp_curriculum),
            **c.objective.summary(own["objective"], hp_objective),
        )
        for name, intervention in c.interventions.items():
            summary.update(intervention.summary(own[name], hparams.get("interventions", {})))
        return state, summary

    # -- evaluation and the loop ----------------------------------------------------------------------
    def evaluate(self, state: TrainState, key: jax.Array) -> dict[str, dict[str, jax.Array]]:
        """`{split: {metric: value}}`: scalars for a lone pair, `[P]` (sender metrics) or `[P, Q]` in a population."""
        out = evaluate(self.agents, self.game, self.n_groups, self.eval_sets, SPLIT_NAMES, state.senders, state.receivers, key)
        if self.population.size == 1:
            out = jax.tree.map(lambda v: v.reshape(()), out)
        return out

    def train_block(self, state: TrainState, key: jax.Array, index: jax.Array, hparams: Hparams) -> tuple[TrainState, dict]:
        """`eval_every` optimizer steps after block `index` (unbatched); returns the mean of each step statistic."""
        every = self.config.train.eval_every
        steps = index * every + jnp.arange(every)

        def step(state, xs):
            key, number = xs
            new, summary = self.train_step(state, key, number, hparams)
            if self.config.train.stops:  # a stopped run keeps its state, and its steps report nothing
                new = jax.tree.map(lambda a, b: jnp.where(state.stopped, a, b), state, new)
                summary = jax.tree.map(lambda v: jnp.where(state.stopped, jnp.nan, v), summary)
            return new, summary

        ravel = Ravel()

        def packed(state, xs):  # the statistics as one vector (Ravel)
            state, summary = step(state, xs)
            return state, ravel(summary)

        state, flats = jax.lax.scan(packed, state, (jax.random.split(key, every), steps))
        return state, ravel.unravel(jnp.mean(flats, axis=0))

    def evaluation(self, state: TrainState, key: jax.Array) -> tuple[TrainState, dict]:
        """The evaluation before a block: `(state, metrics)`, with early stopping decided (`train.stop_accuracy`,
        `train.stop_l_info`).

        `key` is the run key; the same messages at every evaluation, so they compare over time.
        """
        t = self.config.train
        metrics = self.evaluate(state, jax.random.fold_in(key, 0))
        if t.stops:
            train = metrics["train"]
            reached = jnp.zeros((), bool)
            if t.stop_accuracy > 0:
                reached |= jnp.mean(train["accuracy"]) >= t.stop_accuracy
            if t.stop_l_info > 0:
                reached |= jnp.mean(train["l_info"]) <= t.stop_l_info
            reached &= ~state.stopped
            state = state.replace(stopped=state.stopped | reached, stop_step=jnp.where(reached, state.step, state.stop_step))
            metrics["train"]["stopped"] = state.stopped.astype(jnp.float32)
        return state, metrics

    def steps(self, state: TrainState, key: jax.Array, index: jax.Array, hparams: Hparams) -> tuple[TrainState, dict]:
        """The `eval_every` optimizer steps of block `index` after its evaluation (`key`: the run key)."""
        return self.train_block(state, jax.random.fold_in(jax.random.fold_in(key, 1), index), index, hparams)

    @staticmethod
    def run_keys(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(init key, run key, evaluation key) of a run's key: the evaluation samples its messages with the last."""
        key_init, key_run = jax.random.split(key)
        return key_init, key_run, jax.random.fold_in(key_run, 0)

    def train(self, key: jax.Array, hparams: Hparams, agents: tuple | None = None):
        """One run: `(final TrainState, history)`, `history[split][metric]: [n_evals + 1, ...]` (step 0 first).

        What the runner (lab.experiment.execute) computes from the host, as one pure function: `evaluation` then
        `steps` for each block, and a last `evaluation`. `history["batch"]` holds the step statistics of the block
        before each evaluation (NaN at step 0). `agents`: as in `init`.
        """
        key_init, key_run, _ = self.run_keys(key)
        state = self.init(key_init, hparams, agents)

        def block(state, index):
            state, metrics = self.evaluation(state, key_run)
            state, batch = self.steps(state, key_run, index, hparams)
            return state, {**metrics, "batch": batch}

        state, history = jax.lax.scan(block, state, jnp.arange(self.n_evals))
        state, last = self.evaluation(state, key_run)
        last["batch"] = jax.tree.map(lambda v: jnp.full_like(v[0], jnp.nan), history["batch"])  # no steps after it
        history = jax.tree.map(lambda blocks, after: jnp.concatenate([blocks, after[None]]), history, last)
        return state, shift_batch(history)


def shift_batch(history: dict, axis: int = 0) -> dict:
    """Move the step statistics of block i (returned with evaluation i) to evaluation i + 1, where they end.

    `axis` is the evaluation axis (1 when the runs come first); numpy or JAX arrays.
    """
    def shift(v):
        xp = jnp if isinstance(v, jax.Array) else np
        first = xp.take(v, xp.arange(1), axis=axis)
        return xp.concatenate([xp.full_like(first, np.nan), xp.take(v, xp.arange(v.shape[axis] - 1), axis=axis)], axis=axis)

    return {**history, "batch": jax.tree.map(shift, history["batch"])}


def seed_keys(config) -> jax.Array:
    """One key per seed: `jax.random.key(s)` for s = seed, seed+1, ..."""
    t = config.train
    return jax.vmap(jax.random.key)(jnp.arange(t.seed, t.seed + t.seeds))
