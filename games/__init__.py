"""Lewis signaling games, pure JAX: object spaces, splits, input distributions, message conventions, games.

Each game kind is one module (reconstruction, discrimination, features) owning its world,
episodes, reading, reward, difficulty axes and rendering; `games.registry` maps `game.kind` to it.

The gymnasium adapters live in `games.gym` (importing it registers `games/LewisReconstruction-v0`
and `games/LewisDiscrimination-v0`); this package itself needs only JAX and numpy.

Randomness: the lab draws with JAX's threefry keys in their non-partitionable form, which `lab.setup()`
chooses (importing a package of the lab changes no setting of JAX): the same seed gives the same numbers
after it.
"""

from games import difficulty, languages, messages
from games.config import GameConfig
from games.discrimination import LewisDiscrimination
from games.distributions import DISTRIBUTIONS
from games.features import FeatureDiscrimination
from games.fields import ConfigError, doc
from games.lewis import Action, EnvParams, EnvState, LewisGame, Observation, Outcome
from games.messages import message_length, truncate_at_eos
from games.objects import all_objects, object_set, sample_objects
from games.reconstruction import LewisReconstruction, reconstruction_episodes
from games.registry import GAMES, game_class, game_of, make_game, world_of
from games.splits import SPLIT_KINDS, compositional_split, iid_split
from games.world import World, make_world

__all__ = [
    "GAMES", "SPLIT_KINDS", "DISTRIBUTIONS", "Action", "EnvParams", "EnvState", "Observation", "Outcome", "GameConfig",
    "ConfigError", "doc", "difficulty", "LewisGame", "LewisReconstruction", "LewisDiscrimination", "FeatureDiscrimination",
    "game_class", "game_of", "make_game", "reconstruction_episodes", "languages", "messages", "message_length", "truncate_at_eos",
    "all_objects", "object_set", "sample_objects", "compositional_split", "iid_split", "World", "make_world", "world_of",
]
