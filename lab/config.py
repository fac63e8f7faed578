"""Experiment configuration: frozen dataclasses `game`, `agents`, `train`, validated at the boundary.

Every field carries a one-line doc and a default. Configs are read from YAML (safe loader)
and `key=value` dotted overrides (`train.lr=3e-3`); `validate` raises `ConfigError` with one
line naming the field, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A bad configuration value; the message is one line meant for a person."""


def doc(text: str, default: Any, *, choices: tuple = (), low: float | None = None, high: float | None = None,
        low_open: bool = False, high_open: bool = False):
    """A dataclass field with its documentation and its allowed values."""
    return field(default=default, metadata=dict(doc=text, choices=choices, low=low, high=high,
                                                low_open=low_open, high_open=high_open))


@dataclass(frozen=True)
class GameConfig:
    kind: str = doc("game: reconstruction (listener rebuilds the object) or discrimination (listener picks it among candidates)",
                    "reconstruction", choices=("reconstruction", "discrimination"))
    n_attributes: int = doc("K, attributes per object", 4, low=1)
    n_values: int = doc("V, values per attribute", 4, low=1)
    n_objects: int = doc("objects in the world: 0 for all V^K, else that many distinct sampled ones", 0, low=0)
    split: str = doc("train/test split: compositional (test = unseen combinations), iid, or none", "compositional",
                     choices=("compositional", "iid", "none"))
    test_fraction: float = doc("fraction of the objects held out for test", 0.2, low=0.0, high=1.0, low_open=True, high_open=True)
    distribution: str = doc("input distribution over train objects: uniform or zipf", "uniform", choices=("uniform", "zipf"))
    zipf_exponent: float = doc("exponent a of the Zipf distribution p(rank r) ∝ r^-a", 1.0, low=0.0)
    n_distractors: int = doc("discrimination: distractors shown beside the target", 4, low=1)
    hard_negatives: bool = doc("discrimination: favour distractors that share attributes with the target", False)
    seed: int = doc("seed of the world: object sample, split, distribution", 0, low=0)


@dataclass(frozen=True)
class AgentsConfig:
    cell: str = doc("recurrent cell of sender and receiver", "gru", choices=("gru", "lstm"))
    hidden_size: int = doc("hidden units of both recurrent cells", 128, low=1)
    embedding_size: int = doc("symbol embedding size", 32, low=1)
    vocab_size: int = doc("symbols, EOS (symbol 0) included", 10, low=2)
    max_len: int = doc("message positions, the EOS position included", 5, low=1)


@dataclass(frozen=True)
class TrainConfig:
    mode: str = doc("how the sender learns: reinforce (log-likelihood reward) or gumbel (straight-through Gumbel-softmax)",
                    "reinforce", choices=("reinforce", "gumbel"))
    steps: int = doc("optimizer steps", 1500, low=1)
    batch_size: int = doc("games per step", 512, low=1)
    seeds: int = doc("seeds trained together as one vmapped population", 8, low=1)
    seed: int = doc("first seed; the population uses seed, seed+1, ...", 0, low=0)
    lr: float = doc("Adam learning rate of sender and receiver", 3e-3, low=0.0, low_open=True)
    sender_lr: float = doc("sender learning rate; 0 means use lr", 0.0, low=0.0)
    receiver_lr: float = doc("receiver learning rate; 0 means use lr", 0.0, low=0.0)
    entropy_coeff: float = doc("reinforce: weight of the sender's entropy bonus", 0.01, low=0.0)
    baseline_decay: float = doc("reinforce: decay of the running-mean reward baseline", 0.99, low=0.0, high=1.0, high_open=True)
    temperature: float = doc("gumbel: Gumbel-softmax temperature", 1.0, low=0.0, low_open=True)
    eval_every: int = doc("steps between evaluations (metrics on train and test)", 100, low=1)
    eval_size: int = doc("at most this many objects per split for topsim and the loss decomposition (pairs grow as n^2)", 256, low=2)
    control: str = doc("co-adaptation control: none; reset (listener reset and refitted every reset_every steps); "
                       "population (n_listeners listeners, one drawn per step); ideal (sender rewarded by its ideal listener)",
                       "none", choices=("none", "reset", "population", "ideal"))
    reset_every: int = doc("reset control: steps between listener resets", 250, low=1)
    n_listeners: int = doc("population control: listeners the sender talks to", 4, low=1)
    listener_max_steps: int = doc("reset control and probes: most listener-only steps when refitting a listener", 500, low=1)
    listener_window: int = doc("reset control and probes: refitting stops when the mean loss of the last window steps "
                               "is not below that of the window before by listener_tolerance", 20, low=1)
    listener_tolerance: float = doc("reset control and probes: improvement (nats) that counts as progress", 1e-3, low=0.0)
    listener_holdout: float = doc("reset control: fraction of the train objects left out of the listener's refit, whose loss "
                                  "decides when it stops (0: stop on the refit's own loss)", 0.1, low=0.0, high=1.0, high_open=True)
    ideal_size: int = doc("ideal control: train objects that normalise the ideal listener, drawn anew each step; "
                          "0 or >= the train split means all of them (exact)", 64, low=0)


@dataclass(frozen=True)
class Config:
    game: GameConfig = field(default_factory=GameConfig)
    agents: AgentsConfig = field(default_factory=AgentsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}


def _section_class(name: str) -> type:
    return {"game": GameConfig, "agents": AgentsConfig, "train": TrainConfig}[name]


def _coerce(path: str, value: Any, kind: type) -> Any:
    """Value as the field's type; strings from the command line are parsed as YAML scalars."""
    if isinstance(value, str) and kind is not str:
        try:
            value = float(value) if kind in (float, int) else yaml.safe_load(value)
        except (ValueError, yaml.YAMLError):
            pass
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"{path}={value!r}: expected {kind.__name__}")


def _check(path: str, value: Any, meta: dict) -> None:
    if meta["choices"] and value not in meta["choices"]:
        raise ConfigError(f"{path}={value!r}: allowed values are {', '.join(map(str, meta['choices']))}")
    low, high = meta["low"], meta["high"]
    if low is not None and (value < low or (meta["low_open"] and value == low)):
        bound = f"> {low}" if meta["low_open"] else f">= {low}"
        if high is not None:
            bound = f"in {'(' if meta['low_open'] else '['}{low}, {high}{')' if meta['high_open'] else ']'}"
        raise ConfigError(f"{path}={value!r}: must be {bound}")
    if high is not None and (value > high or (meta["high_open"] and value == high)):
        raise ConfigError(f"{path}={value!r}: must be in {'(' if meta['low_open'] else '['}{low}, {high}{')' if meta['high_open'] else ']'}")


def from_dict(tree: dict | None) -> Config:
    """Build and validate a Config from nested dicts {section: {field: value}}."""
    tree = tree or {}
    if not isinstance(tree, dict):
        raise ConfigError(f"config must be a mapping of sections ({', '.join(SECTIONS)}), got {type(tree).__name__}")
    sections = {}
    for name, values in tree.items():
        if name not in SECTIONS:
            raise ConfigError(f"unknown config section {name!r}; allowed: {', '.join(SECTIONS)}")
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise ConfigError(f"{name}: expected a mapping of fields, got {values!r}")
        cls = _section_class(name)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in values.items():
            if key not in fields:
                raise ConfigError(f"unknown config key {name}.{key}; allowed: {', '.join(fields)}")
            path = f"{name}.{key}"
            value = _coerce(path, value, hints[key])
            _check(path, value, fields[key].metadata)
            kwargs[key] = value
        sections[name] = cls(**kwargs)
    config = Config(**sections)
    validate(config)
    return config


def validate(config: Config) -> Config:
    """Checks that involve several fields (single fields are checked as they are read)."""
    for name in SECTIONS:
        section = getattr(config, name)
        for f in dataclasses.fields(section):
            _check(f"{name}.{f.name}", getattr(section, f.name), f.metadata)
    g, t = config.game, config.train
    n_possible = g.n_values ** g.n_attributes
    if g.n_objects > n_possible:
        raise ConfigError(f"game.n_objects={g.n_objects}: more than the {n_possible} distinct objects V^K "
                          f"(n_values={g.n_values}, n_attributes={g.n_attributes}); allowed 0..{n_possible}")
    n_objects = g.n_objects or n_possible
    n_train = n_objects - (round(n_objects * g.test_fraction) if g.split != "none" else 0)
    if g.split != "none" and round(n_objects * g.test_fraction) < 1:
        raise ConfigError(f"game.test_fraction={g.test_fraction}: holds out no object of {n_objects}; raise it")
    if g.split == "compositional" and g.n_attributes < 2:
        raise ConfigError(f"game.split='compositional' needs game.n_attributes >= 2, got {g.n_attributes}; use split=iid")
    if g.kind == "discrimination" and g.n_distractors + 1 > n_train:
        raise ConfigError(f"game.n_distractors={g.n_distractors}: needs at least {g.n_distractors + 1} train objects, "
                          f"the split leaves {n_train}")
    if t.control == "reset" and t.listener_holdout > 0 and not 1 <= round(n_train * t.listener_holdout) < n_train:
        raise ConfigError(f"train.listener_holdout={t.listener_holdout}: holds out {round(n_train * t.listener_holdout)} of "
                          f"{n_train} train objects; it must leave at least one on each side (or be 0)")
    if t.control == "ideal" and (t.mode != "reinforce" or g.kind != "reconstruction"):
        raise ConfigError(f"train.control='ideal' needs train.mode='reinforce' and game.kind='reconstruction' "
                          f"(the ideal listener is a posterior over objects, a REINFORCE reward); got mode={t.mode!r}, kind={g.kind!r}")
    if t.steps % t.eval_every:
        raise ConfigError(f"train.steps={t.steps}: must be a multiple of train.eval_every={t.eval_every}")
    return config


def apply_overrides(tree: dict, overrides: list[str]) -> dict:
    """`section.field=value` strings applied to nested dicts (values stay strings until coerced)."""
    tree = {k: dict(v or {}) if isinstance(v, dict) or v is None else v for k, v in (tree or {}).items()}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected section.field=value, e.g. train.lr=0.003")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) != 2:
            raise ConfigError(f"override {item!r}: expected section.field=value with section in {', '.join(SECTIONS)}")
        section, name = parts
        if section not in SECTIONS:
            raise ConfigError(f"unknown config section {section!r} in {item!r}; allowed: {', '.join(SECTIONS)}")
        tree.setdefault(section, {})
        if not isinstance(tree[section], dict):
            raise ConfigError(f"{section}: expected a mapping of fields")
        tree[section][name] = value
    return tree


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        tree = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {str(error).splitlines()[0]}") from None
    if tree is not None and not isinstance(tree, dict):
        raise ConfigError(f"config file {str(path)!r} must be a mapping of sections ({', '.join(SECTIONS)}), got {type(tree).__name__}")
    return tree or {}


def load(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Config from an optional YAML file plus dotted overrides, validated."""
    tree = read_yaml(path) if path else {}
    return from_dict(apply_overrides(tree, list(overrides)))


def to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def replace(config: Config, **dotted) -> Config:
    """`replace(cfg, **{"train.lr": 1e-3})`: a validated copy with some fields changed."""
    tree = to_dict(config)
    for key, value in dotted.items():
        section, name = key.split(".")
        tree[section][name] = value
    return from_dict(tree)


def describe() -> str:
    """Every field with its default and doc, for `lab run --help` and the README."""
    lines = []
    for name in SECTIONS:
        for f in dataclasses.fields(_section_class(name)):
            lines.append(f"  {name}.{f.name} = {f.default!r}: {f.metadata['doc']}")
    return "\n".join(lines)
