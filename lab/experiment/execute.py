"""One way to train a population, for `lab run`, `lab sweep` and the studies: pad, shard, loop over blocks.

`run_population(trainer, keys, hparams)` initialises every run, then calls the trainer's `block`
(an evaluation and `eval_every` optimizer steps, one compiled program) once per evaluation from
the host: a progress bar advances between calls, no host callback sits inside the program, so
JAX's persistent compilation cache can keep it (lab.experiment.cache). The numbers are those of
`jit(vmap(trainer.train))`, which scans the same block. When early stopping (`train.stop_accuracy`)
has frozen every run, the loop ends there: the remaining evaluations repeat the last one.

The population is padded to `size` runs (repeating the last; dropped from the result), so a chunk
smaller than the others reuses their compiled call, and split over the local devices.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lab.core.trainer import Trainer, shift_batch


def pad_and_shard(keys: jax.Array, hparams, size: int | None = None, devices=None):
    """(keys, hparams, n, sharding): padded to `size` (and to a multiple of the devices), placed on the devices.

    `hparams` may be any pytree of per-run inputs with leading axis n.
    """
    devices = jax.local_devices() if devices is None else list(devices)
    n = keys.shape[0]
    size = max(size or n, n)
    size += -size % len(devices)
    if size > n:
        take = jnp.concatenate([jnp.arange(n), jnp.full(size - n, n - 1)])
        keys, hparams = keys[take], jax.tree.map(lambda a: a[take], hparams)
    sharding = None
    if len(devices) > 1:
        mesh = jax.sharding.Mesh(np.array(devices), ("population",))
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("population"))
        keys, hparams = jax.device_put((keys, hparams), sharding)
    return keys, hparams, n, sharding


def population_call(fn: Callable, keys: jax.Array, hparams, size: int | None = None, devices=None):
    """`jit(vmap(fn))(keys, hparams)` as numpy, padded and sharded (see the module docstring)."""
    keys, hparams, n, sharding = pad_and_shard(keys, hparams, size, devices)
    call = jax.jit(jax.vmap(fn)) if sharding is None else jax.jit(jax.vmap(fn), out_shardings=sharding)
    out = jax.device_get(call(keys, hparams))
    return jax.tree.map(lambda a: np.asarray(a)[:n], out)


def run_population(trainer: Trainer, keys: jax.Array, hparams, size: int | None = None, devices=None,
                   on_block: Callable | None = None, agents: tuple | None = None):
    """Train every run of `keys [n]` / `hparams [n]`: `(final state, history)` as numpy, leading axis n.

    `on_block(i, state, metrics)` is called on the host after block i (a progress bar; a callback that keeps
    snapshots of the state must copy it with `jax.device_get`: its buffers are reused by the next block); `agents`
    `(senders [n, P, ...], receivers [n, Q, ...])` are starting parameters (fine-tuning), fresh by default.
    """
    keys, (hparams, agents), n, sharding = pad_and_shard(keys, (hparams, agents), size, devices)
    out = {} if sharding is None else dict(out_shardings=sharding)
    init = jax.jit(jax.vmap(lambda key, hp, agents: trainer.init(trainer.run_keys(key)[0], hp, agents)), **out)
    block = jax.jit(jax.vmap(lambda state, key, index, hp: trainer.block(state, trainer.run_keys(key)[1], index, hp),
                             in_axes=(0, 0, None, 0)), donate_argnums=0, **out)
    state = init(keys, hparams, agents)
    history = []
    for index in range(trainer.n_evals + 1):
        state, metrics = block(state, keys, jnp.asarray(index, jnp.int32), hparams)
        history.append(jax.device_get(metrics))
        if on_block is not None:
            on_block(index, state, history[-1])
        if trainer.config.train.stop_accuracy > 0 and index < trainer.n_evals and np.all(jax.device_get(state.stopped)):
            # every run stopped: the later evaluations repeat this one, as the pure function's do (the same state and
            # evaluation key; this block's steps were all frozen, so its batch statistics are already NaN)
            history += [history[-1]] * (trainer.n_evals - index)
            if on_block is not None:
                for later in range(index + 1, trainer.n_evals + 1):
                    on_block(later, state, history[later])
            break
    history = jax.tree.map(lambda *evals: np.stack(evals, axis=1), *history)  # [runs, n_evals + 1, ...]
    history = shift_batch(history, axis=1)
    state = jax.device_get(state)
    return jax.tree.map(lambda a: np.asarray(a)[:n], state), jax.tree.map(lambda a: a[:n], history)
