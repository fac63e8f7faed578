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
import math
import reprlib
from dataclasses import field
from typing import Any

# Every whole number is an int32 inside the compiled programs (steps, sizes, seeds, indices).
INT_MAX = 2**31 - 1
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxlong, _SHORT.maxother = 2, 40, 40, 40
_SHORT.maxtuple = _SHORT.maxlist = _SHORT.maxarray = _SHORT.maxdict = _SHORT.maxset = _SHORT.maxfrozenset = _SHORT.maxdeque = 4


class ConfigError(ValueError):
    """A bad configuration value; the message is one line meant for a person."""


def shown(value: Any, limit: int = 60) -> str:
    """`repr(value)` cut to a short prefix, in time bounded whatever the value (a YAML alias bomb expands to gigabytes)."""
    text = _SHORT.repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def doc(text: str, default: Any, *, choices: tuple = (), low: float | None = None, high: float | None = None,
        low_open: bool = False, high_open: bool = False, continuous: bool = False, why: str = ""):
    """A dataclass field with its documentation, its allowed values and whether it is continuous; `why` says what
    its bounds protect (quoted when a value breaks them)."""
    return field(default=default, metadata=dict(doc=text, choices=choices, low=low, high=high, low_open=low_open,
                                                high_open=high_open, continuous=continuous, why=why))


def field_meta(section: type, name: str) -> dict:
    return {f.name: f.metadata for f in dataclasses.fields(section)}[name]


def _interval(meta: dict) -> str:
    low, high = meta["low"], meta["high"]
    return f"in {'(' if meta['low_open'] else '['}{low}, {high}{')' if meta['high_open'] else ']'}"


def check(path: str, value: Any, meta: dict) -> None:
    """Raise ConfigError (one line: the field, the value, what is allowed) if `value` breaks `meta`.

    A float must be finite (NaN passes every comparison, so a range check alone lets it through), a whole number
    at most INT_MAX."""
    if meta["choices"] and value not in meta["choices"]:
        raise ConfigError(f"{path}={shown(value)}: allowed values are {', '.join(map(str, meta['choices']))}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{path}={value!r}: must be a finite number")
    why = f" ({meta['why']})" if meta.get("why") else ""
    low, high = meta["low"], meta["high"]
    if low is not None and (value < low or (meta["low_open"] and value == low)):
        bound = _interval(meta) if high is not None else f"> {low}" if meta["low_open"] else f">= {low}"
        raise ConfigError(f"{path}={shown(value)}: must be {bound}{why}")
    if high is not None and (value > high or (meta["high_open"] and value == high)):
        bound = _interval(meta) if low is not None else f"< {high}" if meta["high_open"] else f"<= {high}"
        raise ConfigError(f"{path}={shown(value)}: must be {bound}{why}")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT_MAX:
        raise ConfigError(f"{path}={shown(value)}: must be <= {INT_MAX} (whole numbers are 32-bit inside the programs)")
