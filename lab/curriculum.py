"""The `curriculum` section as components: its sampler, and the interventions that feed a scheduler what needs the agents.

curricula/ sees only per-example statistics (it may not import lab). Two schedulers learn from
quantities that need the agents themselves; an intervention, which receives the whole training
state before each optimizer step, measures them and hands them to the sampler's state through
the scheduler's own functions, and the sampler's next `update` learns from them with its own
hyperparameters (interventions are handed only the `interventions` section's):

* bandit (Exp3.S, Graves et al. 2017): `prediction_gain` evaluates the batch last played with the
  agents the optimizer step on it produced; the gain is its loss before minus after
  (`curricula.bandit.observe`). In a population, pair p is re-evaluated with receiver p mod Q
  (the pair it played under fixed pairing).
* commentary (Raghu et al. 2021): `meta_step`, every `meta_every` steps, differentiates a held-out
  batch's loss through `meta_steps` weighted training steps with respect to the weighting
  network (`curricula.commentary.record`).

The inner steps are the trainer's step with Adam's normaliser frozen: theta <- theta - lr * g /
(sqrt(v_hat) + eps), lr, v_hat and eps each agent's own (a rising weight scale then raises the
step the way it raises Adam's before v_hat catches up). Their loss is the weighted REINFORCE
surrogate of the game loss, -log rho for the receiver and sg(l - mean l) log pi for the sender,
without the entropy bonus and the length cost; the held-out batch is fresh games from the
world's train distribution, unweighted.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import curricula
from curricula.base import Sampler
from games.difficulty import make_axis
from lab.core.components import Intervention, every
from lab.core.population import take
from lab.core.rollout import rollout
from lab.core.spec import Spec

sg = jax.lax.stop_gradient


def components(spec: Spec) -> tuple[Sampler, dict[str, Intervention]]:
    """The sampler `spec.config.curriculum` describes and the interventions it needs, by name (none for most)."""
    c = spec.config
    sampler = curricula.make_sampler(c.curriculum, spec.world, spec.game, c.game, c.train.steps,
                                     c.population.n_senders * c.train.batch_size)
    measuring = {"bandit": {"prediction_gain": prediction_gain}, "commentary": {"meta_step": meta_step}}.get(c.curriculum.kind, {})
    return sampler, {name: make(spec) for name, make in measuring.items()}


def game_losses(spec: Spec, sender_params, receiver_params, env, ids: jax.Array, key: jax.Array):
    """(-log rho(x|m) [B], log pi(m|x) [B]) of fresh episodes on the targets `ids`, messages sampled from the sender."""
    key_episodes, key_speak = jax.random.split(key)
    episodes = spec.game.episodes(key_episodes, env, ids)
    message = spec.agents.sender(sender_params).sample(episodes.target, key_speak)
    return -rollout(spec.agents.receiver(receiver_params), episodes, message, spec.game).log_rho, message.log_prob


def prediction_gain(spec: Spec) -> Intervention:
    """Before each step: the loss of the bandit's last batch under the agents its step produced."""
    c = spec.config
    cur, P, Q = c.curriculum, c.population.n_senders, c.population.n_receivers
    axis = make_axis(cur.axis_of(c.game), spec.world, c.game)
    arm_units = curricula.bandit.arm_units(axis, cur.buckets)  # [arms, n_units]

    def update(own, state, key, step, hp):
        ids, arm, _ = curricula.bandit.last_batch(state.components["sampler"])
        env = axis.env(spec.train_env, arm_units[arm])

        def pair_loss(p, ids, key):
            loss, _ = game_losses(spec, take(state.senders, p), take(state.receivers, p % Q), env, ids, key)
            return jnp.mean(loss)

        losses = jax.vmap(pair_loss)(jnp.arange(P), ids.reshape(P, -1), jax.random.split(key, P))
        return own, state.with_components(sampler=curricula.bandit.observe(state.components["sampler"], jnp.mean(losses)))

    return Intervention(init=lambda key, state: (), update=update)


def frozen_adam_rates(opt_state):
    """Per-parameter step sizes lr / (sqrt(v_hat) + eps) of one agent's Adam state (lr alone before its first step)."""
    adam, hyper = opt_state.inner_state[0], opt_state.hyperparams
    correction = 1.0 - hyper["b2"] ** adam.count.astype(jnp.float32)
    lr = hyper["learning_rate"]
    return jax.tree.map(lambda v: jnp.where(adam.count > 0, lr / (jnp.sqrt(v / jnp.maximum(correction, 1e-12)) + hyper["eps"]), lr),
                        adam.nu)


def surrogate(spec: Spec, params, ids: jax.Array, weights: jax.Array, key: jax.Array) -> jax.Array:
    """mean_b w_b [l_b + sg(l_b - mean l) log pi(m_b|x_b)]: its gradient is the weighted game loss's (REINFORCE)."""
    loss, log_pi = game_losses(spec, *params, spec.train_env, ids, key)
    return jnp.mean(weights * (loss + sg(loss - jnp.mean(loss)) * log_pi))


def meta_step(spec: Spec) -> Intervention:
    """Every `meta_every` steps: the commentary's meta-gradient, through `meta_steps` inner steps, averaged over pairs."""
    c = spec.config
    cur, P, Q = c.curriculum, c.population.n_senders, c.population.n_receivers
    x_all = spec.game.features(jnp.asarray(spec.world.train_objects))

    def held_out_loss(phi, params, rates, key, progress, drift, shuffle):
        keys = jax.random.split(key, cur.meta_steps + 1)
        for i in range(cur.meta_steps):
            key_ids, key_play, key_shuffle = jax.random.split(keys[i], 3)
            ids = spec.game.sample_ids(key_ids, spec.train_env, cur.meta_batch)
            w = curricula.commentary.weights_of(phi, x_all[ids], progress, drift, shuffle, key_shuffle)
            grads = jax.grad(lambda theta: surrogate(spec, theta, ids, w, key_play))(params)
            params = jax.tree.map(lambda theta, g, rate: theta - rate * g, params, grads, rates)
        key_ids, key_play = jax.random.split(keys[-1])
        ids = spec.game.sample_ids(key_ids, spec.train_env, cur.meta_batch)
        return surrogate(spec, params, ids, jnp.ones(cur.meta_batch), key_play)

    def update(own, state, key, step, hp):
        sampler = state.components["sampler"]
        phi = curricula.commentary.parameters(sampler)
        drift, shuffle = curricula.commentary.cached_knobs(sampler)
        progress = step / c.train.steps

        def pair_gradient(p, key):
            params = (take(state.senders, p), take(state.receivers, p % Q))
            rates = (frozen_adam_rates(take(state.sender_opt, p)), frozen_adam_rates(take(state.receiver_opt, p % Q)))
            return jax.grad(held_out_loss)(phi, params, rates, key, progress, drift, shuffle)

        grads = jax.vmap(pair_gradient)(jnp.arange(P), jax.random.split(key, P))
        grad = jax.tree.map(lambda g: jnp.mean(g, axis=0), grads)
        return own, state.with_components(sampler=curricula.commentary.record(sampler, grad))

    return Intervention(init=lambda key, state: (), update=every(cur.meta_every, update))
