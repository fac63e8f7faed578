"""Experiment configuration: one frozen dataclass per section, each owned by its component, validated at the boundary.

Every field carries a one-line doc and a default (games.fields.doc); fields marked continuous
become vmappable hyperparameters (lab.core.hparams). Configs are read from YAML (safe loader)
and `key=value` dotted overrides (`train.lr=3e-3`); `validate` raises `ConfigError` with one
line naming the field, the value and what is allowed; checks across fields are each section's
`validate(config)`.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from curricula.config import CurriculumConfig
from games.config import GameConfig
from games.fields import ConfigError, check, shown
from lab.core.agents import AgentsConfig
from lab.core.population import PopulationConfig
from lab.core.trainer import TrainConfig
from lab.dro import ObjectiveConfig
from lab.interventions import InterventionsConfig
from lab.merging.config import MergeConfig
from lab.transmission.config import IteratedConfig, TransmissionConfig


@dataclass(frozen=True)
class Config:
    """Every section, each owned by its component: games (game), lab.core (agents, train, population), lab.interventions,
    lab.dro (objective), lab.merging (merge), curricula (curriculum), lab.transmission (transmission, iterated)."""

    game: GameConfig = field(default_factory=GameConfig)
    agents: AgentsConfig = field(default_factory=AgentsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    population: PopulationConfig = field(default_factory=PopulationConfig)
    interventions: InterventionsConfig = field(default_factory=InterventionsConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    merge: MergeConfig = field(default_factory=MergeConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    transmission: TransmissionConfig = field(default_factory=TransmissionConfig)
    iterated: IteratedConfig = field(default_factory=IteratedConfig)


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config)}


def _section_class(name: str) -> type:
    return SECTIONS[name]


def _coerce(path: str, value: Any, kind: type) -> Any:
    """Value as the field's type; strings from the command line are parsed as YAML scalars."""
    if isinstance(value, str) and kind is not str:
        try:
            value = float(value) if kind in (float, int) else parse_yaml(value, f"{path}=")
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
    raise ConfigError(f"{path}={shown(value)}: expected {kind.__name__}")


def from_dict(tree: dict | None) -> Config:
    """Build and validate a Config from nested dicts {section: {field: value}}."""
    tree = tree or {}
    if not isinstance(tree, dict):
        raise ConfigError(f"config must be a mapping of sections ({', '.join(SECTIONS)}), got {type(tree).__name__}")
    sections = {}
    for name, values in tree.items():
        if name not in SECTIONS:
            raise ConfigError(f"unknown config section {shown(name)}; allowed: {', '.join(SECTIONS)}")
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise ConfigError(f"{name}: expected a mapping of fields, got {shown(values)}")
        cls = _section_class(name)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in values.items():
            if key not in fields:
                raise ConfigError(f"unknown config key {name}.{str(key)[:60]}; allowed: {', '.join(fields)}")
            path = f"{name}.{key}"
            value = _coerce(path, value, hints[key])
            check(path, value, fields[key].metadata)
            kwargs[key] = value
        sections[name] = cls(**kwargs)
    config = Config(**sections)
    validate(config)
    return config


def validate(config: Config) -> Config:
    """Every field against its metadata, then each section's own checks across fields."""
    for name in SECTIONS:
        section = getattr(config, name)
        for f in dataclasses.fields(section):
            check(f"{name}.{f.name}", getattr(section, f.name), f.metadata)
    for name in SECTIONS:
        section = getattr(config, name)
        if hasattr(section, "validate"):
            section.validate(config)
    return config


def apply_overrides(tree: dict, overrides: list[str]) -> dict:
    """`section.field=value` strings applied to nested dicts (values stay strings until coerced)."""
    tree = {k: dict(v or {}) if isinstance(v, dict) or v is None else v for k, v in (tree or {}).items()}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {shown(item)}: expected section.field=value, e.g. train.lr=0.003")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) != 2:
            raise ConfigError(f"override {shown(item)}: expected section.field=value with section in {', '.join(SECTIONS)}")
        section, name = parts
        if section not in SECTIONS:
            raise ConfigError(f"unknown config section {shown(section)} in {shown(item)}; allowed: {', '.join(SECTIONS)}")
        tree.setdefault(section, {})
        if not isinstance(tree[section], dict):
            raise ConfigError(f"{section}: expected a mapping of fields")
        tree[section][name] = value
    return tree


# What a YAML file the lab reads may hold: configs and sweep files are a few hundred values. An alias repeats what it
# names, so a few hundred bytes of nested aliases expand to gigabytes: the expansion is counted before it is built.
MAX_YAML_BYTES = 1_000_000
MAX_YAML_VALUES = 100_000


def _expanded_size(node, limit: int) -> int:
    """Values (scalars, lists, mappings) `node` expands to, aliases counted each time they are used; stops above
    `limit` (raising ConfigError), and on an alias that contains itself."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise ConfigError("an alias that contains itself")
        open_nodes.add(key)
        if isinstance(node, yaml.MappingNode):
            n = 1 + sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            n = 1 + sum(size(child) for child in node.value)
        else:
            n = 1
        open_nodes.discard(key)
        if n > limit:
            raise ConfigError(f"expands to more than {limit} values (aliases repeat what they name)")
        sizes[key] = n
        return n

    return size(node)


def parse_yaml(text: str, where: str) -> Any:
    """`yaml.safe_load(text)`, refused (ConfigError naming `where`) when it would expand to more than MAX_YAML_VALUES."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            _expanded_size(node, MAX_YAML_VALUES)
        except ConfigError as error:
            raise ConfigError(f"{where} {error}") from None
        return loader.construct_document(node)
    except RecursionError:
        raise ConfigError(f"{where} is nested too deeply") from None
    finally:
        loader.dispose()


def read_yaml_file(path: str | Path, what: str) -> Any:
    """A YAML file the lab reads (`what`: "config file", "sweep file"): one line naming the file for a missing, large,
    non-UTF-8, malformed or exploding one."""
    path = Path(path)
    name = f"{what} {str(path)!r}"
    if not path.is_file():
        raise ConfigError(f"{name} does not exist")
    if path.stat().st_size > MAX_YAML_BYTES:
        raise ConfigError(f"{name} is {path.stat().st_size} bytes; a config or sweep file holds at most {MAX_YAML_BYTES}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{name} is not UTF-8 text (byte {error.start} is {shown(error.object[error.start:error.start + 1])})") from None
    try:
        return parse_yaml(text, name)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{name} is not valid YAML: {shown(problem, 120)}{at}") from None


def read_yaml(path: str | Path) -> dict:
    tree = read_yaml_file(path, "config file")
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
