"""lab.config: YAML + dotted overrides, validation errors that name the field, the value and what is allowed.

Also keeps environment.yml in step with pyproject.toml (same packages, same lower bounds).
"""

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from lab import config
from games.config import GameConfig
from lab.core.agents import AgentsConfig
from lab.experiment.config import SECTIONS, Config, ConfigError

ROOT = Path(__file__).resolve().parents[3]


def write(tmp_path, tree, name="config.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(tree))
    return path


# -- reading ---------------------------------------------------------------------------------------


def test_defaults_without_file_or_overrides():
    assert config.load() == Config()


def test_yaml_file_then_overrides_win(tmp_path):
    path = write(tmp_path, {"game": {"n_attributes": 3, "n_values": 5}, "train": {"lr": 0.01, "steps": 400}})
    cfg = config.load(path, ["train.lr=1e-3", "agents.cell=lstm"])
    assert cfg.game == GameConfig(n_attributes=3, n_values=5)
    assert cfg.train.lr == 1e-3  # the override beats the file
    assert cfg.train.steps == 400  # the file beats the default
    assert cfg.agents == AgentsConfig(cell="lstm")


def test_override_strings_are_coerced_to_the_field_types():
    cfg = config.load(overrides=["train.steps=300", "train.lr=3e-3", "game.hard_negatives=true",
                                 "game.test_fraction=0.25"])
    assert cfg.train.steps == 300 and type(cfg.train.steps) is int
    assert cfg.train.lr == 3e-3 and type(cfg.train.lr) is float
    assert cfg.game.hard_negatives is True
    assert cfg.game.test_fraction == 0.25


def test_yaml_exponent_without_a_dot_is_a_float(tmp_path):
    # PyYAML reads `1e-3` (no dot) as a string; the field type decides
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 1e-3\n")
    assert config.load(path).train.lr == 1e-3


def test_empty_yaml_and_empty_section_give_defaults(tmp_path):
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "section.yaml").write_text("game:\n")
    assert config.load(tmp_path / "empty.yaml") == Config()
    assert config.load(tmp_path / "section.yaml") == Config()


def test_round_trip_through_yaml(tmp_path):
    cfg = config.load(overrides=["game.kind=discrimination", "game.n_distractors=3", "train.mode=gumbel",
                                 "agents.cell=lstm", "train.steps=200", "train.eval_every=50"])
    path = write(tmp_path, config.to_dict(cfg))
    assert config.load(path) == cfg


def test_replace_validates():
    cfg = config.replace(Config(), **{"train.lr": 0.5})
    assert cfg.train.lr == 0.5
    with pytest.raises(ConfigError, match="train.lr"):
        config.replace(Config(), **{"train.lr": -1.0})


def test_every_field_is_documented_in_describe():
    text = config.describe()
    for section in SECTIONS.values():
        for f in dataclasses.fields(section):
            assert f.metadata["doc"], f.name
    assert text.count("\n") + 1 == sum(len(dataclasses.fields(s)) for s in SECTIONS.values())
    assert "agents.max_len = 5" in text and "population.pairing = 'random'" in text


def test_continuous_fields_are_floats_and_become_hyperparameters():
    from lab.core.hparams import continuous_keys, hparams_from_config

    keys = continuous_keys(Config)
    assert {"train.lr", "train.entropy_coeff", "train.temperature", "train.beta2", "interventions.ema_rate"} <= keys
    assert not keys & {"train.steps", "train.mode", "agents.hidden_size", "population.n_receivers"}
    for key in keys:
        section, name = key.split(".")
        assert isinstance(getattr(getattr(Config(), section), name), float), key
    hp = hparams_from_config(config.load(overrides=["train.lr=0.01"]), 3)
    assert {f"{s}.{n}" for s, fields in hp.items() for n in fields} == keys
    assert hp["train"]["lr"].tolist() == pytest.approx([0.01] * 3)


def test_the_default_learning_rate_is_the_modes_own_and_an_explicit_one_wins():
    from lab.core.hparams import hparams_from_config
    from lab.core.trainer import MODE_LR

    lr = lambda *overrides: float(hparams_from_config(config.load(overrides=list(overrides)))["train"]["lr"])  # noqa: E731
    assert lr() == pytest.approx(MODE_LR["reinforce"]) and lr("train.mode=gumbel") == pytest.approx(MODE_LR["gumbel"])
    assert MODE_LR["gumbel"] < MODE_LR["reinforce"]
    assert lr("train.mode=gumbel", "train.lr=0.01") == pytest.approx(0.01)
    switched = config.replace(config.load(), **{"train.mode": "gumbel"})  # the default follows a changed mode
    assert float(hparams_from_config(switched)["train"]["lr"]) == pytest.approx(MODE_LR["gumbel"])


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().train.lr = 1.0


# -- errors ----------------------------------------------------------------------------------------

# (overrides, words the one-line message must contain: the field, the bad value, what is allowed)
BAD = {
    "unknown key": (["train.learning_rate=0.1"], ["train.learning_rate", "allowed", "lr"]),
    "unknown section": (["model.hidden=3"], ["'model'", "allowed", "game", "agents", "train"]),
    "wrong type int": (["train.steps=many"], ["train.steps", "'many'", "int"]),
    "wrong type float": (["train.lr=fast"], ["train.lr", "'fast'", "float"]),
    "float for int": (["agents.hidden_size=2.5"], ["agents.hidden_size", "2.5", "int"]),
    "wrong type bool": (["game.hard_negatives=maybe"], ["game.hard_negatives", "'maybe'", "bool"]),
    "zero hidden size": (["agents.hidden_size=0"], ["agents.hidden_size", "0", ">= 1"]),
    "negative batch": (["train.batch_size=-8"], ["train.batch_size", "-8", ">= 1"]),
    "zero values": (["game.n_values=0"], ["game.n_values", "0", ">= 1"]),
    "zero attributes": (["game.n_attributes=0"], ["game.n_attributes", "0", ">= 1"]),
    "max_len 0": (["agents.max_len=0"], ["agents.max_len", "0", "[1, 100]"]),
    "vocab without a symbol": (["agents.vocab_size=1"], ["agents.vocab_size", "1", ">= 2"]),
    "negative lr": (["train.lr=-0.001"], ["train.lr", "-0.001", ">= 0"]),
    "test_fraction 0": (["game.test_fraction=0"], ["game.test_fraction", "0", "(0.0, 1.0)"]),
    "test_fraction 1": (["game.test_fraction=1"], ["game.test_fraction", "1", "(0.0, 1.0)"]),
    "test_fraction 1.5": (["game.test_fraction=1.5"], ["game.test_fraction", "1.5", "(0.0, 1.0)"]),
    "test_fraction negative": (["game.test_fraction=-0.2"], ["game.test_fraction", "-0.2", "(0.0, 1.0)"]),
    "baseline_decay 1": (["train.baseline_decay=1"], ["train.baseline_decay", "1", "[0.0, 1.0)"]),
    "more objects than V^K": (["game.n_attributes=2", "game.n_values=3", "game.n_objects=10"],
                              ["game.n_objects", "10", "9", "0..9"]),
    "unknown game": (["game.kind=negotiation"], ["game.kind", "'negotiation'", "reconstruction", "discrimination"]),
    "unknown cell": (["agents.cell=rnn"], ["agents.cell", "'rnn'", "gru", "lstm", "transformer"]),
    "heads that do not divide the width": (["agents.cell=transformer", "agents.width=64", "agents.heads=3"],
                                           ["agents.heads=3", "agents.width=64"]),
    "unknown mode": (["train.mode=ppo"], ["train.mode", "'ppo'", "reinforce", "gumbel"]),
    "unknown split": (["game.split=random"], ["game.split", "'random'", "compositional", "iid", "none"]),
    "steps not a multiple of eval_every": (["train.steps=250", "train.eval_every=100"],
                                           ["train.steps", "250", "multiple", "train.eval_every", "100"]),
    "too many distractors": (["game.kind=discrimination", "game.n_attributes=2", "game.n_values=2",
                              "game.split=none", "game.n_distractors=4"], ["game.n_distractors", "4", "5"]),
    "compositional split of one attribute": (["game.n_attributes=1"], ["game.split", "compositional", "n_attributes"]),
    "malformed override": (["train.lr"], ["train.lr", "section.field=value"]),
    "unknown pairing": (["population.pairing=tournament"], ["population.pairing", "'tournament'", "random", "fixed", "round_robin"]),
    "no senders": (["population.n_senders=0"], ["population.n_senders", "0", ">= 1"]),
    "no receivers": (["population.n_receivers=0"], ["population.n_receivers", "0", ">= 1"]),
    "unknown reward": (["train.reward=bogus"], ["train.reward", "'bogus'", "listener", "ideal"]),
    "ideal with gumbel": (["train.reward=ideal", "train.mode=gumbel"], ["train.reward='ideal'", "train.mode='reinforce'", "gumbel"]),
    "ideal in discrimination": (["train.reward=ideal", "game.kind=discrimination", "game.n_distractors=2"],
                                ["train.reward='ideal'", "game.kind='reconstruction'"]),
    "early-stopped reset without validation": (["interventions.reset=true"], ["interventions.reset=true", "refit_steps=0",
                                                                              "game.validation_fraction"]),
    "validation without a split": (["game.split=none", "game.validation_fraction=0.1"], ["game.validation_fraction=0.1",
                                                                                       "split"]),
    "p_step above 1": (["train.sender_p_step=1.5"], ["train.sender_p_step", "1.5", "[0.0, 1.0]"]),
    "stop accuracy above 1": (["train.stop_accuracy=1.5"], ["train.stop_accuracy", "1.5", "[0.0, 1.0]"]),
    "temperature decay 0": (["train.temperature_decay=0"], ["train.temperature_decay", "0", "(0.0, 1.0]"]),
}


@pytest.mark.parametrize("overrides, words", BAD.values(), ids=BAD.keys())
def test_bad_override_names_field_value_and_allowed(overrides, words):
    with pytest.raises(ConfigError) as error:
        config.load(overrides=overrides)
    message = str(error.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize("tree, words", [
    ({"train": {"learning_rate": 0.1}}, ["train.learning_rate"]),
    ({"model": {"hidden": 3}}, ["'model'"]),
    ({"train": {"steps": 2.5}}, ["train.steps", "2.5", "int"]),
    ({"train": {"steps": True}}, ["train.steps", "True", "int"]),
    ({"game": {"kind": 3}}, ["game.kind", "3", "str"]),
    ({"game": {"test_fraction": 0.0}}, ["game.test_fraction", "0.0"]),
    ({"train": 5}, ["train", "mapping"]),
    ({"train": {"steps": 1000.0}, "agents": {"max_len": 0}}, ["agents.max_len", "0"]),
], ids=["unknown key", "unknown section", "float for int", "bool for int", "int for str", "fraction 0",
        "section not a mapping", "max_len 0"])
def test_bad_yaml_names_the_field(tmp_path, tree, words):
    path = write(tmp_path, tree)
    with pytest.raises(ConfigError) as error:
        config.load(path)
    for word in words:
        assert word in str(error.value), (word, str(error.value))


@pytest.mark.parametrize("text", ["[1, 2]\n", "5\n"], ids=["list", "scalar"])
def test_yaml_file_that_is_not_a_mapping(tmp_path, text):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError, match="mapping"):
        config.load(tmp_path / "c.yaml")


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(tmp_path / "bad.yaml")


def test_boundary_values_are_accepted():
    cfg = config.load(overrides=["agents.max_len=1", "agents.vocab_size=2", "game.n_attributes=2", "game.n_values=3",
                                 "game.n_objects=9", "train.steps=100", "train.eval_every=100", "train.baseline_decay=0"])
    assert cfg.game.n_objects == 9 and cfg.agents.max_len == 1


# -- environment.yml mirrors pyproject.toml --------------------------------------------------------


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-").replace(".", "-")


def _lower_bound(requirement: str) -> str | None:
    match = re.search(r">=\s*([^,;\s]+)", requirement)
    return match.group(1) if match else None


def _requirements(lines) -> dict[str, str | None]:
    return {_name(r): _lower_bound(r) for r in lines}


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = _requirements(project["dependencies"] + project["optional-dependencies"]["test"])
    declared = _requirements(r for extra in project["optional-dependencies"].values() for r in extra)
    declared.update(required)

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["name"] == "lab"
    assert "python=3.11" in env["dependencies"]
    (pip,) = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    mirrored = _requirements(r for r in pip if not r.startswith("-e"))
    assert "-e ." in pip

    missing = {n: b for n, b in required.items() if n not in mirrored}
    assert not missing, f"environment.yml lacks {missing}"
    unknown = sorted(set(mirrored) - set(declared))
    assert not unknown, f"environment.yml has packages pyproject.toml does not declare: {unknown}"
    differ = {n: (mirrored[n], declared[n]) for n in mirrored if mirrored[n] != declared[n]}
    assert not differ, f"lower bounds differ (environment.yml, pyproject.toml): {differ}"


def test_whole_numbers_are_accepted_for_int_fields_from_the_command_line():
    cfg = config.load(overrides=["agents.vocab_size=12.0", "train.steps=1e3"])
    assert cfg.agents.vocab_size == 12 and cfg.train.steps == 1000
    with pytest.raises(ConfigError, match="agents.vocab_size"):
        config.load(overrides=["agents.vocab_size=12.5"])
