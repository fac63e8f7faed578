"""Co-adaptation controls (Rita et al. 2022, arXiv 2209.15342), expressed with the trainer's components.

The game loss splits into L_info + L_adapt; these controls act on the second term
(../shared/science/lewis.md §2):

* the listener reset (`interventions.reset`): the `reset_receivers` intervention, the control of
  the authors' code;
* the ideal listener's reward (`train.reward=ideal`): the speaker's REINFORCE reward is log pihat(x|m),
  the log-posterior of its ideal listener over the train objects under the world's train
  distribution, instead of log rho(x|m). It optimises the *empirical* L_info, which any injective
  code on the train objects minimises: no control of co-adaptation but a demonstration of
  information overfitting. The actual listener still learns, so its loss and L_adapt stay measurable;
* a population of listeners is no control of its own: `population.n_receivers=4` (each step the
  sender plays a random receiver, and only that one learns: each listener learns 4 times slower
  than the speaker, which `train.receiver_p_step=0.25` gives a single listener too).

Each composes with a population, a curriculum and an objective.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lab.core.estimators import Context, Reward, listener_reward
from lab.core.ideal import ideal_log_pihat
from lab.core.rollout import Rollout
from lab.core.spec import Spec
from lab.interventions import reset_receivers


def ideal_reward(spec: Spec) -> Reward:
    """R(x, m) = log pihat(x|m) over the train objects (`train.ideal_size` of them sampled, or all: exact)."""
    objects = jnp.asarray(spec.world.train_objects)
    log_prior = jnp.log(jnp.asarray(spec.world.train_probs, jnp.float32))
    size = spec.config.train.ideal_size

    def reward(ro: Rollout, context: Context) -> jax.Array:
        return ideal_log_pihat(context.sender, objects, log_prior, context.ids, ro.message.symbols, ro.message.log_prob,
                               context.key, size)

    return reward


def reward(spec: Spec) -> Reward:
    """The sender's REINFORCE reward under `train.reward`."""
    return ideal_reward(spec) if spec.config.train.reward == "ideal" else listener_reward


def interventions(spec: Spec) -> dict:
    """The interventions the `interventions` section switches on, by name."""
    return {"reset": reset_receivers(spec)} if spec.config.interventions.reset else {}
