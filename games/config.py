"""The `game` config section: the world (referents, split, input distribution) and the game played in it."""

from __future__ import annotations

from dataclasses import dataclass

from games.fields import ConfigError, doc
from games.groups import GROUPINGS
from games.registry import GAMES, game_class
from games.splits import SPLIT_KINDS, n_test_objects


@dataclass(frozen=True)
class GameConfig:
    kind: str = doc("game: reconstruction (listener rebuilds the object), discrimination (listener picks it among "
                    "candidates) or features (discrimination over the feature vectors of game.features)",
                    "reconstruction", choices=tuple(GAMES))
    n_attributes: int = doc("K, attributes per object", 4, low=1)
    n_values: int = doc("V, values per attribute", 4, low=1)
    n_objects: int = doc("objects in the world: 0 for all V^K (features: every row), else that many distinct sampled ones",
                         0, low=0)
    split: str = doc("train/test split: compositional (test = unseen combinations; features without labels: at random), "
                     "iid, or none", "compositional",
                     choices=SPLIT_KINDS)
    test_fraction: float = doc("fraction of the objects held out for test", 0.2, low=0.0, high=1.0, low_open=True, high_open=True)
    validation_fraction: float = doc("fraction of the objects held out of train for validation (what early stopping "
                                     "watches; unseen combinations under split=compositional); 0: none", 0.0, low=0.0,
                                     high=1.0, high_open=True)
    distribution: str = doc("input distribution over train objects: uniform or zipf", "uniform", choices=("uniform", "zipf"))
    zipf_exponent: float = doc("exponent a of the Zipf distribution p(rank r) ∝ r^-a", 1.0, low=0.0)
    n_distractors: int = doc("discrimination, features: distractors shown beside the target", 4, low=1)
    hard_negatives: bool = doc("discrimination: favour distractors that share attributes with the target", False)
    features: str = doc("features: .npy file of the referents' feature vectors [n, d] float32 (games.features)", "")
    labels: str = doc("features: optional .npy file of integer attributes [n, K] of the referents, for topsim, posdis, "
                      "bosdis, compositional splits and attribute groups", "")
    seed: int = doc("seed of the world: object sample, split, distribution", 0, low=0)
    groups: str = doc("groups of objects for worst-group metrics and Group DRO (games.groups): none (one group); attribute "
                      "(one per value of game.group_attribute); frequency (game.frequency_bins equal-size bins by training "
                      "frequency, 0 the most frequent; objects never drawn in training fall in the rarest); given (any other "
                      "grouping: make_trainer(config, groups=[n_objects] ints))", "none", choices=GROUPINGS)
    group_attribute: int = doc("groups=attribute: the attribute (0..n_attributes-1) whose value is the group", 0, low=0)
    frequency_bins: int = doc("groups=frequency: how many frequency bins", 4, low=2)

    @property
    def n_total(self) -> int:
        """Objects (referents) in the world."""
        return game_class(self.kind).n_referents(self)

    @property
    def n_validation(self) -> int:
        return n_test_objects(self.n_total, self.validation_fraction)

    @property
    def n_train(self) -> int:
        return game_class(self.kind).n_train(self)

    def validate(self, config=None) -> None:
        """Checks across the fields of this section (single fields are checked as they are read); the kind's own first."""
        game_class(self.kind).validate(self)
        if self.split != "none" and n_test_objects(self.n_total, self.test_fraction) < 1:
            raise ConfigError(f"game.test_fraction={self.test_fraction}: holds out no object of {self.n_total}; raise it")
        if self.validation_fraction > 0 and self.split == "none":
            raise ConfigError(f"game.validation_fraction={self.validation_fraction}: needs a split (game.split=compositional "
                              f"or iid); with split=none train is test")
        if self.validation_fraction > 0 and self.n_train < 1:
            raise ConfigError(f"game.validation_fraction={self.validation_fraction}: with test_fraction={self.test_fraction} "
                              f"it leaves no train object; lower one of them")
        if self.groups == "frequency" and self.distribution == "uniform":
            raise ConfigError("game.groups='frequency' needs game.distribution='zipf': under a uniform distribution every "
                              "object is equally frequent")
        if self.groups == "frequency" and self.frequency_bins > self.n_train:
            raise ConfigError(f"game.frequency_bins={self.frequency_bins}: more bins than the {self.n_train} train objects, "
                              f"so some bins would have no examples; allowed 2..{self.n_train}")
