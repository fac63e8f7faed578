"""Lewis signaling games: object spaces, splits, input distributions, pure-JAX games."""

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
    message_length,
    truncate_at_eos,
)
from games.objects import all_objects, object_set, sample_objects
from games.splits import SPLITS, compositional_split, iid_split
from games.distributions import DISTRIBUTIONS
from games.world import World, make_world
from games.gym import LewisEnv, LewisVectorEnv  # registers games/LewisReconstruction-v0, games/LewisDiscrimination-v0

__all__ = [
    "GAMES", "SPLITS", "DISTRIBUTIONS", "Action", "EnvParams", "EnvState", "Observation",
    "LewisGame", "LewisReconstruction", "LewisDiscrimination", "make_game", "message_length",
    "truncate_at_eos", "all_objects", "object_set", "sample_objects", "compositional_split",
    "iid_split", "World", "make_world", "LewisEnv", "LewisVectorEnv",
]
