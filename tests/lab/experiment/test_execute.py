"""`import lab` splits the CPU into one device per core; the runner lays a population over as many as it has runs."""

import os
import subprocess
import sys

LAYOUT = """
import jax, jax.numpy as jnp, lab
from lab.experiment.execute import pad_and_shard
print(jax.device_count())
for n in (1, 2, 5, 13, 25):
    keys, hparams, runs, sharding = pad_and_shard(jax.vmap(jax.random.key)(jnp.arange(n)), jnp.arange(n * 1.0))
    devices = 1 if sharding is None else len(sharding.mesh.devices)
    print(n, runs, keys.shape[0], devices, [float(h) for h in hparams])
"""


CHUNKS = """
import jax, jax.numpy as jnp, numpy as np, lab
from lab.experiment.execute import by_chunks, pad_and_shard
one = lambda key, h: (jax.random.uniform(key, (3,)) * h, h * 2.0)
fn = jax.vmap(one)
keys, h, n, sharding = pad_and_shard(jax.vmap(jax.random.key)(jnp.arange(17)), jnp.arange(17.0))
assert (n, keys.shape[0], sharding.mesh.devices.size) == (17, 18, 2), (n, keys.shape, sharding)  # 9 a device: 9 chunks of 1
chunked = jax.jit(by_chunks(one, sharding), out_shardings=sharding)(keys, h)
plain = jax.jit(fn)(keys, h)
assert all(np.array_equal(a, b) for a, b in zip(chunked, plain)), (chunked, plain)
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
    assert lines[3] == "5 5 6 3 [0.0, 1.0, 2.0, 3.0, 4.0, 4.0]"  # padded with the last run, dropped from results
    # chunks of CHUNK (1) run: 5 a device, 9 a device on each of the 3 devices
    assert lines[4] == "13 13 15 3 " + str([float(i) for i in range(13)] + [12.0] * 2)
    assert lines[5] == "25 25 27 3 " + str([float(i) for i in range(25)] + [24.0] * 2)


def test_chunks_over_several_devices_give_the_numbers_of_one_vmap():
    proc = layout(CHUNKS, LAB_CPU_DEVICES="2")
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


def test_a_bad_device_count_is_a_clear_error():
    proc = layout(LAB_CPU_DEVICES="two")
    assert proc.returncode != 0
    assert "LAB_CPU_DEVICES='two': expected a positive whole number" in proc.stderr
