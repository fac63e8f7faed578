"""Lewis signaling games, pure JAX: object spaces, splits, input distributions, message conventions, games.

The gymnasium adapters live in `games.gym` (importing it registers `games/LewisReconstruction-v0`
and `games/LewisDiscrimination-v0`); this package itself needs only JAX and numpy.

Randomness: the lab draws with JAX's threefry keys in their non-partitionable form
(`jax_threefry_partitionable=False`, set here, for every package of the lab): under vmap over a
population of keys the partitionable form runs 30x slower on a CPU, and a population of runs is
what the lab trains. Set once, before any draw, so the same seed gives the same numbers.
"""

import jax

jax.config.update("jax_threefry_partitionable", False)

from games import difficulty, languages, messages
from games.config import GameConfig
from games.distributions import DISTRIBUTIONS
from games.fields import ConfigError, doc
from games.lewis import (
    GAMES,
    Action,
    EnvParams,
    EnvState,
    LewisDiscrimination,
    LewisGame,
    LewisReconstruction,
    Observation,
    make_game,
    reconstruction_episodes,
)
from games.messages import message_length, truncate_at_eos
from games.objects import all_objects, object_set, sample_objects
from games.splits import SPLITS, compositional_split, iid_split
from games.world import World, make_world, world_of

__all__ = [
    "GAMES", "SPLITS", "DISTRIBUTIONS", "Action", "EnvParams", "EnvState", "Observation", "GameConfig", "ConfigError", "doc", "difficulty",
    "LewisGame", "LewisReconstruction", "LewisDiscrimination", "make_game", "reconstruction_episodes", "languages", "messages", "message_length",
    "truncate_at_eos", "all_objects", "object_set", "sample_objects", "compositional_split",
    "iid_split", "World", "make_world", "world_of",
]
