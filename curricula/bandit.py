"""A learning-progress bandit (Graves et al. 2017): Exp3.S over the difficulty buckets, rewarded by prediction gain.

Each step the sampler plays one arm (a bucket of the axis's units) drawn from

    pi_t(k) = (1 - eps) softmax(w_t)_k + eps / N,

and is rewarded by the prediction gain nu = L(x; theta) - L(x; theta'), the loss of the batch just
played before and after the optimizer step on it. The gain is rescaled to [-1, 1] by the 20th and
80th percentiles of the recent gains, importance-weighted (r~_k = r 1[k = a] / pi(a)), and the
weights updated with Exp3.S's mixing, which lets the bandit track rewards that change:

    w_{t+1,i} = log[(1 - alpha) exp(w_i + eta r~_i) + alpha / (N - 1) sum_{j != i} exp(w_j + eta r~_j)].

The loss after the step needs the agents, which the sampler does not see: a component that does
(lab.curriculum.prediction_gain, an intervention) evaluates the last batch `last_batch(state)`
with the updated agents before the next step and hands the loss to `observe`; the next `update`
learns from it. Without it the bandit never learns and plays uniformly random arms.

hp: step_size (eta), explore (eps), mix (alpha).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from curricula.base import Sampler, Stats, distribution_entropy
from curricula.pacing import total_variation
from games.difficulty import Axis, buckets


def policy(log_weights: jax.Array, explore) -> jax.Array:
    """pi(k) = (1 - eps) softmax(w)_k + eps / N: sums to 1, every arm at least eps / N."""
    n = log_weights.shape[-1]
    return (1.0 - explore) * jax.nn.softmax(log_weights) + explore / n


def rescale(gain: jax.Array, history: jax.Array) -> jax.Array:
    """The gain mapped to [-1, 1] by the 20th / 80th percentiles of `history` (NaN: empty slots)."""
    low, high = jnp.nanquantile(history, 0.2), jnp.nanquantile(history, 0.8)
    scaled = 2.0 * (gain - low) / jnp.maximum(high - low, 1e-12) - 1.0
    return jnp.where(high > low, jnp.clip(scaled, -1.0, 1.0), 0.0)


def exp3s_update(log_weights: jax.Array, arm: jax.Array, reward: jax.Array, prob: jax.Array, step_size, mix) -> jax.Array:
    """Exp3.S: the importance-weighted reward on the arm played, then a share `mix` of the mass spread over the others."""
    n = log_weights.shape[-1]
    raised = log_weights + step_size * reward / prob * jax.nn.one_hot(arm, n)
    others = jnp.where(jnp.eye(n, dtype=bool), -jnp.inf, raised[None, :])  # [N, N]: row i without arm i
    mixed = jnp.logaddexp(jnp.log1p(-mix) + raised, jnp.log(mix / (n - 1)) + jax.nn.logsumexp(others, axis=-1))
    return mixed - jnp.max(mixed)  # softmax is shift-invariant: keep the weights bounded


def bandit(axis: Axis, n_buckets: int, n_examples: int, history: int = 200) -> Sampler:
    """Exp3.S over the buckets of `axis`; `n_examples` = the ids of one step (pairs x batch), kept for `observe`."""
    arm_distributions = arm_units(axis, n_buckets)  # [N, n_units]
    n_arms = arm_distributions.shape[0]

    def draw(state, hp):
        key, key_arm = jax.random.split(jax.random.wrap_key_data(state["key"]))
        probs = policy(state["log_weights"], hp["explore"])
        arm = jax.random.choice(key_arm, n_arms, p=probs)
        return {**state, "key": jax.random.key_data(key), "arm": arm, "arm_prob": probs[arm]}

    def init(key):
        zero = jnp.zeros((), jnp.float32)
        state = {"log_weights": jnp.zeros(n_arms), "key": jax.random.key_data(key), "arm": jnp.zeros((), jnp.int32), "arm_prob": zero,
                 "played": jnp.zeros((), jnp.int32), "played_prob": zero, "ids": jnp.zeros(n_examples, jnp.int32),
                 "loss": zero, "count": jnp.zeros((), jnp.int32), "gain": zero, "pending": jnp.zeros((), bool),
                 "history": jnp.full(history, jnp.nan), "reward": zero, "shift": zero}
        # the first arm uniformly (explore's value is unknown before the first hp arrives)
        return draw(state, {"explore": jnp.ones(())})

    def env(state, base, step, hp):
        return axis.env(base, arm_distributions[state["arm"]])

    def learn(state, hp):
        """Apply the pending gain (of the arm played last step) to the weights."""
        slot = state["count"] % history
        history_ = state["history"].at[slot].set(state["gain"])
        reward = rescale(state["gain"], history_)
        log_weights = exp3s_update(state["log_weights"], state["played"], reward, state["played_prob"], hp["step_size"], hp["mix"])
        learned = {**state, "log_weights": log_weights, "history": history_, "reward": reward, "pending": jnp.zeros((), bool)}
        return jax.tree.map(lambda a, b: jnp.where(state["pending"], a, b), learned, state)

    def update(state, stats: Stats, hp):
        state = learn(state, hp)
        shift = jnp.where(state["count"] > 0, total_variation(arm_distributions[state["arm"]],
                                                              arm_distributions[state["played"]]), 0.0)
        state = {**state, "played": state["arm"], "played_prob": state["arm_prob"], "ids": stats.ids.astype(jnp.int32),
                 "loss": jnp.mean(stats.loss), "count": state["count"] + 1, "shift": shift}
        return draw(state, hp)

    def summary(state, hp):
        probs = policy(state["log_weights"], hp["explore"])
        out = {"bandit_entropy": distribution_entropy(probs), "bandit_arm": state["played"].astype(jnp.float32),
               "bandit_gain": state["gain"], "bandit_reward": state["reward"], "curriculum_shift": state["shift"]}
        return out | {f"bandit_p{k}": probs[k] for k in range(n_arms)}

    return Sampler(init=init, env=env, update=update, summary=summary)


def last_batch(state) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(ids [n_examples] of the batch last played, the arm it was drawn from, whether there is one yet)."""
    return state["ids"], state["played"], state["count"] > 0


def observe(state, loss_after: jax.Array):
    """Hand the bandit the loss of its last batch after the optimizer step; the next `update` learns from the gain."""
    played = state["count"] > 0
    return {**state, "gain": jnp.where(played, state["loss"] - loss_after, 0.0), "pending": played}


def arm_units(axis: Axis, n_buckets: int) -> jax.Array:
    """`[N, n_units]` the distribution over units each arm plays: its bucket's units, by their prior."""
    arms = jnp.asarray(buckets(axis.scores, axis.prior, n_buckets))
    members = jax.nn.one_hot(arms, int(arms.max()) + 1).T * jnp.asarray(axis.prior, jnp.float32)
    return members / jnp.sum(members, axis=1, keepdims=True)
