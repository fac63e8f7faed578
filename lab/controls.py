"""Co-adaptation controls: trainers that keep the listener from co-adapting with the speaker.

Rita et al. 2022 (arXiv 2209.15342) split the game loss into L_info + L_adapt; these controls
act on the second term (../shared/science/lewis.md §2):

* reset: every `reset_every` steps the listener gets fresh weights and optimizer state, is
  refitted alone to the frozen speaker until its loss on held-out train objects stops improving
  (a fixed `listener_holdout` fraction of them, left out of the refit; capped at
  `listener_max_steps`), then joint training resumes on all train objects.
* population: `n_listeners` listeners held as one stacked pytree; each step the speaker plays a
  random member, and only that member learns. Evaluation averages over the members.
* ideal: the speaker's REINFORCE reward is log pihat(x|m), the log-posterior of its ideal listener
  over the train objects under the world's train distribution, instead of log rho(x|m). The
  actual listener still learns, so its loss and L_adapt stay measurable.

`Trainer(config)` returns these classes when `config.train.control` names one; they are pure
functions like the baseline, so `jit(vmap(train))` trains a population of seeds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import games
from lab.analysis.decomposition import message_log_probs
from lab.analysis.probe import fit_listener, fresh_receiver
from lab.train import Hparams, Trainer, TrainState


class ResetTrainer(Trainer):
    """Listener reset every `reset_every` steps, refitted to early stopping before joint training."""

    def __init__(self, config):
        super().__init__(config)
        n_train, fraction = len(self.world.train), config.train.listener_holdout
        held_out = np.zeros(n_train, bool)  # [n_train] fixed by the world's seed
        held_out[np.random.default_rng(config.game.seed).permutation(n_train)[: round(n_train * fraction)]] = True
        self.held_out = held_out

    def reset_listener(self, state: TrainState, key: jax.Array, hparams: Hparams) -> TrainState:
        t = self.config.train
        key_init, key_fit = jax.random.split(key)
        receiver = fresh_receiver(self, key_init)
        receiver_opt = self.optimizer(learning_rate=hparams.receiver_lr).init(receiver)
        objects = jnp.asarray(self.world.train_objects)
        held_out = None
        fit_probs = state.probs
        if self.held_out.any():
            fit_probs = jnp.where(self.held_out, 0.0, state.probs)
            fit_probs = fit_probs / jnp.sum(fit_probs)
            held_out = games.EnvParams(objects=objects, probs=jnp.asarray(self.held_out / self.held_out.sum(), jnp.float32))
        fit = fit_listener(self, state.sender, receiver, receiver_opt, games.EnvParams(objects=objects, probs=fit_probs),
                           key_fit, hparams, t.listener_max_steps, t.listener_window, t.listener_tolerance, held_out)
        return state.replace(receiver=fit.receiver, receiver_opt=fit.receiver_opt)

    def train_block(self, state: TrainState, key: jax.Array, index: jax.Array, hparams: Hparams) -> TrainState:
        t = self.config.train
        # step numbers from the unbatched block index, so under vmap over seeds lax.cond stays a
        # branch taken once every reset_every steps rather than a select that runs it every step
        steps = index * t.eval_every + jnp.arange(t.eval_every)

        def step(state, xs):
            key, step = xs
            key_reset, key_step = jax.random.split(key)
            due = (step > 0) & (step % t.reset_every == 0)
            state = jax.lax.cond(due, lambda s: self.reset_listener(s, key_reset, hparams), lambda s: s, state)
            return self.train_step(state, key_step, hparams)[0], None

        return jax.lax.scan(step, state, (jax.random.split(key, t.eval_every), steps))[0]


class PopulationTrainer(Trainer):
    """One speaker, `n_listeners` listeners `[n_listeners, ...]`; a random member plays each step."""

    def init(self, key: jax.Array, hparams: Hparams) -> TrainState:
        state = super().init(key, hparams)
        keys = jax.random.split(jax.random.fold_in(key, 1), self.config.train.n_listeners)
        receivers = jax.vmap(lambda k: fresh_receiver(self, k))(keys)
        receiver_opts = jax.vmap(self.optimizer(learning_rate=hparams.receiver_lr).init)(receivers)
        return state.replace(receiver=receivers, receiver_opt=receiver_opts)

    def train_step(self, state: TrainState, key: jax.Array, hparams: Hparams, weights: jax.Array | None = None):
        key_pick, key_step = jax.random.split(key)
        member = jax.random.randint(key_pick, (), 0, self.config.train.n_listeners)

        def take(tree):
            return jax.tree.map(lambda x: x[member], tree)

        def put(tree, new):
            return jax.tree.map(lambda x, y: x.at[member].set(y), tree, new)

        pair = state.replace(receiver=take(state.receiver), receiver_opt=take(state.receiver_opt))
        pair, aux = super().train_step(pair, key_step, hparams, weights)
        return pair.replace(receiver=put(state.receiver, pair.receiver), receiver_opt=put(state.receiver_opt, pair.receiver_opt)), aux

    def evaluate(self, state: TrainState, key: jax.Array, hparams: Hparams):
        """Every metric averaged over the listeners (the speaker's own measures are the same for all)."""
        per_listener = jax.vmap(lambda receiver: Trainer.evaluate(self, state.replace(receiver=receiver), key, hparams))(state.receiver)
        return jax.tree.map(lambda v: jnp.mean(v, axis=0), per_listener)


class IdealTrainer(Trainer):
    """The speaker learns from its ideal listener: REINFORCE reward log pihat(x|m)."""

    def ideal_log_pihat(self, sender_params, targets: jax.Array, symbols: jax.Array, log_prob: jax.Array, key: jax.Array) -> jax.Array:
        """log pihat(x_b|m_b) `[B]` over the train objects, prior = the world's train distribution.

        With `ideal_size` 0 or at least the train split, exact: every message is teacher-forced
        under every train object. Otherwise an approximation: the normaliser
        pi(m_b) = p(x_b) pi(m_b|x_b) + sum_{j != b} p_j pi(m_b|x_j) keeps its first term exactly and
        estimates the rest with `ideal_size` objects drawn from p (unbiased for pi(m_b), so
        log pihat is slightly overestimated, and never above 0).
        """
        objects = jnp.asarray(self.world.train_objects)  # [n, K]
        n, size = objects.shape[0], self.config.train.ideal_size
        log_p = jnp.log(jnp.asarray(self.world.train_probs, jnp.float32))  # [n]
        sender = self.sender(jax.lax.stop_gradient(sender_params))
        same = jnp.all(targets[:, None, :] == objects[None], axis=-1)  # [B, n] target b is train object j
        if size == 0 or size >= n:
            log_joint = log_p + message_log_probs(sender, objects, symbols)  # [B, n] log p(x_j) pi(m_b|x_j)
            return jax.nn.logsumexp(jnp.where(same, log_joint, -jnp.inf), axis=1) - jax.nn.logsumexp(log_joint, axis=1)
        reference = jax.random.choice(key, n, (size,), p=jnp.exp(log_p))  # [S] drawn from the prior
        log_pi = message_log_probs(sender, objects[reference], symbols)  # [B, S]
        other = ~same[:, reference]
        log_mean_other = jax.nn.logsumexp(jnp.where(other, log_pi, -jnp.inf), axis=1) - jnp.log(jnp.maximum(other.sum(1), 1))
        log_p_target = jax.nn.logsumexp(jnp.where(same, log_p, -jnp.inf), axis=1)  # [B]
        log_own = log_p_target + log_prob
        log_rest = jnp.log1p(-jnp.exp(log_p_target)) + log_mean_other
        return log_own - jnp.logaddexp(log_own, log_rest)

    def loss(self, params, batch: games.EnvState, weights: jax.Array, baseline: jax.Array, key, hparams: Hparams):
        """The listener minimises the game loss; the speaker maximises its ideal listener's log-posterior."""
        sender_params, receiver_params = params
        key_play, key_reference = jax.random.split(key)
        episode = self.play(sender_params, receiver_params, batch, key_play, hparams, "sample")
        reward = jax.lax.stop_gradient(self.ideal_log_pihat(sender_params, batch.target, episode.message.symbols,
                                                            episode.message.log_prob, key_reference))
        game_loss = -jnp.sum(weights * episode.log_rho)
        advantage = reward - baseline
        sender_loss = -jnp.sum(weights * (advantage * episode.message.log_prob + hparams.entropy_coeff * episode.message.entropy))
        aux = dict(loss=game_loss, reward=jnp.sum(weights * reward), accuracy=jnp.mean(episode.correct),
                   entropy=jnp.mean(episode.message.entropy))
        return game_loss + sender_loss, aux


TRAINERS = {"reset": ResetTrainer, "population": PopulationTrainer, "ideal": IdealTrainer}
