"""`Spec(config)`: what a config describes before any training: the world, the game (its kind's class,
games.registry) and the agents' definitions.

Components that need them (a listener reset refits on the train objects, the ideal reward
normalises over them) are built from the same `Spec` the trainer uses.
"""

from __future__ import annotations


import games
from lab.core.agents import Agents
from lab.core.evaluate import split_episodes


def world_game_agents(game_config, agents_config) -> tuple[games.World, games.LewisGame, Agents]:
    """The world a game section describes, the game played in it and the agents that play it."""
    world = games.world_of(game_config)
    game = games.game_of(game_config, world, agents_config.vocab_size, agents_config.max_len)
    return world, game, Agents(game, agents_config)


class Spec:
    def __init__(self, config):
        self.config = config
        self.world, self.game, self.agents = world_game_agents(config.game, config.agents)
        self.train_env = self.game.default_params(self.world.train_objects, self.world.train_probs)  # the world's train distribution

    @property
    def split_objects(self) -> dict:
        """`{split: objects [n, K]}`: train, test, and validation when the world holds one out."""
        out = {"train": self.world.train_objects, "test": self.world.test_objects}
        if len(self.world.validation):
            out["validation"] = self.world.validation_objects
        return out

    @property
    def split_attributes(self) -> dict | None:
        """`{split: [n, K] int}` the attributes of each split's referents (topsim, posdis, bosdis), or None: the world has none."""
        w = self.world
        return None if w.attributes is None else {"train": w.attributes[w.train], "test": w.attributes[w.test]}

    def split_episodes(self, split: str) -> games.EnvState:
        """Every object of a split as a target once, candidates from the same split: the evaluation's episodes."""
        return split_episodes(self.game, self.split_objects[split], list(self.split_objects).index(split))
