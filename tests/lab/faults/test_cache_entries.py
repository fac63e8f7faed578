"""Faults, the exported-program cache (issue 32): a planted or misplaced entry neither runs code nor changes numbers;
a full disk leaves no `.part` file behind."""

from __future__ import annotations

import errno
import os
import pickle
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from lab.experiment import cache


def double(x):
    return {"y": x * 2.0}


def triple(x):
    return {"y": x * 3.0}


ARGS = (jnp.arange(4, dtype=jnp.float32),)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE", str(tmp_path))
    return tmp_path / "exported"


def entry(folder: Path) -> Path:
    (path,) = folder.glob("*.bin")
    return path


def computed(fn, fingerprint):
    return np.asarray(cache.lower(fn, ARGS, fingerprint).compile()(*ARGS)["y"])


class Payload:
    """Unpickling it creates the file `marker`: code run from the cache folder."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_planted_pickle_is_not_run(folder, tmp_path):
    """The cache unpickled its files: a planted file ran code."""
    computed(double, "a")
    path = entry(folder)
    marker = tmp_path / "ran"
    path.write_bytes(pickle.dumps((Payload(str(marker)), Payload(str(marker)))))
    with pytest.warns(cache.CacheWarning, match="not used"):
        np.testing.assert_array_equal(computed(double, "a"), np.arange(4) * 2.0)
    assert not marker.exists()


def test_an_entry_copied_under_another_key_is_a_miss(folder):
    """An entry copied under another config's name gave that config's numbers."""
    computed(double, "a")
    doubled = entry(folder).read_bytes()
    computed(triple, "b")
    for path in folder.glob("*.bin"):
        path.write_bytes(doubled)  # b's name, a's program
    with pytest.warns(cache.CacheWarning, match="another program"):
        np.testing.assert_array_equal(computed(triple, "b"), np.arange(4) * 3.0)


def test_a_damaged_entry_is_a_miss(folder):
    computed(double, "a")
    path = entry(folder)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.warns(cache.CacheWarning, match="damaged"):
        np.testing.assert_array_equal(computed(double, "a"), np.arange(4) * 2.0)


def test_a_full_disk_leaves_no_part_file(folder, monkeypatch):
    """The full-cache case left `*.part` files behind."""
    def full(self, data):
        with open(self, "wb") as handle:
            handle.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.warns(cache.CacheWarning, match="cannot keep"):
        np.testing.assert_array_equal(computed(double, "a"), np.arange(4) * 2.0)  # computed all the same
    monkeypatch.undo()
    assert not [p for p in folder.parent.rglob("*") if p.suffix == ".part"]
