"""Compile time side by side with an earlier commit (default dd866c6, main when issue 10 was filed).

Three measurements, each a fresh process with the persistent compilation cache off, the two trees in
alternation (`--repeats` rounds, best of them), on the same machine and the same Python environment:

* the default run's first-call compile, 8 seeds: from a fresh trainer to its programs compiled and
  nothing run (dd866c6: `jax.jit(jax.vmap(trainer.train))`, one program; now: the runner's programs,
  lab.experiment.execute.train_runs's programs, compile_run);
* the same for one compile group of sweeps/tiny.yaml (its first: 2 learning rates x 2 seeds of 16-unit GRUs);
* `lab sweep sweeps/tiny.yaml`: the whole process (2 compile groups of 20 steps: importing, compiling, training and
  writing the results), the file as each tree has it.

The earlier tree is `git archive`d into a temporary folder and imported from there (PYTHONPATH).
Writes `benchmarks/results/against-<commit>-<machine>.json` (or `--out`).

    python benchmarks/against.py [--commit dd866c6] [--repeats 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ)  # as launched, without the XLA flags of either tree (each sets its own)

COMPILE_THEN = """
import sys, time
import jax
from lab.config import load
from lab.train import Trainer, hparams_from_config, seed_keys
import lab
print(lab.__file__)
start = time.perf_counter()
config = load(overrides=sys.argv[1:])
trainer, keys = Trainer(config), seed_keys(config)
jax.jit(jax.vmap(trainer.train)).lower(keys, hparams_from_config(config, len(keys))).compile()
print(time.perf_counter() - start)
"""

COMPILE_NOW = """
import sys, time
from lab import hparams_from_config, load, make_trainer, seed_keys
from lab.experiment.execute import compile_run, layout
import lab
lab.setup()
print(lab.__file__)
start = time.perf_counter()
config = load(overrides=sys.argv[1:])
trainer = make_trainer(config)
lay = layout(config.train.seeds)
keys, hparams = lay.groups(seed_keys(config))[0], lay.groups(hparams_from_config(config, config.train.seeds))[0]
compile_run(trainer, keys, hparams, **({} if lay.sharding is None else dict(out_shardings=lay.sharding)))
print(time.perf_counter() - start)
"""


def timed(tree: Path, args: list[str]) -> tuple[float, str]:
    """(wall seconds, stdout) of `python args` run in `tree` with `tree` first on the path and the cache off."""
    env = {**ENV, "PYTHONPATH": str(tree), "LAB_CACHE": "off"}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, *args], cwd=tree, env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, out.stdout


# sweeps/tiny.yaml's first compile group (its base, agents.cell=gru): 2 cells (learning rates) x 2 seeds, one population
TINY_GROUP = ["game.n_attributes=2", "game.n_values=3", "agents.hidden_size=16", "agents.embedding_size=8",
              "agents.vocab_size=4", "agents.max_len=3", "train.steps=20", "train.eval_every=10", "train.batch_size=32",
              "agents.cell=gru", "train.seeds=4"]


def compile_seconds(tree: Path, snippet: str, overrides: list[str]) -> float:
    source, seconds = timed(tree, ["-c", snippet, *overrides])[1].split()[-2:]
    assert Path(source).is_relative_to(tree), f"imported {source}, not the lab of {tree}"
    return float(seconds)


def measure(tree: Path, snippet: str) -> dict:
    sweep_seconds, _ = timed(tree, ["-m", "lab.cli", "sweep", "sweeps/tiny.yaml", "--quiet", "--overwrite",
                                    "--out", tempfile.mkdtemp(prefix="tiny-")])
    return dict(default_run_compile_seconds=compile_seconds(tree, snippet, ["train.seeds=8"]),
                tiny_group_compile_seconds=compile_seconds(tree, snippet, TINY_GROUP), tiny_sweep_seconds=sweep_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commit", default="dd866c6")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from throughput import machine, machine_slug  # the same naming of the machine

    then = Path(tempfile.mkdtemp(prefix=f"lab-{args.commit}-"))
    archive = subprocess.run(["git", "archive", args.commit], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(then)], input=archive, check=True)
    commit = subprocess.run(["git", "rev-parse", "--short", args.commit], cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout.strip()
    rounds = {"then": [], "now": []}
    for i in range(args.repeats):
        for name, tree, snippet in (("then", then, COMPILE_THEN), ("now", ROOT, COMPILE_NOW)):
            rounds[name].append(measure(tree, snippet))
            print(f"round {i + 1}, {name}: {rounds[name][-1]}", flush=True)
    best = {name: {k: min(r[k] for r in rs) for k in rs[0]} for name, rs in rounds.items()}
    ratio = {k: best["now"][k] / best["then"][k] for k in best["now"]}
    info = machine()
    result = dict(machine=info, date=time.strftime("%Y-%m-%d"), commit_then=commit, rounds=rounds, best=best,
                  ratio_now_to_then=ratio)
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"against-{commit}-{machine_slug(info)}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    for k, r in ratio.items():
        print(f"{k}: {best['then'][k]:.1f} s at {commit}, {best['now'][k]:.1f} s now (x{r:.2f})")
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()
