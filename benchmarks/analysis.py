"""Time and error of the loss decomposition (lab.analysis.decompose_agents) for n objects, and its cost in training.

Two ways to compute it, both from one sampled message per object: exact (every message
teacher-forced under every object, n^2 pairs in blocks) and estimated (`columns=k`: the ideal
listener's normaliser from k priority-sampled objects per message, about n / k times fewer
pairs). Objects: n distinct ones of K=6 attributes x V=10 values; agents: the config's (GRU 128,
vocabulary 10) at max_len 10, twice: untrained (diffuse messages, the most diverse prefixes) and
trained for `--train-steps` REINFORCE steps on the largest object set (a peaked, partly
ambiguous language: the case the estimator has to get right). The error is the estimate minus
the exact value of L_info on the same messages, for several keys. Timed after compiling, best of
`--repeats`. Also: one evaluation of the default trainer (8 seeds, train split of 205 objects)
with and without the decomposition, against a block of training.

    python benchmarks/analysis.py [--sizes 1024 4096] [--exact-sizes 1024 4096] [--columns 64] [--out FILE] [key=value ...]
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
import lab
from lab import analysis
from lab import config as lab_config
from lab.core.agents.forcing import message_log_probs

lab.setup()


def best_time(fn, *args, repeats: int):
    """(output, first call, best of `repeats` later calls) in seconds; the first call compiles."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return out, first, min(times) if times else first


def trained_agents(config, n: int, steps: int):
    """A sender and receiver trained on n objects (split none), and those objects."""
    config = lab_config.replace(config, **{"game.n_objects": n, "game.split": "none", "train.steps": steps, "train.seeds": 1,
                                           "train.eval_every": steps})
    trainer = lab.make_trainer(config)
    start = time.perf_counter()
    state, history = lab.train_seeds(config, trainer)
    accuracy = float(np.asarray(history["train"]["accuracy"])[0, -1])
    print(f"trained {steps} steps on {n} objects in {time.perf_counter() - start:.0f} s: train accuracy {accuracy:.2f}", flush=True)
    first = jax.tree.map(lambda a: a[0], state)
    return trainer.sender(first), trainer.receiver(first), np.asarray(trainer.split_objects["train"]), accuracy


def decomposition_rows(sender, receiver, objects, sizes, exact_sizes, columns: int, keys: int, repeats: int) -> list[dict]:
    """Per n: the estimate's time and L_info for `keys` keys; for n in `exact_sizes` the exact ones and the error.

    An exact n above 1024 is timed by its first call (compile included, a few seconds of some
    hundred) and its error measured on one key: each call takes minutes on 2 cores.
    """
    exact = jax.jit(lambda objects, key: analysis.decompose_agents(sender, receiver, objects, key))
    estimate = jax.jit(lambda objects, key: analysis.decompose_agents(sender, receiver, objects, key, columns=columns))
    rows = []
    for n in sizes:
        _, first, seconds = best_time(estimate, objects[:n], jax.random.key(1), repeats=repeats)
        row = dict(n=n, columns=columns, estimate_seconds=seconds, estimate_first_call_seconds=first)
        line = f"  n = {n:5d}: estimate ({columns} columns) {seconds:6.2f} s"
        if n in exact_sizes:
            large = n > 1024
            terms, first, seconds = best_time(exact, objects[:n], jax.random.key(1), repeats=0 if large else repeats)
            terms = [terms] + [exact(objects[:n], jax.random.key(k)) for k in range(2, 1 + (1 if large else keys))]
            row.update(exact_seconds=seconds, exact_first_call_seconds=first, l_info=[float(t.l_info) for t in terms],
                       l_adapt=[float(t.l_adapt) for t in terms])
            row["estimate_l_info"] = [float(estimate(objects[:n], jax.random.key(k)).l_info) for k in range(1, len(terms) + 1)]
            errors = np.subtract(row["estimate_l_info"], row["l_info"])
            row.update(l_info_error=errors.tolist(), l_info_max_abs_error=float(np.max(np.abs(errors))))
            line += (f", exact {seconds:6.2f} s ({seconds / row['estimate_seconds']:.0f}x); L_info {np.mean(row['l_info']):.3f} nats, "
                     f"estimate error {errors.mean():+.4f} (max |error| {row['l_info_max_abs_error']:.4f}, {len(terms)} keys)")
        rows.append(row)
        print(line, flush=True)
    return rows


def evaluation_overhead(repeats: int) -> dict:
    """Seconds of one evaluation of the default trainer (8 seeds), of its decomposition's teacher forcing, of a block."""
    config = lab_config.load()
    trainer = lab.make_trainer(config)
    keys = lab.seed_keys(config)
    hparams = lab.hparams_from_config(config, len(keys))
    state = jax.jit(jax.vmap(trainer.init))(keys, hparams)
    objects = trainer.eval_sets.episodes.target  # [splits, n, K], padded to one size as the evaluation sees them

    def teacher_forcing(state, key):  # what the decomposition adds: every split's messages under every object
        sender = trainer.sender(state)
        return [message_log_probs(sender, o, sender.sample(o, key).symbols) for o in objects]

    evaluation = best_time(jax.jit(jax.vmap(trainer.evaluate)), state, keys, repeats=repeats)[2]
    decomposition = best_time(jax.jit(jax.vmap(teacher_forcing)), state, keys, repeats=repeats)[2]
    block = best_time(jax.jit(jax.vmap(lambda s, k, h: trainer.train_block(s, k, 0, h))), state, keys, hparams, repeats=1)[2]
    return dict(seeds=len(keys), n_train=len(trainer.world.train), eval_every=config.train.eval_every,
                evaluation_seconds=evaluation, decomposition_seconds=decomposition,
                training_block_seconds=block, overhead_fraction=decomposition / (block + evaluation))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--exact-sizes", type=int, nargs="*", default=[1024, 4096], help="sizes also computed exactly")
    parser.add_argument("--columns", type=int, default=64, help="sampled objects per message of the estimate")
    parser.add_argument("--keys", type=int, default=3, help="sampling keys the error is measured over")
    parser.add_argument("--max-len", type=int, default=10)
    parser.add_argument("--train-steps", type=int, default=600, help="REINFORCE steps of the trained agents (0: skip them)")
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
    result = dict(device=str(jax.devices()[0]), platform=platform.platform(), cpu_count=os.cpu_count(), jax=jax.__version__,
                  agents=lab_config.to_dict(config)["agents"], decomposition={})
    built = lab.make_trainer(config).agents
    sender_params, receiver_params = built.init(jax.random.key(0))
    agents = {"untrained": (built.sender(sender_params), built.receiver(receiver_params),
                            np.asarray(games.objects.object_set(config.game.n_attributes, config.game.n_values, max(args.sizes))))}
    if args.train_steps:
        *trained, accuracy = trained_agents(config, max(args.sizes), args.train_steps)
        agents[f"trained ({args.train_steps} steps, train accuracy {accuracy:.2f})"] = tuple(trained)
    for name, (sender, receiver, objects) in agents.items():
        print(name, flush=True)
        result["decomposition"][name] = decomposition_rows(sender, receiver, objects, args.sizes, args.exact_sizes, args.columns,
                                                           args.keys, args.repeats)
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
