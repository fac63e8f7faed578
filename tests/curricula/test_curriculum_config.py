"""The `curriculum` section: documented fields, continuous knobs, one-line errors naming the field, `lab run` exits 2."""

import dataclasses

import pytest

import lab
from curricula import CurriculumConfig
from lab.cli import main
from lab.core.hparams import continuous_keys
from lab.experiment.config import ConfigError, load

TINY = ["game.n_attributes=2", "game.n_values=4", "train.steps=4", "train.eval_every=2", "train.seeds=1"]


def test_every_field_is_documented_and_the_knobs_are_continuous():
    for f in dataclasses.fields(CurriculumConfig):
        assert f.metadata["doc"], f.name
    keys = continuous_keys(lab.Config)
    for knob in ("pace", "initial", "power", "step_size", "explore", "mix", "drift", "meta_lr"):
        assert f"curriculum.{knob}" in keys
    assert "curriculum.kind" not in keys and "curriculum.buckets" not in keys


def test_the_default_is_no_curriculum():
    config = load(overrides=TINY)
    assert config.curriculum.kind == "uniform"
    assert lab.make_trainer(config).components.interventions == {}


@pytest.mark.parametrize("override, field", [
    ("curriculum.kind=spaced_repetition", "curriculum.kind"),
    ("curriculum.initial=0", "curriculum.initial"),
    ("curriculum.initial=1.5", "curriculum.initial"),
    ("curriculum.initial=-0.2", "curriculum.initial"),
    ("curriculum.pace=0", "curriculum.pace"),
    ("curriculum.pace=-1", "curriculum.pace"),
    ("curriculum.step_size=0", "curriculum.step_size"),
    ("curriculum.step_size=-0.1", "curriculum.step_size"),
    ("curriculum.axis=distractors", "curriculum.axis"),  # reconstruction has no distractors
    ("curriculum.axis=similarity", "curriculum.axis"),
    ("curriculum.axis=loudness", "curriculum.axis"),
])
def test_bad_input_is_one_line_naming_the_field(override, field):
    with pytest.raises(ConfigError) as error:
        load(overrides=TINY + ["curriculum.kind=competence", override] if "kind=" not in override else TINY + [override])
    message = str(error.value)
    assert field in message and "\n" not in message


def test_cross_field_checks():
    with pytest.raises(ConfigError, match="curriculum.axis='rarity'.*zipf"):
        load(overrides=TINY + ["curriculum.kind=competence", "curriculum.axis=rarity"])
    load(overrides=TINY + ["curriculum.kind=competence", "curriculum.axis=rarity", "game.distribution=zipf"])
    with pytest.raises(ConfigError, match="curriculum.order='random'.*bandit"):
        load(overrides=TINY + ["curriculum.kind=bandit", "curriculum.order=random"])
    load(overrides=TINY + ["game.kind=discrimination", "game.n_distractors=3", "curriculum.kind=competence",
                           "curriculum.axis=similarity"])


def test_lab_run_exits_2_with_the_error_on_one_line(tmp_path, capsys):
    for override in ("curriculum.kind=spaced_repetition", "curriculum.initial=0", "curriculum.pace=-1",
                     "curriculum.step_size=0", "curriculum.axis=distractors"):
        code = main(["run", "--out", str(tmp_path / "run"), "--quiet", *TINY, "curriculum.kind=competence", override])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and override.split("=")[0] in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind", ["uniform", "competence", "baby_steps", "one_pass", "bandit", "self_paced", "commentary"])
def test_every_samplers_state_converts_to_numpy(kind):
    """The runner hands final states back as numpy arrays: no typed PRNG keys in a sampler's state."""
    import jax
    import numpy as np

    import curricula
    import games

    config = load(overrides=TINY + [f"curriculum.kind={kind}"])
    spec = lab.make_trainer(config).spec
    sampler = curricula.make_sampler(config.curriculum, spec.world, spec.game, config.game, config.train.steps, 32)
    for leaf in jax.tree.leaves(sampler.init(jax.random.key(0))):
        np.asarray(leaf)
