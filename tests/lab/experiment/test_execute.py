"""`lab.setup()` splits the CPU into one device per core; the runner lays a population over as many as it has runs."""

import os
import subprocess
import sys

LAYOUT = """
import jax, jax.numpy as jnp, lab
from lab.experiment.execute import layout
lab.setup()
print(jax.device_count())
for n in (1, 2, 5, 13, 25):
    lay = layout(n, size=32)  # size: for an accelerator only
    groups = lay.groups(jnp.arange(n * 1.0))
    assert all(g.shape == (lay.group,) for g in groups) and len(groups) == lay.size // lay.group
    devices = 1 if lay.sharding is None else len(lay.sharding.mesh.devices)
    assert all(set(g.devices()) == set(jax.devices()[:devices]) for g in groups)
    print(n, lay.size, lay.group, devices, [float(h) for h in lay.join(groups)])
"""


GROUPS = """
import jax, jax.numpy as jnp, numpy as np, lab
from lab.experiment.execute import by_device, layout
lab.setup()
one = lambda key, h, shared: (jax.random.uniform(key, (3,)) * h + shared, h * 2.0)
keys, h = jax.vmap(jax.random.key)(jnp.arange(17)), jnp.arange(17.0)
lay = layout(17)
assert (lay.size, lay.group, lay.sharding.mesh.devices.size) == (18, 2, 2), lay  # 9 calls of one run a device
program = jax.jit(by_device(one, lay.sharding, shared=1), out_shardings=lay.sharding)
grouped = lay.join([program(k, x, 1.0) for k, x in zip(lay.groups(keys), lay.groups(h))])
plain = jax.jit(jax.vmap(one, in_axes=(0, 0, None)))(keys, h, 1.0)
assert all(np.array_equal(a[:17], b) for a, b in zip(grouped, plain)), (grouped, plain)
print("ok")
"""


def layout(code: str = LAYOUT, **env) -> subprocess.CompletedProcess:
    env = {k: v for k, v in dict(os.environ, JAX_PLATFORMS="cpu", **env).items() if k != "LAB_CPU_DEVICES" or v}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)


def test_one_cpu_device_per_core_by_default():
    proc = layout(LAB_CPU_DEVICES="")
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.split()[0]) == len(os.sched_getaffinity(0))


def test_a_population_uses_as_many_devices_as_it_has_runs_and_pads_to_a_multiple():
    proc = layout(LAB_CPU_DEVICES="3")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "3"
    assert lines[1] == "1 1 1 1 [0.0]"  # one seed: one device, no padding
    assert lines[2] == "2 2 2 2 [0.0, 1.0]"
    assert lines[3] == "5 6 3 3 [0.0, 1.0, 2.0, 3.0, 4.0, 4.0]"  # padded with the last run, dropped from results
    # calls of one run a device: 5 and 9 calls of 3
    assert lines[4] == "13 15 3 3 " + str([float(i) for i in range(13)] + [12.0] * 2)
    assert lines[5] == "25 27 3 3 " + str([float(i) for i in range(25)] + [24.0] * 2)


def test_groups_over_several_devices_give_the_numbers_of_one_vmap():
    proc = layout(GROUPS, LAB_CPU_DEVICES="2")
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


def test_a_bad_device_count_is_a_clear_error():
    proc = layout(LAB_CPU_DEVICES="two")
    assert proc.returncode != 0
    assert "LAB_CPU_DEVICES='two': expected a positive whole number" in proc.stderr


def test_packed_outputs_unpack_to_the_same_tree_bit_for_bit():
    import json

    import jax
    import jax.numpy as jnp
    import numpy as np

    from lab.experiment.cache import tree_data, tree_of
    from lab.experiment.execute import Packed

    tree = {"loss": jnp.float32(0.25), "split": {"counts": jnp.arange(-2, 2, dtype=jnp.int32),
                                                 "stopped": jnp.array([True, False]),
                                                 "odd": jnp.array([np.nan, -np.inf, 1e-45], jnp.float32)}}
    runs = jax.tree.map(lambda a: jnp.stack([a, a]), tree)
    packed = jax.device_get(jax.jit(jax.vmap(Packed.of))(runs))  # [2 runs, 10]
    assert packed.vector.shape == (2, 10)
    # the tree and dtypes travel in the output tree, as the export cache keeps it (plain data, no pickle)
    treedef = tree_of(json.loads(json.dumps(tree_data(jax.tree.structure(packed)))))
    out = jax.tree.unflatten(treedef, [packed.vector]).unpack()
    assert jax.tree.structure(out) == jax.tree.structure(runs)
    for got, want in zip(jax.tree.leaves(out), jax.tree.leaves(runs)):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(np.ascontiguousarray(got).view(np.uint8), np.asarray(want).view(np.uint8))


def test_the_python_api_gives_the_numbers_of_lab_run():
    """`lab.train_seeds` is the runner `lab run` trains with: the same table, bit for bit (issue 33, one path)."""
    import numpy as np
    import pandas as pd

    import lab
    from lab.experiment import results
    from lab.experiment.run import train

    cfg = lab.load(overrides=["game.n_attributes=2", "game.n_values=3", "agents.hidden_size=16", "train.batch_size=32",
                              "train.steps=20", "train.eval_every=10", "train.seeds=2"])
    trainer = lab.make_trainer(cfg)
    _, history = lab.train_seeds(cfg, trainer)
    table = results.tidy(history, trainer.eval_steps, np.arange(cfg.train.seeds))
    pd.testing.assert_frame_equal(table, train(cfg, progress=False).table, check_exact=True)
