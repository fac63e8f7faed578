"""`Spec(config)`: what a config describes before any training: the world, the game and the agents' definitions.

Components that need them (a listener reset refits on the train objects, the ideal reward
normalises over them) are built from the same `Spec` the trainer uses.
"""

from __future__ import annotations


import games
from lab.core.agents import Agents
from lab.core.evaluate import split_episodes


class Spec:
    def __init__(self, config):
        g, a = config.game, config.agents
        self.config = config
        self.world = games.world_of(g)
        self.game = games.make_game(g.kind, g.n_attributes, g.n_values, a.vocab_size, a.max_len, g.n_distractors,
                                    g.hard_negatives)
        self.agents = Agents(g, a)
        self.train_env = self.game.default_params(self.world.train_objects, self.world.train_probs)  # the world's train distribution

    @property
    def split_objects(self) -> dict:
        return {"train": self.world.train_objects, "test": self.world.test_objects}

    def split_episodes(self, split: str) -> games.EnvState:
        """Every object of a split as a target once, candidates from the same split: the evaluation's episodes."""
        return split_episodes(self.game, self.split_objects[split], list(self.split_objects).index(split))
