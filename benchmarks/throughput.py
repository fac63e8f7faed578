"""Games per second of the trainer for populations of seeds, and time to 95% accuracy.

A game is one (object, message, guess) training sample: sender and receiver forward and
backward. Measured on the default reconstruction config (EGG's basic game: K=4, V=4, GRU 128,
embedding 32, vocabulary 10, max_len 5, batch 512, REINFORCE), steady state after compiling.

    python benchmarks/throughput.py [--populations 1 8 32 128] [--steps 20] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from lab import config as lab_config
from lab import hparams_from_config, make_trainer, seed_keys
from lab.core.trainer import Trainer


def train_steps(trainer: Trainer, steps: int):
    """A jitted, vmapped function running `steps` optimizer steps (no evaluation) per seed."""

    def run(key, hparams):
        state = trainer.init(key, hparams)
        state, aux = jax.lax.scan(lambda s, xs: trainer.train_step(s, xs[0], xs[1], hparams), state,
                                  (jax.random.split(key, steps), jnp.arange(steps)))
        return aux["accuracy"]

    return jax.jit(jax.vmap(run))


def games_per_second(config, population: int, steps: int, repeats: int = 2) -> dict:
    config = lab_config.replace(config, **{"train.seeds": population})
    trainer = make_trainer(config)
    keys, hparams = seed_keys(config), hparams_from_config(config, population)
    fn = train_steps(trainer, steps)
    start = time.perf_counter()
    jax.block_until_ready(fn(keys, hparams))
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(keys, hparams))
        times.append(time.perf_counter() - start)
    best = min(times)
    games = population * steps * config.train.batch_size
    return dict(population=population, steps=steps, seconds=best, first_call_seconds=compile_s,
                games_per_second=games / best, games_per_second_per_seed=games / best / population)


def time_to_accuracy(config, target: float = 0.95, steps: int = 600, eval_every: int = 25) -> dict:
    """Wall time (compile included) until one seed's greedy train accuracy reaches `target`."""
    config = lab_config.replace(config, **{"train.seeds": 1, "train.steps": steps, "train.eval_every": eval_every})
    trainer = make_trainer(config)
    fn = jax.jit(trainer.train)
    key, hparams = seed_keys(config)[0], hparams_from_config(config)
    start = time.perf_counter()
    _, history = jax.block_until_ready(fn(key, hparams))
    first_call = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(fn(key, hparams))
    run_seconds = time.perf_counter() - start
    accuracy = np.asarray(history["train"]["accuracy"])
    reached = np.flatnonzero(accuracy >= target)
    step = int(trainer.eval_steps[reached[0]]) if reached.size else None
    compile_seconds = first_call - run_seconds
    return dict(target=target, step=step, games=None if step is None else step * config.train.batch_size,
                seconds_including_compile=None if step is None else compile_seconds + run_seconds * step / steps,
                compile_seconds=compile_seconds, final_accuracy=float(accuracy[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--populations", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps timed per population")
    parser.add_argument("--out", default="benchmarks/results/throughput.json")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. train.mode=gumbel")
    args = parser.parse_args()
    config = lab_config.load(overrides=args.overrides)
    rows = []
    for population in args.populations:
        row = games_per_second(config, population, args.steps)
        rows.append(row)
        print(f"population {population:4d}: {row['games_per_second']:10.0f} games/s "
              f"({row['games_per_second_per_seed']:8.0f} per seed), first call {row['first_call_seconds']:.1f} s", flush=True)
    to95 = time_to_accuracy(config)
    print(f"one seed reaches {to95['target']:.0%} train accuracy at step {to95['step']} "
          f"after {to95['seconds_including_compile']} s (compile included)")
    result = dict(device=str(jax.devices()[0]), device_kind=jax.devices()[0].device_kind, platform=platform.platform(),
                  cpu_count=os.cpu_count(), jax=jax.__version__, config=lab_config.to_dict(config),
                  throughput=rows, time_to_accuracy=to95)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
