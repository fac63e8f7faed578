"""Per-example curriculum weights and their batch mean: the knob that makes a curriculum an Adam schedule.

Adam's step is lr * m_hat / (sqrt(v_hat) + eps): a constant rescaling of the loss leaves it
unchanged, a time-varying one does not (../shared/science/algorithms.md B1). A curriculum whose
weights do not average to 1 therefore doubles as a learning-rate schedule. The lab normalises
weights to mean 1 per batch; `drift` keeps part of their raw mean, as the papers' naive
implementations do:

    w_b <- w_b / mean(w)^(1 - drift)          drift = 0: mean 1; drift = 1: the raw weights
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def normalise(weights: jax.Array, drift) -> jax.Array:
    """`weights [B]` divided by their batch mean to the power 1 - drift (mean 1 at drift 0)."""
    mean = jnp.maximum(jnp.mean(weights), 1e-12)
    return weights / mean ** (1.0 - drift)
