"""Continuous hyperparameters: the config fields marked `continuous` (games.fields.doc), as arrays.

`Hparams` is a plain nested dict `{section: {field: array}}`, a pytree: scalars for one run, arrays
`[runs]` under vmap, so one compiled call trains runs that differ in them. A
component reads its own section (`hp["objective"]["tau"]`). Every other config field is static
(shapes, code paths) and splits a sweep into compile groups.

    >>> from lab import config
    >>> hp = hparams_from_config(config.load(), 4)
    >>> hp["train"]["lr"].shape
    (4,)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

Hparams = dict  # {section: {field: jax.Array}}


def _sections(config):
    return [(f.name, getattr(config, f.name)) for f in dataclasses.fields(config)]


def continuous_keys(config) -> frozenset[str]:
    """Dotted names `section.field` of every continuous field of a config (instance or class)."""
    config = config() if isinstance(config, type) else config
    return frozenset(f"{name}.{f.name}" for name, section in _sections(config)
                     for f in dataclasses.fields(section) if f.metadata.get("continuous"))


def hparams_from_config(config, n: int | None = None) -> Hparams:
    """The config's continuous values, as float32 scalars or repeated `n` times for n runs."""
    shape = () if n is None else (n,)
    out = {}
    for name, section in _sections(config):
        section = section.resolved() if hasattr(section, "resolved") else section  # e.g. train.lr 0 -> the mode's
        values = {f.name: jnp.full(shape, getattr(section, f.name), jnp.float32)
                  for f in dataclasses.fields(section) if f.metadata.get("continuous")}
        if values:
            out[name] = values
    return out


def with_values(hparams: Hparams, values: dict[str, jax.Array]) -> Hparams:
    """A copy with some `section.field` entries replaced, e.g. `{"train.lr": jnp.linspace(1e-3, 1e-2, 8)}`."""
    out = {section: dict(fields) for section, fields in hparams.items()}
    for key, value in values.items():
        section, name = key.split(".")
        if name not in out.get(section, {}):
            raise KeyError(f"{key} is not a continuous hyperparameter; these are: {', '.join(keys(hparams))}")
        out[section][name] = jnp.asarray(value, jnp.float32)
    return out


def keys(hparams: Hparams) -> list[str]:
    return [f"{section}.{name}" for section, fields in hparams.items() for name in fields]


def concatenate(hparams: list[Hparams]) -> Hparams:
    return jax.tree.map(lambda *leaves: jnp.concatenate(leaves), *hparams)
