"""Speed a user feels: compile time, games per second for populations of seeds, time to 95% accuracy.

A game is one (object, message, guess) training sample: sender and receiver forward and backward.
Measured on the default reconstruction config (EGG's basic game: K=4, V=4, GRU 128, embedding 32,
vocabulary 10, max_len 5, batch 512, REINFORCE) unless overrides say otherwise. Four measurements:

* compile: first-call compile (tracing included), persistent cache off, each in a fresh process, of
  one block's optimizer steps (`eval_every` steps in a scan, no evaluation), bare (only the accuracy
  kept: XLA drops the other step statistics) and as the run has them (`Trainer.steps`, every statistic
  kept), of the whole run's two block programs (the evaluation and those steps, compiled at once:
  lab.experiment.execute.compile_block), and of those with the init, as `lab run` compiles them
  (compile_run), against the bare steps with the init compiled beside them: the whole run's against the
  run's own steps is what the evaluation adds;
* throughput: steady games/s of bare optimizer steps for populations of 1, 8, 32, 128 seeds
  (laid out as `lab run` lays them out: on a CPU, calls of one run per device, a device per core), against
  EGG's games/s on a 2-core CPU: 8.9k in ../shared/science/egg.md (an AMD EPYC), 5.3k as issue 10 quotes it
  (benchmarks/egg.py times EGG itself side by side on the machine at hand);
* `lab run` to 95%: a whole `lab run` process (start-up, compile, training) of one seed on all
  256 objects with early stopping at 95% train accuracy, with a fresh cache folder;
* the same process again with that cache: the time until its first training step (its first block's end
  less one block's run time) and until its first block is done (a rerun of a config in a new process
  should skip compiling).

Writes `benchmarks/results/<machine>.json` (or `--out`) naming the machine: CPU model, cores, load.

    python benchmarks/throughput.py [--populations 1 8 32 128] [--steps 50] [--out FILE] [overrides ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("LAB_CACHE", "off")  # cold compiles here; the rerun measurement sets its own folder

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import pandas as pd  # noqa: E402

from lab import config as lab_config  # noqa: E402
from lab import hparams_from_config, make_trainer, seed_keys  # noqa: E402
from lab.core.trainer import Trainer  # noqa: E402
from lab.experiment.cache import paused_gc  # noqa: E402
from lab.experiment.execute import block_programs, by_device, compile_block, compile_run, init_options, layout, setup  # noqa: E402

setup()  # before JAX starts: the lab's XLA flags and CPU devices

# EGG's basic reconstruction game, REINFORCE, batch 512, games/s of its training pass. Neither was measured on the machine
# this benchmark runs on: the ratios compare machines (benchmarks/egg.py times EGG side by side).
EGG_GAMES_PER_SECOND = {
    "egg.md": 8923,  # ../shared/science/egg.md section 4: shared 2-core AMD EPYC, torch 2.13 CPU, play.py's num_workers=1
    "issue 10": 5300,  # the figure issue 10 quotes, from "a fresh 2-core machine"
}
ROOT = Path(__file__).resolve().parents[1]


def machine() -> dict:
    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return dict(cpu=cpu, cores=os.cpu_count(), load_average_at_start=os.getloadavg(), platform=platform.platform(),
                device=str(jax.devices()[0]), device_kind=jax.devices()[0].device_kind, devices=jax.device_count(),
                jax=jax.__version__)


def machine_slug(info: dict) -> str:
    """The machine as a file name: `2core-intel-r--xeon-r--processor`."""
    return "".join(ch if ch.isalnum() else "-" for ch in f"{info['cores']}core-{info['cpu']}").lower()


def bare_steps(trainer: Trainer, steps: int, **jit_options):
    """`(init, run)`: fresh states, and `steps` optimizer steps per seed in a scan from them (no evaluation), the
    seeds of a group vmapped (and, given the runner's sharding, split over the devices) as `lab run` does."""

    def run(state, key, hparams):
        state, aux = jax.lax.scan(lambda s, xs: trainer.train_step(s, xs[0], xs[1], hparams), state,
                                  (jax.random.split(key, steps), jnp.arange(steps)))
        return state, aux["accuracy"]

    steps_of_group = by_device(run, jit_options.get("out_shardings"))
    return jax.jit(jax.vmap(trainer.init), **jit_options), jax.jit(steps_of_group, **jit_options)


COMPILES = ("bare", "bare_with_init", "steps", "whole", "whole_with_init")


def compile_one(what: str, overrides: list[str]) -> float:
    """Seconds to trace, lower and compile one of COMPILES, one seed, in this process: `bare` (one block's optimizer
    steps, only the accuracy kept), `bare_with_init` (those and the init beside them), `steps` (as the run has them,
    `Trainer.steps`), `whole` (the evaluation and those steps, compile_block) or `whole_with_init` (those and the
    init, compile_run: what `lab run` compiles)."""
    config = lab_config.load(overrides=[*overrides, "train.seeds=1"])
    trainer = make_trainer(config)
    keys, hparams = seed_keys(config), hparams_from_config(config, 1)
    state = jax.eval_shape(jax.vmap(lambda key, hp: trainer.init(trainer.run_keys(key)[0], hp)), keys, hparams)
    start = time.perf_counter()
    with paused_gc():  # as compile_block and compile_run compile
        if what == "bare":
            bare_steps(trainer, config.train.eval_every)[1].lower(state, keys, hparams).compile()
        elif what == "bare_with_init":  # the init compiled beside them, as compile_run compiles it
            init, bare = bare_steps(trainer, config.train.eval_every)
            with ThreadPoolExecutor(2) as pool:
                steps = pool.submit(bare.lower(state, keys, hparams).compile)
                pool.submit(init.lower(keys, hparams).compile, init_options()).result()
                steps.result()
        elif what == "steps":
            jax.jit(block_programs(trainer)[1], donate_argnums=0).lower(state, keys, jnp.int32(0), hparams).compile()
        elif what == "whole":
            compile_block(trainer, state, keys, hparams)
        else:
            compile_run(trainer, keys, hparams)
    return time.perf_counter() - start


def compile_times(overrides: list[str], rounds: int = 2) -> dict:
    """compile_one of each of COMPILES, each in a fresh process (in one process a later compile finds JAX's caches warm
    and looks cheaper), `rounds` alternating rounds, the best of each: `ratio` is the whole run's against the run's
    own steps, `ratio_to_bare` against the bare steps, `ratio_with_init_to_bare_with_init` both with the init."""
    seconds = {what: [] for what in COMPILES}
    for _ in range(rounds):
        for what in COMPILES:
            out = subprocess.run([sys.executable, __file__, "--compile-one", what, *overrides], check=True, cwd=ROOT,
                                 capture_output=True, text=True).stdout
            seconds[what].append(float(out.split()[-1]))
    bare, bare_with_init, steps, whole, with_init = (min(seconds[what]) for what in COMPILES)
    return dict(bare_steps_seconds=bare, bare_steps_with_init_seconds=bare_with_init, run_steps_seconds=steps,
                whole_run_seconds=whole, whole_run_with_init_seconds=with_init, ratio=whole / steps,
                ratio_to_bare=whole / bare, ratio_with_init_to_bare_with_init=with_init / bare_with_init, rounds=seconds)


def games_per_second(config, population: int, steps: int, repeats: int | None = None) -> dict:
    """Steady games/s, the best of `repeats` timed calls (default: 3 up to 8 seeds, 2 up to 32, then 1): on a shared
    machine the first calls of a process often run slower."""
    repeats = repeats or (3 if population <= 8 else 2 if population <= 32 else 1)
    config = lab_config.replace(config, **{"train.seeds": population})
    trainer = make_trainer(config)
    lay = layout(population)
    keys, hparams = lay.groups(seed_keys(config)), lay.groups(hparams_from_config(config, population))
    init, fn = bare_steps(trainer, steps, **({} if lay.sharding is None else dict(out_shardings=lay.sharding)))
    states = jax.block_until_ready([init(*group) for group in zip(keys, hparams)])

    def every_group(states):  # as the runner calls them: dispatched one after the other, then waited for
        return jax.block_until_ready([fn(state, key, hp)[0] for state, key, hp in zip(states, keys, hparams)])

    start = time.perf_counter()
    states = every_group(states)
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        states = every_group(states)
        times.append(time.perf_counter() - start)
    best = min(times)
    games = population * steps * config.train.batch_size
    return dict(population=population, steps=steps, seconds=best, first_call_seconds=first,
                games_per_second=games / best, games_per_second_per_seed=games / best / population,
                games_per_second_each=[games / t for t in times])


TARGET = 0.95
TO_TARGET = ["train.seeds=1", "game.split=none", "train.steps=3000", "train.eval_every=50", f"train.stop_accuracy={TARGET}"]


def lab_run_to_accuracy(overrides: list[str], cache: Path) -> dict:
    """A whole `lab run` process, one seed, all objects, stopping at TARGET train accuracy."""
    out = Path(tempfile.mkdtemp()) / "run"
    args = [sys.executable, "-m", "lab.cli", "run", "--out", str(out), "--overwrite", "--quiet", *overrides, *TO_TARGET]
    start = time.perf_counter()
    subprocess.run(args, check=True, cwd=ROOT, capture_output=True, env={**os.environ, "LAB_CACHE": str(cache)})
    seconds = time.perf_counter() - start
    table = pd.read_parquet(out / "metrics.parquet")
    train = table[(table["split"] == "train") & (table["metric"] == "accuracy")].sort_values("step")
    reached = train[train["value"] >= TARGET]
    return dict(target=TARGET, seconds=seconds, step=int(reached["step"].iloc[0]) if len(reached) else None)


FIRST_BLOCK = """
import sys, time
start = float(sys.argv[1])
from lab import config, hparams_from_config, make_trainer, seed_keys, setup
from lab.experiment.execute import train_runs
setup()
cfg = config.load(overrides=sys.argv[2:])
trainer = make_trainer(cfg)
ends = []
def on_block(index, state, metrics):
    ends.append(time.time() - start)
    if index == 1:  # first block's end, less one block's run time (the second's): the program ready to run
        print(f"{ends[0]:.3f} {2 * ends[0] - ends[1]:.3f}", flush=True)
        raise SystemExit(0)
train_runs(trainer, seed_keys(cfg), hparams_from_config(cfg, cfg.train.seeds), on_block=on_block)
"""


def rerun_seconds(overrides: list[str], cache: Path) -> dict:
    """A new process's wall time from launch until its first block (evaluation + eval_every steps) is done, and
    until its first training step: the first block's end less the run time of one block (the second's)."""
    start = time.time()
    out = subprocess.run([sys.executable, "-c", FIRST_BLOCK, str(start), *overrides], check=True, cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, "LAB_CACHE": str(cache)})
    first_block, first_step = map(float, out.stdout.split()[-2:])
    return dict(first_block_done_seconds=first_block, first_step_seconds=first_step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--populations", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--steps", type=int, default=50, help="optimizer steps timed per population")
    parser.add_argument("--out", default=None, help="default: benchmarks/results/<machine>.json")
    parser.add_argument("--compile-one", choices=COMPILES, help="only print compile_one's seconds (compile_times)")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. train.mode=gumbel")
    args = parser.parse_args()
    if args.compile_one:
        print(compile_one(args.compile_one, args.overrides))
        return
    config = lab_config.load(overrides=args.overrides)
    result = dict(machine=machine(), date=time.strftime("%Y-%m-%d"), overrides=args.overrides)

    result["compile"] = c = compile_times(args.overrides)
    print(f"compile, one seed: bare steps {c['bare_steps_seconds']:.1f} s, the run's steps {c['run_steps_seconds']:.1f} s, "
          f"whole run {c['whole_run_seconds']:.1f} s (x{c['ratio']:.2f} the run's steps, x{c['ratio_to_bare']:.2f} bare), "
          f"with the init {c['whole_run_with_init_seconds']:.1f} s (x{c['ratio_with_init_to_bare_with_init']:.2f} bare steps "
          f"with the init, {c['bare_steps_with_init_seconds']:.1f} s)", flush=True)

    rows = []
    for population in args.populations:
        row = games_per_second(config, population, args.steps)
        rows.append(row)
        print(f"population {population:4d}: {row['games_per_second']:8.0f} games/s "
              f"({row['games_per_second_per_seed']:7.0f} per seed), first call {row['first_call_seconds']:.1f} s", flush=True)
    one = rows[0]["games_per_second"] if rows[0]["population"] == 1 else None
    result["throughput"] = rows
    if one:
        result["one_seed_vs_egg"] = {source: one / egg for source, egg in EGG_GAMES_PER_SECOND.items()}
        result["population_vs_one_seed"] = {r["population"]: r["games_per_second"] / one for r in rows}
        print("one seed: " + ", ".join(f"x{one / egg:.2f} EGG's {egg} games/s ({source})"
                                       for source, egg in EGG_GAMES_PER_SECOND.items()), flush=True)

    with tempfile.TemporaryDirectory() as cache:
        result["lab_run_to_95"] = lab_run_to_accuracy(args.overrides, Path(cache))
        r = result["lab_run_to_95"]
        print(f"lab run, one seed, all objects: {r['target']:.0%} train accuracy at step {r['step']}, "
              f"whole process {r['seconds']:.1f} s (fresh cache)", flush=True)
        result["rerun"] = r = rerun_seconds([*args.overrides, *TO_TARGET], Path(cache))
        print(f"the same config in a new process (cache warm): first training step {r['first_step_seconds']:.1f} s "
              f"after launch, first block done {r['first_block_done_seconds']:.1f} s", flush=True)

    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"{machine_slug(result['machine'])}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
