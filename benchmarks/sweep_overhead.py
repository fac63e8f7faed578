"""Overhead of `lab sweep` over one vmapped `train` call of the same runs.

The sweep is sweeps/lr_seeds.yaml: the small config, 8 learning rates x 8 seeds = 64 runs, one
compile group. It is timed from the plan to every file written (parquet parts, configs,
checkpoints); the baseline is `jax.jit(jax.vmap(make_trainer(config).train))` of the same 64
(learning rate, seed) runs, from a fresh trainer to the metrics on the host. Both compile from
scratch (the persistent compilation cache is switched off), in alternation, best of `--repeats`.
Goal: ratio under 1.3. On a shared machine both times swing with the load; `overhead_seconds`
(the sweep's time outside its compiled call: planning, building the trainer, tidy tables, files) does not.

    python benchmarks/sweep_overhead.py [--sweep sweeps/lr_seeds.yaml] [--repeats 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp

import lab
from lab.core.hparams import concatenate
from lab.experiment.sweep import calls as sweep_calls
from lab.experiment.sweep import load_plan, run_sweep

lab.setup()


def single_call(plan) -> tuple[float, float]:
    """(seconds from nothing compiled, seconds of a second call) of one jit(vmap(train)) over the plan's runs."""
    start = time.perf_counter()
    trainer = lab.make_trainer(plan.cells[0].config)
    keys = jnp.concatenate([lab.seed_keys(c.config) for c in plan.cells])
    hparams = concatenate([lab.hparams_from_config(c.config, c.config.train.seeds) for c in plan.cells])
    call = jax.jit(jax.vmap(trainer.train))
    jax.device_get(call(keys, hparams)[1])
    first = time.perf_counter() - start
    start = time.perf_counter()
    jax.device_get(call(keys, hparams)[1])
    return first, time.perf_counter() - start


def sweep(plan, folder: Path) -> tuple[float, float]:
    """(seconds of the whole sweep, seconds inside its compiled call)."""
    inside = []
    call = sweep_calls.train_runs

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            inside.append(time.perf_counter() - start)

    sweep_calls.train_runs = timed
    try:
        start = time.perf_counter()
        run_sweep(plan, folder, progress=False, log=lambda _: None)
        return time.perf_counter() - start, sum(inside)
    finally:
        sweep_calls.train_runs = call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", default=str(Path(__file__).resolve().parents[1] / "sweeps" / "lr_seeds.yaml"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/sweep_overhead.json")
    args = parser.parse_args()
    jax.config.update("jax_enable_compilation_cache", False)

    plan = load_plan(args.sweep)
    assert len(plan.groups) == 1, "the overhead is measured on a sweep of one compile group"
    singles, steady, sweeps, overheads = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            first, second = single_call(plan)
            singles.append(first)
            steady.append(second)
            total, inside = sweep(plan, Path(tmp) / f"sweep-{repeat}")
            sweeps.append(total)
            overheads.append(total - inside)
            print(f"repeat {repeat}: single call {first:.1f} s (second call {second:.1f} s), "
                  f"sweep {total:.1f} s of which {total - inside:.1f} s outside its compiled call")
    result = dict(
        sweep_file=args.sweep, cells=len(plan.cells), runs=plan.n_runs, compile_groups=len(plan.groups),
        steps=plan.cells[0].config.train.steps, repeats=args.repeats,
        single_call_seconds=min(singles), single_call_second_call_seconds=min(steady), sweep_seconds=min(sweeps),
        ratio=min(sweeps) / min(singles), overhead_seconds=min(overheads),
        all_single_call_seconds=singles, all_sweep_seconds=sweeps, all_overhead_seconds=overheads,
        devices=[str(d) for d in jax.local_devices()], jax=jax.__version__, machine=platform.machine(),
        processor=platform.processor() or platform.machine(),
    )
    print(f"sweep {result['sweep_seconds']:.1f} s / single call {result['single_call_seconds']:.1f} s = ratio {result['ratio']:.3f} "
          f"(goal < 1.3); {result['overhead_seconds']:.1f} s outside the compiled call")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
