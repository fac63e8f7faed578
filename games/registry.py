"""The game kinds by name: `game.kind` -> the class of the module that owns the kind.

A new game is one module with one `LewisGame` subclass and one line here; nothing else in the
lab asks which kind a game is (the game's class answers: its world, its episodes, how the
receiver's output is read, its reward, its difficulty axes, its rendering).
"""

from __future__ import annotations

from games.discrimination import LewisDiscrimination
from games.features import FeatureDiscrimination
from games.lewis import LewisGame
from games.reconstruction import LewisReconstruction
from games.world import World

GAMES: dict[str, type[LewisGame]] = {
    "reconstruction": LewisReconstruction,
    "discrimination": LewisDiscrimination,
    "features": FeatureDiscrimination,
}


def game_class(kind: str) -> type[LewisGame]:
    if kind not in GAMES:
        raise ValueError(f"unknown game {kind!r}; allowed: {', '.join(GAMES)}")
    return GAMES[kind]


def world_of(config) -> World:
    """The world a `GameConfig` describes (its kind makes it)."""
    return game_class(config.kind).world(config)


def game_of(config, world: World, vocab_size: int, max_len: int) -> LewisGame:
    """The game a `GameConfig` describes, played in `world` with messages of `max_len` symbols from `vocab_size`."""
    return game_class(config.kind).from_config(config, world, vocab_size, max_len)


def make_game(kind: str, n_attributes: int, n_values: int, vocab_size: int, max_len: int, n_distractors: int = 4,
              hard_negatives: bool = False) -> LewisGame:
    """A game over attribute-value objects from its sizes (the gymnasium adapters, tests)."""
    from games.config import GameConfig  # the config section reads the registry for its kinds

    if not game_class(kind).OBJECTS:
        raise ValueError(f"the {kind} game is played over given referents, not sizes: games.game_of(config, world, ...)")
    config = GameConfig(kind=kind, n_attributes=n_attributes, n_values=n_values, n_distractors=n_distractors,
                        hard_negatives=hard_negatives)
    return game_class(kind).from_config(config, None, vocab_size, max_len)
