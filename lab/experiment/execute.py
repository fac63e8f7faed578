"""One way to train a population, for `lab run`, `lab sweep` and the studies: pad, shard, loop over blocks.

`run_population(trainer, keys, hparams)` initialises every run, then, once per evaluation, calls
the trainer's `checkpoint` (the evaluation) and `steps` (the `eval_every` optimizer steps after it)
from the host, two programs compiled at once (`compile_block`): a progress bar advances between
calls, no host callback sits inside a program, so JAX's persistent compilation cache can keep them
(lab.experiment.cache). The numbers are those of `jit(vmap(trainer.train))`, which scans the same
`block`. When early stopping (`train.stop_accuracy`) has frozen every run, the loop ends there: the
remaining evaluations repeat the last one.

The population is padded to `size` runs (repeating the last; dropped from the result), so a chunk
smaller than the others reuses their compiled call, and split over the local devices (as many as
there are runs), each device's share its own program (`jax.shard_map`: 8 seeds' whole run compiled in
7.8-8.1 s against 8.1-8.9 s as one partitioned vmap, cache off, 2-core AMD EPYC, 2026-12-06). On a CPU a
device's share of 2 CHUNK runs or more trains as a `lax.map` over
`share // CHUNK` equal chunks of vmapped runs (the share padded to whole chunks: less than one run per
chunk). CHUNK is 1: each run trains alone (a vmap of one), one after the other. With the
unrolled training step (lab.core.agents) a vmap over a CPU device's runs is the slower layout: on a
shared 2-core AMD EPYC (2026-12-06, bare steps, two devices) 8 seeds ran at 34.2k games/s in chunks
of 1, 29.6k in chunks of 2 and 24.9k as one vmap of 4 a device; 32 seeds at 33.8k, 30.4k and 27.7k
(chunks of 4); one seed alone at 32.1-32.7k. The evaluation of 8 seeds took 1.02 s in chunks of 1
and 1.21 s as one vmap of 4. (With the training step as a loop, 2026-12-04 on a 2-core Xeon, chunks
of 4 were the best layout.)

On a CPU, `import lab` makes one JAX device per core (`split_cpu`), so the runs of a population
train side by side, each core on its own share. With the unrolled step one seed alone already keeps
both cores busy through XLA's threads (2-core AMD EPYC, 2026-12-06: one seed 33.0k games/s, two on two
devices 33.7k in total); with the loop it did not (2-core Intel Xeon, 2026-12-03: 8 seeds 14.4k-18.1k
games/s on two devices against 12.2k-12.6k on one). A run's numbers are those of the same run in a population
of another size: equal to float rounding (1.5e-5 after 100 steps), as a change of `size` gives. Set
`LAB_CPU_DEVICES=1` for one device; it does nothing when you have chosen the number yourself
(`jax_num_cpu_devices`, `XLA_FLAGS=--xla_force_host_platform_device_count`), when JAX has already
started, or when a GPU plugin is installed.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lab.core.trainer import Trainer, shift_batch
from lab.experiment import cache

CHUNK = 1  # most runs vmapped together on one CPU device (module doc)


def split_cpu() -> int | None:
    """Make one CPU device per core, or `LAB_CPU_DEVICES` of them (module doc): how many, or None when it did nothing."""
    from jax._src import xla_bridge

    chosen = jax.config.jax_num_cpu_devices > 0 or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
    if chosen or cache.gpu_plugin() or xla_bridge.backends_are_initialized():
        return None
    value = os.environ.get("LAB_CPU_DEVICES", "").strip()
    if value and not (value.isdigit() and int(value) > 0):
        raise ValueError(f"LAB_CPU_DEVICES={value!r}: expected a positive whole number of CPU devices, e.g. 1")
    n = int(value) if value else len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    jax.config.update("jax_num_cpu_devices", n)
    return n


def pad_and_shard(keys: jax.Array, hparams, size: int | None = None, devices=None):
    """(keys, hparams, n, sharding): padded to `size` (and to a multiple of the devices, and of a device's chunks:
    by_chunks), placed on the devices.

    `hparams` may be any pytree of per-run inputs with leading axis n.
    """
    n = keys.shape[0]
    size = max(size or n, n)
    devices = (jax.local_devices() if devices is None else list(devices))[:size]
    size += -size % len(devices)
    share = size // len(devices)
    size = (share + -share % chunks_of(share)) * len(devices)  # equal chunks on every device (by_chunks)
    if size > n:
        take = jnp.concatenate([jnp.arange(n), jnp.full(size - n, n - 1)])
        keys, hparams = keys[take], jax.tree.map(lambda a: a[take], hparams)
    sharding = None
    if len(devices) > 1:
        mesh = jax.sharding.Mesh(np.array(devices), ("population",))
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("population"))
        keys, hparams = jax.device_put((keys, hparams), sharding)
    return keys, hparams, n, sharding


def chunks_of(share: int) -> int:
    """How many chunks a device's share of runs trains in: on a CPU `share // CHUNK` (chunks of CHUNK to 2 CHUNK - 1
    runs) once it holds 2 CHUNK runs, else 1, as on an accelerator (which wants the whole share in one batch)."""
    return share // CHUNK if jax.default_backend() == "cpu" and share >= 2 * CHUNK else 1


def by_chunks(fn: Callable, sharding=None, shared: int = 0) -> Callable:
    """One run's `fn(*args)` over a population: every leaf of the arguments has a leading run axis n, but those of
    the last `shared` arguments, which every run shares. Each device's share of the runs (`sharding`, pad_and_shard's,
    or None for one device) is computed on its own (`jax.shard_map`: one device's program, not a partitioned whole),
    as a `lax.map` over `chunks_of(share)` equal chunks of vmapped runs (pad_and_shard pads n so)."""

    def local(*args):  # one device's share [share, ...], then the shared arguments
        runs, common = args[:len(args) - shared], args[len(args) - shared:]
        share = jax.tree.leaves(runs)[0].shape[0]
        k = chunks_of(share)
        # a chunk of one run too is a vmap of one: unbatched, it compiles faster but ran slower (a lone seed 24-29k
        # games/s against 31-32k, 8 seeds in chunks of one 31.5k against 33.0-33.4k, 2-core AMD EPYC, 2026-12-06)
        chunk = jax.vmap(lambda *run: fn(*run, *common))
        if k == 1:
            return chunk(*runs)
        out = jax.lax.map(lambda c: chunk(*c), jax.tree.map(lambda a: a.reshape(k, share // k, *a.shape[1:]), runs))
        return jax.tree.map(lambda a: a.reshape(share, *a.shape[2:]), out)

    if sharding is None:
        return local

    def call(*args):  # no collectives inside, so no check of what varies across devices (it refuses the scans'
        # carries that start from constants)
        specs = (sharding.spec,) * (len(args) - shared) + (jax.sharding.PartitionSpec(),) * shared
        return jax.shard_map(local, mesh=sharding.mesh, in_specs=specs, out_specs=sharding.spec, check_vma=False)(*args)

    return call


def block_programs(trainer: Trainer, sharding=None):
    """`(checkpoint(state, keys), steps(state, keys, index, hparams))`: the population's evaluation and its optimizer
    steps (`Trainer.checkpoint`, `.steps`) over seed keys (by device and chunk: by_chunks), not jitted."""
    run = lambda key: trainer.run_keys(key)[1]  # noqa: E731
    evaluate = by_chunks(lambda s, key: trainer.checkpoint(s, run(key)), sharding)
    train = by_chunks(lambda s, key, hp, index: trainer.steps(s, run(key), index, hp), sharding, shared=1)
    return evaluate, lambda state, keys, index, hparams: train(state, keys, hparams, index)


def compile_block(trainer: Trainer, state, keys: jax.Array, hparams, **jit_options):
    """`block_programs` as two `cache.Program`s, the state donated, each compiled in a thread of its own as soon as it
    is lowered (XLA compiles outside Python's lock): the steps compile while the evaluation is traced, then both
    compile at once, and each is smaller than the two in one program. Lowered through `cache.lower`: a trainer made
    from its config alone is traced once, not once per process. `state` may be abstract (`jax.eval_shape`)."""
    checkpoint, steps = block_programs(trainer, jit_options.get("out_shardings"))
    lower = functools.partial(cache.lower, fingerprint=trainer.fingerprint, donate_argnums=(0,), **jit_options)
    with ThreadPoolExecutor(2) as pool:
        steps = pool.submit(lower(steps, (state, keys, jnp.int32(0), hparams)).compile)
        checkpoint = pool.submit(lower(checkpoint, (state, keys)).compile)
        return checkpoint.result(), steps.result()


def run_population(trainer: Trainer, keys: jax.Array, hparams, size: int | None = None, devices=None,
                   on_block: Callable | None = None, agents: tuple | None = None):
    """Train every run of `keys [n]` / `hparams [n]`: `(final state, history)` as numpy, leading axis n.

    `on_block(i, state, metrics)` is called on the host after block i (a progress bar; a callback that keeps
    snapshots of the state must copy it with `jax.device_get`: its buffers are reused by the next block); `agents`
    `(senders [n, P, ...], receivers [n, Q, ...])` are starting parameters (fine-tuning), fresh by default.
    """
    keys, (hparams, agents), n, sharding = pad_and_shard(keys, (hparams, agents), size, devices)
    out = {} if sharding is None else dict(out_shardings=sharding)
    init = jax.vmap(lambda key, hp, agents: trainer.init(trainer.run_keys(key)[0], hp, agents))
    state = cache.lower(init, (keys, hparams, agents), trainer.fingerprint, **out).compile()(keys, hparams, agents)
    checkpoint, steps = compile_block(trainer, state, keys, hparams, **out)
    history, stop = [], trainer.config.train.stop_accuracy > 0
    for index in range(trainer.n_evals + 1):
        state, metrics = checkpoint(state, keys)
        every_run_stopped = stop and index < trainer.n_evals and np.all(jax.device_get(state.stopped))
        if index < trainer.n_evals and not every_run_stopped:
            state, metrics["batch"] = steps(state, keys, jnp.asarray(index, jnp.int32), hparams)
        else:  # after the last evaluation, or every run frozen: no steps, and no step statistics
            metrics["batch"] = jax.tree.map(lambda s: np.full(s.shape, np.nan, s.dtype), steps.out_info[1])
        history.append(jax.device_get(metrics))
        if on_block is not None:
            on_block(index, state, history[-1])
        if every_run_stopped:
            # the later evaluations repeat this one, as the pure function's do (the same state and evaluation key)
            history += [history[-1]] * (trainer.n_evals - index)
            if on_block is not None:
                for later in range(index + 1, trainer.n_evals + 1):
                    on_block(later, state, history[later])
            break
    history = jax.tree.map(lambda *evals: np.stack(evals, axis=1), *history)  # [runs, n_evals + 1, ...]
    history = shift_batch(history, axis=1)
    state = jax.device_get(state)
    return jax.tree.map(lambda a: np.asarray(a)[:n], state), jax.tree.map(lambda a: a[:n], history)
