"""Time of the loss decomposition (lab.analysis.decompose_agents) for n objects, and its cost in training.

One sampled message per object, then every message teacher-forced under every object (n^2
pairs, in blocks) and the logsumexp estimator. Objects: n distinct ones of K=6 attributes x
V=10 values; agents: the config's (GRU 128, vocabulary 10) at max_len 10, untrained, so
messages are as diverse as they get (the fewest shared prefixes: the slowest case). Timed
after compiling, best of `--repeats`. Also: one evaluation of the default trainer (8 seeds,
train split of 205 objects) with and without the decomposition, against a block of training.

    python benchmarks/analysis.py [--sizes 1024 4096] [--max-len 10] [--out FILE] [key=value ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import numpy as np

import games
from lab import analysis
from lab import config as lab_config
from lab.agents import make_agents
from lab.train import Trainer, hparams_from_config, seed_keys


def best_time(fn, *args, repeats: int) -> tuple[float, float]:
    """(first call, best of `repeats` later calls) in seconds."""
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return first, min(times)


def decomposition_time(config, n: int, repeats: int) -> dict:
    g = config.game
    objects = np.asarray(games.objects.object_set(g.n_attributes, g.n_values, n, seed=0))
    sender, receiver = make_agents(config, jax.random.key(0))
    fn = jax.jit(lambda objects, key: analysis.decompose_agents(sender, receiver, objects, key))
    first, best = best_time(fn, objects, jax.random.key(1), repeats=repeats)
    terms = fn(objects, jax.random.key(1))
    n_prefixes = sum(min(config.agents.vocab_size**t, n) for t in range(config.agents.max_len))
    return dict(n=n, seconds=best, first_call_seconds=first, pairs=n * n, pairs_per_second=n * n / best,
                decoder_steps=n * n_prefixes, l_info=float(terms.l_info), l_adapt=float(terms.l_adapt))


def evaluation_overhead(repeats: int) -> dict:
    """Seconds of one evaluation of the default trainer (8 seeds) with and without the decomposition."""
    config = lab_config.load()
    trainer = Trainer(config)
    keys = seed_keys(config)
    hparams = hparams_from_config(config, len(keys))
    state = jax.jit(jax.vmap(trainer.init))(keys, hparams)

    class WithoutDecomposition(Trainer):
        def decompose(self, *args):
            return {}

    with_terms = best_time(jax.jit(jax.vmap(trainer.evaluate)), state, keys, hparams, repeats=repeats)[1]
    without_terms = best_time(jax.jit(jax.vmap(WithoutDecomposition(config).evaluate)), state, keys, hparams, repeats=repeats)[1]
    block = best_time(jax.jit(jax.vmap(lambda s, k, h: trainer.train_block(s, k, 0, h))), state, keys, hparams, repeats=1)[1]
    return dict(seeds=len(keys), n_train=len(trainer.world.train), eval_every=config.train.eval_every,
                evaluation_seconds=with_terms, evaluation_without_decomposition_seconds=without_terms,
                training_block_seconds=block, overhead_fraction=(with_terms - without_terms) / (block + without_terms))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--max-len", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-training", action="store_true", help="skip the evaluation-overhead measurement")
    parser.add_argument("--out", default="benchmarks/results/analysis.json")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. agents.hidden_size=64")
    args = parser.parse_args()
    config = lab_config.load(overrides=["game.n_attributes=6", "game.n_values=10", f"agents.max_len={args.max_len}",
                                        *args.overrides])
    a = config.agents
    print(f"decomposition, {a.cell.upper()} {a.hidden_size}, vocabulary {a.vocab_size}, max_len {a.max_len}, "
          f"{os.cpu_count()} CPU cores", flush=True)
    rows = []
    for n in args.sizes:
        row = decomposition_time(config, n, args.repeats)
        rows.append(row)
        print(f"n = {n:5d}: {row['seconds']:7.2f} s ({row['pairs_per_second']:9.0f} pairs/s), "
              f"first call {row['first_call_seconds']:.1f} s", flush=True)
    result = dict(device=str(jax.devices()[0]), platform=platform.platform(), cpu_count=os.cpu_count(), jax=jax.__version__,
                  agents=lab_config.to_dict(config)["agents"], decomposition=rows)
    if not args.skip_training:
        overhead = evaluation_overhead(args.repeats)
        result["evaluation_overhead"] = overhead
        print(f"default trainer, {overhead['seeds']} seeds: one evaluation {overhead['evaluation_seconds']:.2f} s "
              f"({overhead['evaluation_without_decomposition_seconds']:.2f} s without the decomposition); "
              f"{overhead['eval_every']} training steps {overhead['training_block_seconds']:.2f} s; "
              f"the decomposition adds {overhead['overhead_fraction']:.0%}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
