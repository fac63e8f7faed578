"""Documented config fields, shared by every package's config section (games, curricula, lab).

A section is a frozen dataclass whose fields are declared with `doc(text, default, ...)`: the
one-line documentation, the allowed values, and whether the field is *continuous* (a float that
a population of runs may vary inside one compiled call; every other field is static and splits
a sweep into compile groups). `check` validates a value against its field.

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Knobs:
    ...     rate: float = doc("a step size", 0.1, low=0.0, low_open=True, continuous=True)
    >>> check("knobs.rate", -1.0, field_meta(Knobs, "rate"))
    Traceback (most recent call last):
    ...
    games.fields.ConfigError: knobs.rate=-1.0: must be > 0.0
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any


class ConfigError(ValueError):
    """A bad configuration value; the message is one line meant for a person."""


def doc(text: str, default: Any, *, choices: tuple = (), low: float | None = None, high: float | None = None,
        low_open: bool = False, high_open: bool = False, continuous: bool = False):
    """A dataclass field with its documentation, its allowed values and whether it is continuous."""
    return field(default=default, metadata=dict(doc=text, choices=choices, low=low, high=high, low_open=low_open,
                                                high_open=high_open, continuous=continuous))


def field_meta(section: type, name: str) -> dict:
    return {f.name: f.metadata for f in dataclasses.fields(section)}[name]


def continuous_fields(section: type) -> tuple[str, ...]:
    """The names of a section's continuous fields (vmappable hyperparameters)."""
    return tuple(f.name for f in dataclasses.fields(section) if f.metadata.get("continuous"))


def _interval(meta: dict) -> str:
    low, high = meta["low"], meta["high"]
    return f"in {'(' if meta['low_open'] else '['}{low}, {high}{')' if meta['high_open'] else ']'}"


def check(path: str, value: Any, meta: dict) -> None:
    """Raise ConfigError (one line: the field, the value, what is allowed) if `value` breaks `meta`."""
    if meta["choices"] and value not in meta["choices"]:
        raise ConfigError(f"{path}={value!r}: allowed values are {', '.join(map(str, meta['choices']))}")
    low, high = meta["low"], meta["high"]
    if low is not None and (value < low or (meta["low_open"] and value == low)):
        bound = _interval(meta) if high is not None else f"> {low}" if meta["low_open"] else f">= {low}"
        raise ConfigError(f"{path}={value!r}: must be {bound}")
    if high is not None and (value > high or (meta["high_open"] and value == high)):
        bound = _interval(meta) if low is not None else f"< {high}" if meta["high_open"] else f"<= {high}"
        raise ConfigError(f"{path}={value!r}: must be {bound}")
