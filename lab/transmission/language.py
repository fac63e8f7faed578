"""What a transmitted language is like: its structure, how easily it is taught, and which kind it is.

* structure of the greedy messages over a set of objects: topsim, posdis, bosdis (lab.core.metrics),
  and `distinct`, the number of distinct messages over the number of objects;
* `teach`: a fresh listener learns the frozen sender's language on the train objects for a fixed
  number of steps (Li & Bowling 2019's ease of teaching); its mean accuracy over those steps is the
  *ease of teaching* (the area under its learning curve), its final accuracy on the train objects
  the language's *expressivity* (what a listener can tell apart), on held-out objects its *hold-out
  accuracy* (does the language generalize to objects no one was taught);
* `kind_of`: degenerate (too few distinct messages), compositional (unambiguous enough and
  topographic), or holistic (unambiguous enough, not topographic), the three types of Kirby et al.
  2015's languages, with thresholds as fields (`iterated.distinct_min`, `iterated.topsim_min`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import games
from lab.core import metrics
from lab.core.agents import Agents, Sender
from lab.core.rollout import rollout

KINDS = ("degenerate", "holistic", "compositional")


def distinct_share(messages: jax.Array) -> jax.Array:
    """Scalar: distinct messages among the rows of `messages [n, T]`, over n (1: an unambiguous language; 1/n: one
    message for everything)."""
    messages = games.truncate_at_eos(messages)
    same = jnp.all(messages[:, None] == messages[None, :], axis=-1)  # [n, n]
    return jnp.sum(1.0 / jnp.sum(same, axis=1)) / messages.shape[0]  # each message counted once over its rows


def structure(sender: Sender, objects: jax.Array, n_values: int) -> dict[str, jax.Array]:
    """topsim, posdis, bosdis and the distinct share of the sender's greedy messages for `objects [n, K]`."""
    objects = jax.lax.optimization_barrier(objects)  # or XLA folds topsim's sorts of constant objects while compiling
    symbols = sender.greedy(objects).symbols
    posdis, bosdis = metrics.disentanglement_jax(objects, symbols, n_values, sender.vocab_size)
    return dict(topsim=metrics.topsim_jax(objects, symbols), posdis=posdis, bosdis=bosdis, distinct=distinct_share(symbols))


def teach(agents: Agents, game: games.LewisGame, sender: Sender, listener_params, train_env: games.EnvParams,
          measure: dict[str, games.EnvState], key: jax.Array, steps: int, batch_size: int, lr) -> dict[str, jax.Array]:
    """A fresh listener (`listener_params`) learns the frozen sender's sampled messages for `steps` Adam steps on targets
    drawn from `train_env`: `ease_of_teaching` (its mean batch accuracy over the steps) and, per episodes of `measure`,
    `{name}_accuracy` on the sender's greedy messages at the end (module doc)."""
    optimizer = optax.adam(lr)

    def game_loss(params, episodes, message):
        ro = rollout(agents.receiver(params), episodes, message, game)
        return -jnp.mean(ro.log_rho), jnp.mean(ro.correct)

    def step(carry, key):
        params, opt_state = carry
        key_batch, key_speak = jax.random.split(key)
        episodes = game.sample_batch(key_batch, train_env, batch_size)
        message = jax.lax.stop_gradient(sender.sample(episodes.target, key_speak))
        (_, accuracy), grads = jax.value_and_grad(game_loss, has_aux=True)(params, episodes, message)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), accuracy

    (params, _), curve = jax.lax.scan(step, (listener_params, optimizer.init(listener_params)), jax.random.split(key, steps))
    out = {"ease_of_teaching": jnp.mean(curve)}
    listener = agents.receiver(params)
    for name, episodes in measure.items():
        out[f"{name}_accuracy"] = jnp.mean(rollout(listener, episodes, sender.greedy(episodes.target), game,
                                                   unroll=False).correct)
    return out


def kind_of(distinct, topsim, distinct_min: float, topsim_min: float):
    """Index into KINDS (numpy or JAX): degenerate when `distinct < distinct_min`, else compositional when
    `topsim >= topsim_min`, else holistic."""
    xp = jnp if isinstance(distinct, jax.Array) else np
    return xp.where(distinct < distinct_min, 0, xp.where(topsim >= topsim_min, 2, 1))
