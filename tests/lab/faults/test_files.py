"""Faults, hostile or broken files (issue 32): each gets one line naming it and exit 2, fast and small, never a
traceback or gigabytes allocated.

The run directory `lab play` reads is written here from freshly initialised agents (no training): its config and
a checkpoint the lab would accept, then damaged copies of it.
"""

from __future__ import annotations

import io as bytes_io
import os
import shutil
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
import yaml

from lab import cli, config
from lab.core.spec import Spec
from lab.experiment import checkpoint

TINY = {"game": {"n_attributes": 2, "n_values": 3}, "agents": {"hidden_size": 8, "embedding_size": 4, "vocab_size": 4,
                                                               "max_len": 3}, "train": {"seeds": 1}}
LEVELS = 9  # nine levels of nine aliases: 9^9 = 387 million strings from a file of a few hundred bytes


def alias_bomb(levels: int = LEVELS) -> str:
    """A YAML value that expands to 9^levels strings (the "billion laughs" of XML, in YAML's aliases)."""
    lines = ['- &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"- &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + f"\n- *l{levels - 1}\n"


def nested(key: str, bomb: str) -> str:
    """`bomb` (a YAML list) as the value of `key` in a mapping."""
    return f"{key}:\n" + "".join(f"  {line}\n" for line in bomb.splitlines())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run directory as `lab run` writes it, with untrained agents."""
    out = tmp_path_factory.mktemp("run") / "run"
    out.mkdir()
    cfg = config.from_dict(TINY)
    (out / "config.yaml").write_text(yaml.safe_dump(config.to_dict(cfg)))
    senders, receivers = jax.tree.map(lambda leaf: np.asarray(leaf)[None, None], Spec(cfg).agents.init(jax.random.key(0)))
    checkpoint.save(out / checkpoint.FILENAME, senders, receivers, [0])
    return out


def copy_of(run_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


def one_line_exit_2(args, capsys, *words) -> str:
    code = cli.main([str(a) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert len(err[0]) < 400, err[0][:400]  # the value quoted as a short prefix
    for word in words:
        assert word in err[0], err[0]
    return err[0]


def within(seconds: float, memory: int, fn):
    """fn() with tracemalloc's peak below `memory` bytes and the time below `seconds`."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        return fn()
    finally:
        elapsed, (_, peak) = time.perf_counter() - start, tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert elapsed < seconds and peak < memory, (elapsed, peak)


# -- YAML ---------------------------------------------------------------------------------------


def test_an_alias_bomb_in_a_config_file_is_refused_fast(tmp_path, capsys, no_training):
    """A 341-byte alias bomb as `train.steps` expanded to gigabytes and died after 40-60 s printing all of it."""
    path = tmp_path / "bomb.yaml"
    path.write_text("train:\n" + "".join(f"  {line}\n" for line in nested("steps", alias_bomb()).splitlines()))
    assert path.stat().st_size < 1000
    within(5, 2**30, lambda: one_line_exit_2(["run", "--out", tmp_path / "out", "--config", path], capsys, str(path), "expands"))
    assert not (tmp_path / "out").exists()


def test_an_alias_bomb_in_a_sweep_file_is_refused_fast(tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_text("grid: {train.lr: [0.001]}\n" + nested("seeds", alias_bomb()))
    within(5, 2**30, lambda: one_line_exit_2(["sweep", path, "--out", tmp_path / "out"], capsys, str(path), "expands"))


def test_an_alias_bomb_in_a_run_config_is_refused_by_play(run_dir, tmp_path, capsys):
    run = copy_of(run_dir, tmp_path)
    (run / "config.yaml").write_text("train:\n" + "".join(f"  {line}\n" for line in nested("steps", alias_bomb()).splitlines()))
    within(5, 2**30, lambda: one_line_exit_2(["play", run], capsys, "config.yaml", "expands"))


def never(*_, **__):
    raise AssertionError("training started")


@pytest.fixture
def no_training(monkeypatch):
    from lab.experiment import run

    monkeypatch.setattr(run, "train", never)


def test_non_utf8_yaml_names_the_file(tmp_path, capsys, no_training):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("train: {steps: 100}  # réglé\n".encode("latin-1"))
    one_line_exit_2(["run", "--out", tmp_path / "out", "--config", path], capsys, str(path), "UTF-8")


@pytest.mark.parametrize("override", ["game.test_fraction=nan", "train.lr=nan", "train.lr=inf", "train.entropy_coeff=inf"])
def test_non_finite_values_are_refused(override, tmp_path, capsys, no_training):
    """NaN passed every range check: `game.test_fraction=nan` died in `int()`, `train.lr=nan` trained to NaN."""
    one_line_exit_2(["run", "--out", tmp_path / "out", override], capsys, override.split("=")[0], "finite")


# -- checkpoints --------------------------------------------------------------------------------


def sparse_npz(path: Path, name: str, shape: tuple[int, ...]) -> None:
    """An .npz whose array `name` of zeros claims `shape` (float32) in a few megabytes: a deflated zip member written
    by hand, the same compressed block of zeros repeated (zlib resets at each full flush), its CRC left at 0."""
    header = bytes_io.BytesIO()
    np.lib.format.write_array_header_2_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    chunk = 1 << 20
    size = int(np.prod(shape)) * 4
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    start = compressor.compress(header.getvalue()) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(bytes(chunk)) + compressor.flush(zlib.Z_FULL_FLUSH)
    data = start + block * (size // chunk) + compressor.flush()
    plain = len(header.getvalue()) + size
    member = f"{name}.npy".encode()
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, 0, len(data), plain, len(member), 0) + member
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, 0, len(data), plain, len(member), 0, 0, 0, 0,
                          0, 0) + member
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(data), 0)
    path.write_bytes(local + data + central + end)


LOAD = """
import resource, sys, time
from lab.experiment import checkpoint
from lab.experiment.run import read_config
config = read_config(sys.argv[1])
try:  # the peak from here on: a forked child starts with its parent's peak (man getrusage: kept across execve)
    open("/proc/self/clear_refs", "w").write("5")
    def peak(): return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) * 1024
except OSError:
    def peak(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
start = time.perf_counter()
try:
    checkpoint.load(sys.argv[1] + "/checkpoint.npz", config)
except ValueError as error:
    print("refused:", str(error)[:200])
print(f"{time.perf_counter() - start:.3f} s {peak()}")
"""


def test_a_sparse_npz_is_refused_before_it_is_read(run_dir, tmp_path, capsys):
    """A 4.6 MB .npz holding a sparse 4 GiB array made `lab play` allocate 4.5 GB."""
    run = copy_of(run_dir, tmp_path)
    sparse_npz(run / checkpoint.FILENAME, "senders/head/kernel", (1, 1, 1 << 29))  # 2 GiB of float32
    assert (run / checkpoint.FILENAME).stat().st_size < 10 * 2**20
    one_line_exit_2(["play", run], capsys, "checkpoint.npz")
    done = subprocess.run([sys.executable, "-c", LOAD, str(run)], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert "refused:" in done.stdout, done.stdout + done.stderr
    seconds, peak = done.stdout.split()[-3], done.stdout.split()[-1]
    assert float(seconds) < 5 and int(peak) < 2**30, done.stdout


def damaged(run: Path, how: str) -> None:
    saved = run / checkpoint.FILENAME
    data = bytearray(saved.read_bytes())
    if how == "truncated":
        saved.write_bytes(data[: len(data) // 2])
    elif how == "bit-flipped":
        data[len(data) // 3] ^= 0x10  # inside an array's data: the zip's checksum tells
        saved.write_bytes(bytes(data))
    elif how == "no seeds":
        arrays = dict(np.load(saved))
        del arrays["seeds"]
        np.savez(saved, **arrays)
    elif how == "not a zip":
        saved.write_text("hello")


@pytest.mark.parametrize("how", ["truncated", "bit-flipped", "no seeds", "not a zip"])
def test_a_broken_checkpoint_is_one_line(how, run_dir, tmp_path, capsys):
    """A truncated or bit-flipped checkpoint.npz raised BadZipFile, one without `seeds` a KeyError."""
    run = copy_of(run_dir, tmp_path)
    damaged(run, how)
    one_line_exit_2(["play", run], capsys, "checkpoint")


def test_the_intact_run_dir_plays(run_dir, tmp_path):
    """The control: the same run directory, undamaged, gets past loading (and reads no input: stdin is empty)."""
    from lab.play import play

    shown = bytes_io.StringIO()
    play(copy_of(run_dir, tmp_path), rounds=1, stdin=bytes_io.StringIO(""), stdout=shown)
    assert "no rounds played" in shown.getvalue()


# -- tables and the cache folder ------------------------------------------------------------------------


@pytest.mark.parametrize("table", [pd.DataFrame({"x": [1.0]}), pd.DataFrame({c: [] for c in ("seed", "step", "split", "metric", "value")})],
                         ids=["wrong columns", "no rows"])
def test_report_of_a_table_that_is_not_a_run_is_one_line(table, tmp_path, capsys):
    """A valid parquet with the wrong columns or no rows raised KeyError: 'metric' in `lab report`."""
    run = tmp_path / "run"
    run.mkdir()
    table.to_parquet(run / "metrics.parquet")
    one_line_exit_2(["report", run], capsys, "metrics.parquet")


IMPORT = "import lab, jax; lab.setup(); print('cache:', jax.config.jax_compilation_cache_dir)"


@pytest.mark.parametrize("where", ["a file", "below a file"])
def test_a_cache_folder_that_cannot_be_written_is_a_warning(where, tmp_path):
    """`LAB_CACHE` pointing at a file or an unwritable place was a traceback at `import lab` (now `lab.setup()`)."""
    (tmp_path / "file").write_text("x")
    folder = tmp_path / "file" if where == "a file" else tmp_path / "file" / "cache"
    done = subprocess.run([sys.executable, "-c", IMPORT], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, LAB_CACHE=str(folder), JAX_PLATFORMS="cpu"))
    assert done.returncode == 0, done.stderr
    assert "compiling without a cache" in done.stderr and "Traceback" not in done.stderr
    assert str(folder) not in done.stdout
