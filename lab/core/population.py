"""The agent population: P senders x Q receivers as stacked pytrees `[P, ...]`, `[Q, ...]`, and who plays whom.

Each step every sender plays one receiver (P pairs, each on its own batch) chosen by the pairing rule:

* `random`: a receiver drawn uniformly for each sender;
* `fixed`: sender i with receiver i mod Q;
* `round_robin`: sender i with receiver (i + step) mod Q.

Only the agents that played learn (their parameters and optimizer state change; the others' do
not). A receiver that plays several senders in one step learns from the sum of their losses.
Today's population control (one sender, four listeners) is `n_receivers=4`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from games.fields import doc

PAIRINGS = ("random", "fixed", "round_robin")


@dataclass(frozen=True)
class PopulationConfig:
    n_senders: int = doc("senders in the population (each plays one receiver per step)", 1, low=1)
    n_receivers: int = doc("receivers in the population", 1, low=1)
    pairing: str = doc("who plays whom each step: random (a receiver drawn per sender), fixed (sender i with receiver "
                       "i mod n_receivers), round_robin (sender i with receiver (i + step) mod n_receivers)",
                       "random", choices=PAIRINGS)

    @property
    def size(self) -> int:
        return self.n_senders * self.n_receivers


class Pairs(NamedTuple):
    senders: jax.Array  # [P] int, sender of each pair (every sender plays once)
    receivers: jax.Array  # [P] int, its receiver


def pair(config: PopulationConfig, key: jax.Array, step: jax.Array) -> Pairs:
    """This step's pairs under `config.pairing`."""
    P, Q = config.n_senders, config.n_receivers
    senders = jnp.arange(P)
    if config.pairing == "random":
        receivers = jax.random.randint(key, (P,), 0, Q)
    elif config.pairing == "fixed":
        receivers = senders % Q
    else:
        receivers = (senders + step) % Q
    return Pairs(senders, receivers)


def played(agents: jax.Array, n: int) -> jax.Array:
    """`[n]` bool: which of n agents appear in `agents [pairs]`."""
    return jnp.any(agents[:, None] == jnp.arange(n)[None, :], axis=0)


def take(tree, index):
    """Member `index` of a stacked pytree (a static 0 when the population has one member)."""
    return jax.tree.map(lambda leaf: leaf[index], tree)


def stack(trees: list):
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)
