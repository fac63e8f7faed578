"""The speaker estimator slot: how the sender speaks while learning, and the surrogate loss of a batch.

Game loss (Rita et al. 2022): L = -E_{x~p, m~pi(.|x)} log rho(x|m). Every estimator returns the
surrogate `receiver loss + sender loss` of one batch, with per-example weights w (mean 1, from the
objective slot) on both; its gradient is the receiver's cross-entropy gradient and the sender's
estimate of -grad L:

* REINFORCE (Williams 1992): reward r = R(x, m) - length_cost * |m|, with R = log rho(x|m) by
  default (or another reward: the ideal listener's log pihat(x|m), lab.controls), advantage
  r - b with b a running mean of the *unweighted* reward, plus an entropy bonus:
      sender loss = -mean_b w_b [(r_b - b) log pi(m_b|x_b) + entropy_coeff * H_b]
* Gumbel-softmax straight-through (Jang et al. 2017; EGG's variable-length loss): the gradient of
  L flows through relaxed symbols; temperature_t = max(temperature_min, temperature *
  temperature_decay^t) (EGG's TemperatureUpdater, per step); the length cost is on the expected
  length sum_t P(ends at t) (t + 1).

An estimator (lab.core.components.Estimator) is a named tuple of pure functions over its own
state (the baseline), like the other slots; `hp` is the `train` section's continuous fields. Its
reward reads the rollout and a `Context` holding the batch and the states of the components
the reward names in `Reward.reads` (the EMA anchor of lab.merging.rewards), nothing more.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from games.messages import end_weights, message_length
from lab.core.agents import Message, Sender
from lab.core.components import Estimator
from lab.core.rollout import Rollout

sg = jax.lax.stop_gradient


class Context(NamedTuple):
    """What a reward may read besides the rollout: the batch, and the states of the components it declares."""

    sender: Sender  # the sender that spoke
    targets: jax.Array  # [B, ...] what the sender saw
    ids: jax.Array  # [B] index of each target among the train objects
    step: jax.Array  # [] steps taken so far
    key: jax.Array  # randomness a reward may use
    hparams: dict = {}  # every section's continuous hyperparameters, for a reward with its own (lab.merging.rewards)
    components: dict = {}  # {name: state} of the components the reward reads (`Reward.reads`), before this step


class Reward(NamedTuple):
    """R(x, m) `[B]` of a batch, `score(rollout, context)`; `reads` names the component states it reads.

    A plain function `(rollout, context) -> [B]` is a reward too, one that reads no component's state.
    """

    score: Callable[[Rollout, Context], jax.Array]
    reads: tuple[str, ...] = ()

    def __call__(self, rollout: Rollout, context: Context) -> jax.Array:
        return self.score(rollout, context)


def reads(reward) -> tuple[str, ...]:
    """The component states `reward` reads (none for a plain function)."""
    return getattr(reward, "reads", ())


def listener_reward(rollout: Rollout, context: Context) -> jax.Array:
    """R(x, m) = log rho(x|m): the log-likelihood reward of the game loss."""
    return rollout.log_rho


def reinforce_surrogate(advantage: jax.Array, log_prob: jax.Array, entropy: jax.Array, weights: jax.Array,
                        entropy_coeff: jax.Array) -> jax.Array:
    """-mean_b w_b [A_b log pi(m_b|x_b) + entropy_coeff H_b]: its gradient is the REINFORCE estimate of -grad E[r]."""
    return -jnp.mean(weights * (sg(advantage) * log_prob + entropy_coeff * entropy))


def reinforce(reward: Reward = listener_reward, baseline_decay: float = 0.99) -> Estimator:
    """REINFORCE with a bias-corrected running-mean baseline of the unweighted reward."""

    def baseline(state) -> jax.Array:
        mean, count = state
        return jnp.where(count > 0, mean / jnp.maximum(1.0 - baseline_decay ** count.astype(jnp.float32), 1e-8), 0.0)

    def loss(state, ro: Rollout, weights, context: Context, hp):
        r = sg(reward(ro, context)) - hp["length_cost"] * message_length(ro.message.symbols)
        receiver_loss = -jnp.mean(weights * ro.log_rho)  # sampled symbols carry no gradient: this reaches the receiver only
        sender_loss = reinforce_surrogate(r - baseline(state), ro.message.log_prob, ro.message.entropy, weights, hp["entropy_coeff"])
        return receiver_loss + sender_loss, {"reward": jnp.mean(r)}

    def update(state, aux, hp):
        mean, count = state
        return baseline_decay * mean + (1.0 - baseline_decay) * aux["reward"], count + 1

    return Estimator(
        init=lambda key: (jnp.zeros(()), jnp.zeros((), jnp.int32)),
        speak=lambda state, sender, targets, key, step, hp: sender.sample(targets, key),
        loss=loss,
        update=update,
        summary=lambda state, hp: {"baseline": baseline(state)},
        reads=reads(reward),
    )


def temperature(step: jax.Array, hp: dict) -> jax.Array:
    """The Gumbel-softmax temperature after `step` steps: max(temperature_min, temperature * temperature_decay^step)."""
    return jnp.maximum(hp["temperature_min"], hp["temperature"] * hp["temperature_decay"] ** step.astype(jnp.float32))


def expected_length(message: Message) -> jax.Array:
    """sum_t P(message ends at t) (t + 1) `[B]`: differentiable through straight-through EOS indicators."""
    ends = end_weights(message.one_hot[..., 0])
    return ends @ jnp.arange(1, ends.shape[1] + 1, dtype=ends.dtype)


def gumbel() -> Estimator:
    """Straight-through Gumbel-softmax with a temperature schedule; no baseline."""

    def loss(state, ro: Rollout, weights, context, hp):
        total = -jnp.mean(weights * ro.log_rho) + hp["length_cost"] * jnp.mean(weights * expected_length(ro.message))
        return total, {"reward": jnp.mean(ro.log_rho), "temperature": temperature(context.step, hp)}

    return Estimator(
        init=lambda key: (),
        speak=lambda state, sender, targets, key, step, hp: sender.gumbel(targets, key, temperature(step, hp)),
        loss=loss,
        update=lambda state, aux, hp: state,
    )

