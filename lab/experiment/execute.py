"""One way to train runs, for `lab run`, `lab sweep`, the studies and `lab.train_seeds`: pad, shard, loop over blocks.

`train_runs(trainer, keys, hparams)` initialises every run, then, once per evaluation, calls
the trainer's `evaluation` and `steps` (the `eval_every` optimizer steps after it)
from the host, two programs compiled at once (`compile_block`): a progress bar advances between
calls, no host callback sits inside a program, so JAX's persistent compilation cache can keep them
(lab.experiment.cache). The numbers are those of `jit(vmap(trainer.train))`, which scans the same
`block`. When early stopping (`train.stop_accuracy`, `train.stop_l_info`) has frozen every run, the loop ends
there: the remaining evaluations repeat the last one.

The runs are laid out in groups (`layout`). On a CPU each device trains one run at a time: a call
trains a group of one run a device, and the host calls the same compiled programs on every group in
turn (dispatched without waiting, so the devices do not idle between them). Any number of runs
then compiles what two runs compile, and a device's run is traced as one run, not as a
batch of one (half the tracing time). With the unrolled training step (lab.core.agents) a vmap over a
CPU device's runs is the slower layout: on a shared 2-core AMD EPYC (2026-12-06, bare steps) 8 seeds
ran at 34.2k games/s one run a device at a time, 29.6k two at a time, 24.9k as one vmap of 4 a device.
Against a `lax.map` over each device's runs inside one program, the default run's programs (8 seeds)
compiled in 5.8-6.3 s instead of 8.0-8.3 s (cache off, the same machine and day; the groups, the
tracing of one run and the init compiled with the other two at XLA level 0 together). On an
accelerator a single call trains every run, padded to `size` runs (repeating the last;
dropped from the result) so fewer runs reuse the compiled call of more. A call's runs are
split over its devices (as many as it has runs), each device's share its own program (`jax.shard_map`).

On a CPU, `lab.setup()` makes one JAX device per core (`split_cpu`), so the runs
train side by side, each core on its own share. With the unrolled step one seed alone already keeps
both cores busy through XLA's threads (2-core AMD EPYC, 2026-12-06: one seed 33.0k games/s, two on two
devices 33.7k in total); with the loop it did not (2-core Intel Xeon, 2026-12-03: 8 seeds 14.4k-18.1k
games/s on two devices against 12.2k-12.6k on one). A run's numbers are those of the same run among another number
of runs: equal to float rounding (1.5e-5 after 100 steps), as a change of `size` gives. Set
`LAB_CPU_DEVICES=1` for one device; it does nothing when you have chosen the number yourself
(`jax_num_cpu_devices`, `XLA_FLAGS=--xla_force_host_platform_device_count`), when JAX has already
started, or when a GPU plugin is installed.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lab.core.trainer import Trainer, shift_batch
from lab.experiment import cache
from lab.experiment.divergence import KEY, Tracker


def split_cpu() -> int | None:
    """Make one CPU device per core, or `LAB_CPU_DEVICES` of them (module doc): how many, or None when it did nothing."""
    chosen = jax.config.jax_num_cpu_devices > 0 or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
    if chosen or cache.gpu_plugin():
        return None
    value = os.environ.get("LAB_CPU_DEVICES", "").strip()
    if value and not (value.isdigit() and int(value) > 0):
        raise ValueError(f"LAB_CPU_DEVICES={value!r}: expected a positive whole number of CPU devices, e.g. 1")
    n = int(value) if value else len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:  # JAX has started: too late to choose its devices
        return None
    return n


def setup() -> None:
    """What the lab's commands, its runner, the studies, the tests and the notebooks call first (importing changes
    nothing): JAX's threefry keys in their non-partitionable form, XLA's quicker CPU compiles (lab.experiment.cache),
    one CPU device per core (`split_cpu`) and the persistent compilation cache. Call it before JAX computes anything:
    XLA's flags and the devices are read when JAX starts. Calling it again does nothing more.

    Randomness: the lab draws with threefry keys in their non-partitionable form: under vmap over many
    keys the partitionable form (JAX's default) runs 30x slower on a CPU, and draws other numbers; the same seed gives
    the same numbers after `setup()`."""
    jax.config.update("jax_threefry_partitionable", False)
    cache.quick_compiles()
    split_cpu()
    cache.enable()


def init_options() -> dict | None:
    """XLA's options for the init, which runs once a group: on a CPU level 0, where it compiles in 0.4 s instead of 0.7
    and runs in 4 ms instead of 2 (one seed, 2-core AMD EPYC, 2026-12-06)."""
    return {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else None


class Layout(NamedTuple):
    """How `n` runs train: padded to `size` runs (repeating the last; dropped from the result), in
    calls of `group` runs each, a call's runs split over the devices by `sharding` (None: one device)."""

    n: int
    size: int
    group: int
    sharding: jax.sharding.NamedSharding | None

    def groups(self, tree) -> list:
        """A pytree whose leaves have a leading run axis n, as `size // group` pytrees `[group, ...]` on the devices
        (cut on the host: no program to compile)."""
        keys = lambda a: jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key)  # noqa: E731
        host = jax.tree.map(lambda a: np.asarray(jax.random.key_data(a) if keys(a) else a), tree)
        take = np.minimum(np.arange(self.size), self.n - 1).reshape(-1, self.group)
        parts = [jax.device_put(jax.tree.map(lambda a: a[runs], host), self.sharding) for runs in take]
        return [jax.tree.map(lambda a, part: jax.random.wrap_key_data(part, impl=jax.random.key_impl(a)) if keys(a)
                             else part, tree, part) for part in parts]

    def join(self, parts: list):
        """The groups' pytrees as one, on the host (numpy), the padding runs kept."""
        return jax.tree.map(lambda *leaves: np.concatenate(leaves), *jax.device_get(parts))


def layout(n: int, size: int | None = None, devices=None) -> Layout:
    """The runner's `Layout` of n runs over the local devices (or `devices`; module doc): on a CPU one run a device in
    each call; on an accelerator every run in one call, padded to `size` runs when it is given (so fewer
    runs than the others reuse their compiled call). A call uses as many devices as it has runs."""
    devices = jax.local_devices() if devices is None else list(devices)
    if devices[0].platform == "cpu":
        devices = devices[:n]
        group = len(devices)
        size = n + -n % group
    else:
        size = max(size or n, n)
        devices = devices[:size]
        size = group = size + -size % len(devices)
    sharding = None
    if len(devices) > 1:
        mesh = jax.sharding.Mesh(np.array(devices), ("runs",))
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("runs"))
    return Layout(n, size, group, sharding)


def by_device(fn: Callable, sharding=None, shared: int = 0) -> Callable:
    """One run's `fn(*args)` over a group of runs, vmapped (one run alone is not): every leaf of the arguments has a
    leading run axis, but those of the last `shared` arguments, which every run shares. With a `sharding` (a
    `Layout`'s), each device's share of the runs is computed on its own (`jax.shard_map`: one device's program, not
    a partitioned whole)."""

    def local(*args):  # one device's runs
        runs, common = args[:len(args) - shared], args[len(args) - shared:]
        if jax.tree.leaves(runs)[0].shape[0] == 1:  # one run (a CPU's layout): not batched, traced in half the time
            return jax.tree.map(lambda a: a[None], fn(*jax.tree.map(lambda a: a[0], runs), *common))
        return jax.vmap(fn, in_axes=(0,) * len(runs) + (None,) * shared)(*args)

    if sharding is None:
        return local

    def call(*args):  # no collectives inside, so no check of what varies across devices (it refuses the scans'
        # carries that start from constants)
        specs = (sharding.spec,) * (len(args) - shared) + (jax.sharding.PartitionSpec(),) * shared
        return jax.shard_map(local, mesh=sharding.mesh, in_specs=specs, out_specs=sharding.spec, check_vma=False)(*args)

    return call


class Packed:
    """The leaves of a pytree of 32-bit numbers (metrics, step statistics) as one vector `[..., n]`, its bits kept.

    A program's every output is a buffer of its own, filled by a kernel of its own: returned as one vector (and stacked
    as one by `lab.core.evaluate.Ravel` in their loops), the 30-odd statistics of the default run's two programs cost
    about 30 fewer kernels to compile (a few milliseconds each). `Packed.of(tree)` in a program; `.unpack()` on the
    host gives the tree back, as numpy arrays with the vector's leading axes (the runs)."""

    def __init__(self, vector, spec: tuple):
        self.vector, self.spec = vector, spec  # spec: (treedef, ((shape, dtype name), ...))

    @classmethod
    def of(cls, tree) -> "Packed":
        leaves, treedef = jax.tree.flatten(tree)
        bits = [jax.lax.bitcast_convert_type(leaf.astype(jnp.int32) if leaf.dtype == bool else leaf, jnp.float32)
                for leaf in leaves]
        spec = (treedef, tuple((tuple(leaf.shape), leaf.dtype.name) for leaf in leaves))
        return cls(jnp.concatenate([b.reshape(-1) for b in bits]), spec)

    def unpack(self):
        treedef, shapes = self.spec
        vector = np.asarray(self.vector)
        ends = np.cumsum([0, *(int(np.prod(shape)) for shape, _ in shapes)])
        leaves = []
        for (shape, dtype), start, end in zip(shapes, ends, ends[1:]):
            part = vector[..., start:end].reshape(vector.shape[:-1] + shape)
            leaves.append(part.view(np.int32).astype(bool) if dtype == "bool" else part.view(np.dtype(dtype)))
        return jax.tree.unflatten(treedef, leaves)


jax.tree_util.register_pytree_node(Packed, lambda p: ((p.vector,), p.spec), lambda spec, children: Packed(children[0], spec))


def finite(tree) -> jax.Array:
    """[] bool: every floating-point number of `tree` is finite."""
    leaves = [leaf for leaf in jax.tree.leaves(tree) if jnp.issubdtype(leaf.dtype, jnp.floating)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]))


def block_programs(trainer: Trainer, sharding=None):
    """`(evaluation(state, keys), steps(state, keys, index, hparams))`: the runs' evaluation and their optimizer
    steps (`Trainer.evaluation`, `.steps`) over seed keys (a `Layout`'s group of them: by_device), not jitted; the
    metrics (with whether the agents' parameters are finite: lab.experiment.divergence) and the step statistics
    `Packed`."""
    run = lambda key: trainer.run_keys(key)[1]  # noqa: E731
    packed = lambda state, stats: (state, Packed.of(stats))  # noqa: E731

    def evaluation(state, key):
        state, metrics = trainer.evaluation(state, run(key))
        return packed(state, (metrics, {"senders": finite(state.senders), "receivers": finite(state.receivers)}))

    evaluate = by_device(evaluation, sharding)
    train = by_device(lambda s, key, hp, index: packed(*trainer.steps(s, run(key), index, hp)), sharding, shared=1)
    return evaluate, lambda state, keys, index, hparams: train(state, keys, hparams, index)


@cache.paused_gc()
def compile_block(trainer: Trainer, state, keys: jax.Array, hparams, **jit_options):
    """`block_programs` as two `cache.Program`s, the state donated, each compiled in a thread of its own as soon as it
    is lowered (XLA compiles outside Python's lock): the steps compile while the evaluation is traced, then both
    compile at once, and each is smaller than the two in one program. Lowered through `cache.lower`: a trainer made
    from its config alone is traced once, not once per process. `state` may be abstract (`jax.eval_shape`)."""
    with ThreadPoolExecutor(2) as pool:
        evaluation, steps = submit_block(pool, trainer, state, keys, hparams, **jit_options)
        return evaluation.result(), steps.result()


def submit_block(pool: ThreadPoolExecutor, trainer: Trainer, state, keys, hparams, **jit_options):
    """compile_block's two programs lowered, their compiles submitted to `pool`: two futures."""
    evaluation, steps = block_programs(trainer, jit_options.get("out_shardings"))
    lower = functools.partial(cache.lower, fingerprint=trainer.fingerprint, donate_argnums=(0,), **jit_options)
    steps = pool.submit(lower(steps, (state, keys, jnp.int32(0), hparams)).compile)
    return pool.submit(lower(evaluation, (state, keys)).compile), steps


@cache.paused_gc()
def compile_run(trainer: Trainer, keys: jax.Array, hparams, agents=None, **jit_options):
    """`(init(keys, hparams, agents), evaluation, steps)` for a `Layout`'s group of runs: the runs' fresh states
    (by_device) and compile_block's two programs, the three compiled at once. The init is lowered first: the states'
    shapes are those of its outputs (the init traced once, not once more by `jax.eval_shape`)."""
    sharding = jit_options.get("out_shardings")
    init = by_device(lambda key, hp, agents: trainer.init(trainer.run_keys(key)[0], hp, agents), sharding)
    with ThreadPoolExecutor(3) as pool:
        init = cache.lower(init, (keys, hparams, agents), trainer.fingerprint, **jit_options)
        compiled_init = pool.submit(init.compile, init_options())
        state = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), init.out_info)
        evaluation, steps = submit_block(pool, trainer, state, keys, hparams, **jit_options)
        return compiled_init.result(), evaluation.result(), steps.result()


def train_runs(trainer: Trainer, keys: jax.Array, hparams, size: int | None = None, devices=None,
                   on_block: Callable | None = None, agents: tuple | None = None):
    """Train every run of `keys [n]` / `hparams [n]`: `(final state, history)` as numpy, leading axis n.

    `on_block(i, state, metrics)` is called on the host after block i (a progress bar; a callback that keeps
    snapshots of the state must copy it with `jax.device_get`: its buffers are reused by the next block; the padding
    runs included); `agents` `(senders [n, P, ...], receivers [n, Q, ...])` are starting parameters (fine-tuning),
    fresh by default. `size` and `devices`: `layout`.
    """
    lay = layout(keys.shape[0], size, devices)
    keys, hparams, agents = lay.groups(keys), lay.groups(hparams), lay.groups(agents)
    out = {} if lay.sharding is None else dict(out_shardings=lay.sharding)
    init, evaluation, steps = compile_run(trainer, keys[0], hparams[0], agents[0], **out)
    states = [init(*group) for group in zip(keys, hparams, agents)]
    history, stop = [], trainer.config.train.stops
    divergence, batch_before, frozen = Tracker(lay.size), None, None
    for index in range(trainer.n_evals + 1):
        states, metrics = zip(*(evaluation(state, key) for state, key in zip(states, keys)))
        stopped = np.zeros(lay.size, bool)
        if stop and index < trainer.n_evals:
            stopped = np.concatenate(jax.device_get([s.stopped for s in states]))
        if index < trainer.n_evals and not np.all(stopped):  # dispatched at once: the host reads the evaluation after
            at = jnp.asarray(index, jnp.int32)
            states, batch = zip(*(steps(state, key, at, hp) for state, key, hp in zip(states, keys, hparams)))
        else:  # after the last evaluation, or every run frozen: no steps, and no step statistics
            template = steps.out_info[1]
            batch = [Packed(np.full(template.vector.shape, np.nan, np.float32), template.spec)] * len(states)
        measured, batch = lay.join(list(zip(metrics, batch)))
        (metrics, finite_agents), batch = measured.unpack(), batch.unpack()
        divergence.update(index * trainer.config.train.eval_every, batch_before, finite_agents, metrics, frozen)
        history.append(dict(metrics, batch=batch))
        batch_before, frozen = batch, stopped
        every_run_done = index < trainer.n_evals and bool(np.all(stopped | divergence.diverged))
        if every_run_done:
            # the later evaluations repeat this one, as the pure function's do (the same state and evaluation key); the
            # rows after a run diverged are dropped from its table
            history += [history[-1]] * (trainer.n_evals - index)
        if on_block is not None:
            state = states[0] if len(states) == 1 else lay.join(states)
            for block in range(index, len(history)):  # this block, and the repeated ones when every run stopped
                on_block(block, state, history[block])
        if every_run_done:
            break
    history = jax.tree.map(lambda *evals: np.stack(evals, axis=1), *history)  # [runs, n_evals + 1, ...]
    history = shift_batch(history, axis=1)
    history = jax.tree.map(lambda a: a[:lay.n], history)
    return jax.tree.map(lambda a: a[:lay.n], lay.join(states)), {**history, KEY: divergence.record(lay.n)}
