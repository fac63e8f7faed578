"""The export cache (lab.experiment.cache.lower): a program kept with its fingerprint is loaded, not traced, and
computes what a fresh trace computes; anything that changes the program is another file; a bad file is made again."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lab
from lab.experiment import cache


def program(state, x):
    """A pytree in, a pytree out, as the trainer's programs are."""
    return {"state": {"w": state["w"] * x + 1.0}, "loss": jnp.sum(state["w"] ** 2) * x}


def untraceable(*_):
    raise AssertionError("traced: the kept program was not loaded")


def args(n=3):
    return {"w": jnp.arange(n, dtype=jnp.float32)}, jnp.float32(2.0)


def expected(n=3):
    w = np.arange(n, dtype=np.float32)
    return {"state": {"w": w * 2.0 + 1.0}, "loss": np.sum(w**2) * 2.0}


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE", str(tmp_path))
    return tmp_path / "exported"


def kept(folder):
    return sorted(folder.glob("*.bin")) if folder.exists() else []


def assert_computes(out, n=3):
    for got, want in zip(jax.tree.leaves(out), jax.tree.leaves(expected(n))):
        np.testing.assert_allclose(np.asarray(got), want)


def test_a_kept_program_is_loaded_not_traced_and_computes_the_same(folder):
    assert_computes(cache.lower(program, args(), "fingerprint").compile()(*args()))
    assert len(kept(folder)) == 1
    assert_computes(cache.lower(untraceable, args(), "fingerprint").compile()(*args()))
    assert len(kept(folder)) == 1


def test_another_fingerprint_or_shape_is_another_program(folder):
    cache.lower(program, args(), "fingerprint")
    with pytest.raises(AssertionError, match="traced"):
        cache.lower(untraceable, args(), "another fingerprint")
    with pytest.raises(AssertionError, match="traced"):
        cache.lower(untraceable, args(4), "fingerprint")
    assert_computes(cache.lower(program, args(4), "fingerprint").compile()(*args(4)), n=4)
    assert len(kept(folder)) == 2


def test_no_fingerprint_or_no_cache_keeps_nothing(folder, monkeypatch):
    assert_computes(cache.lower(program, args(), None).compile()(*args()))
    monkeypatch.setenv("LAB_CACHE", "off")
    assert_computes(cache.lower(program, args(), "fingerprint").compile()(*args()))
    assert kept(folder) == []


def test_a_file_that_does_not_load_is_made_again(folder):
    cache.lower(program, args(), "fingerprint")
    (path,) = kept(folder)
    path.write_bytes(b"not a program")
    assert_computes(cache.lower(program, args(), "fingerprint").compile()(*args()))
    assert_computes(cache.lower(untraceable, args(), "fingerprint").compile()(*args()))  # the new file loads


def test_donated_arguments_are_consumed(folder):
    state, x = args()
    out = cache.lower(program, (state, x), "fingerprint", donate_argnums=(0,)).compile()(state, x)
    assert_computes(out)
    assert state["w"].is_deleted() and not x.is_deleted()


def test_only_a_trainer_made_from_its_config_alone_has_a_fingerprint():
    cfg = lab.load(overrides=["game.n_attributes=2", "game.n_values=3", "train.seeds=1"])
    trainer = lab.make_trainer(cfg)
    assert trainer.fingerprint == lab.make_trainer(cfg).fingerprint
    assert trainer.fingerprint != lab.make_trainer(lab.config.replace(cfg, **{"train.lr": 0.01})).fingerprint
    assert lab.make_trainer(cfg, estimator=trainer.components.estimator).fingerprint is None
    grouped = lab.config.replace(cfg, **{"game.groups": "given"})
    halves, thirds = (lab.make_trainer(grouped, groups=np.arange(9) % k) for k in (2, 3))
    assert halves.fingerprint != thirds.fingerprint


@pytest.mark.parametrize("version, named", [((0, 10, 2), True), ((0, 10, 9), True), ((0, 10, 1), False), ((0, 11, 0), False)])
def test_the_experimental_ynn_flag_is_named_only_for_the_jaxlib_it_was_tested_with(monkeypatch, version, named):
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=nowhere")
    monkeypatch.setattr(cache, "gpu_plugin", lambda: False)
    monkeypatch.setattr(cache, "_version", lambda package: version)
    assert cache.quick_compiles()
    flags = os.environ["XLA_FLAGS"]
    assert flags.startswith("--xla_dump_to=nowhere ") and cache.QUICK_COMPILES in flags
    assert (cache.YNN_FUSIONS in flags) == named
