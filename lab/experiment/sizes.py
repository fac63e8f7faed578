"""What a config will cost, estimated before anything is allocated, and refused when it cannot fit this machine.

`estimate(config, runs)` adds up the large terms of a run (a rough model, within a factor of about two of what
a run measures): the world listed on the host, the evaluation of every object of each split (greedy and sampled
messages read at every position) and its n^2 parts (topsim, the loss decomposition, on at most `eval_size`
objects), the training step's activations kept for the backward pass, the parameters with Adam's moments, and
the tidy table of every evaluation. `check` refuses, with one line naming the fields and the estimate, a config
that needs more memory than this machine has free, lists more objects than a run can split in reasonable time,
or asks for more games than weeks of training; `lab run/sweep/study --no-size-check` skips it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import games
from games.fields import ConfigError
from games.objects import n_possible

FLOAT = 4  # bytes of a float32 or int32
SLACK = 2.0  # the training step: values kept for the backward pass beside those of the forward
MAX_LISTED_OBJECTS = 10_000_000  # a world of all V^K objects is split object by object on the host
MAX_GAMES = 10**12  # steps x batch x seeds x senders: at 1e6 games/s (an accelerator) more than 11 days


@dataclass(frozen=True)
class Estimate:
    parts: dict[str, tuple[float, tuple[str, ...]]]  # each term: its bytes and the fields it grows with

    @property
    def bytes(self) -> float:
        return sum(size for size, _ in self.parts.values())

    def largest(self, config) -> str:
        """The largest term, with the values of its fields."""
        name, (size, fields) = max(self.parts.items(), key=lambda item: item[1][0])
        values = ", ".join(f"{key}={getattr(getattr(config, key.split('.')[0]), key.split('.')[1])}" for key in fields)
        return f"{name} {_gib(size)}" + (f" ({values})" if values else "")


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def available_memory() -> float:
    """Bytes this process may still allocate: the host's available memory (on an accelerator, its memory limit)."""
    import jax

    device = jax.local_devices()[0]
    if device.platform != "cpu":
        limit = (device.memory_stats() or {}).get("bytes_limit")
        if limit:
            return float(limit)
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def parallel_runs(runs: int) -> int:
    """Runs whose programs hold memory at once: one a device on a CPU, every run on an accelerator (execute.layout)."""
    import jax

    devices = jax.local_devices()
    return min(runs, len(devices)) if devices[0].platform == "cpu" else runs


def estimate(config, runs: int, parallel: int | None = None) -> Estimate:
    """The memory of `runs` runs of `config`, `parallel` of them computing at once (default: parallel_runs)."""
    g, a, t, p = config.game, config.agents, config.train, config.population
    parallel = parallel_runs(runs) if parallel is None else parallel
    n = g.n_total
    K, V, H, E, L, S = g.n_attributes, g.n_values, a.hidden_size, a.embedding_size, a.max_len, a.vocab_size
    width = "agents.width" if a.cell == "transformer" else "agents.hidden_size"  # the field the agents' size grows with
    candidates = games.game_class(g.kind).candidates_of(g)
    pairs = p.n_senders * p.n_receivers
    # one object at one message position: both agents' hidden states and gates, the sender's log-probabilities and
    # symbols, the receiver's reading (K x V) or its candidates (K=5, V=10, n=80000 train objects, one seed: 1.7 GiB
    # measured above the default config's peak, 1.5 GiB estimated)
    # (a transformer's layers each keep the residual stream, queries/keys/values, attention out and its MLP's 4 x width twice)
    states = 14 * a.layers * a.width if a.cell == "transformer" else 6 * H
    per_position = states + 3 * S + 2 * K * V + candidates * H
    largest_split = max(g.n_train, n - g.n_train if g.split != "none" else 0)
    m = min(largest_split, t.eval_size)
    listed = n_possible(K, V) if g.n_objects == 0 else 2 * n  # all V^K listed, or sampled codes
    agent = 2 * K * V * H + (S + 1) * E + 4 * (E + H) * H + H * S  # an encoder or reader of K x V, embeddings, a cell
    if a.cell == "transformer":  # an encoder of K x V, symbol and position embeddings, 12 width^2 a block, the heads
        agent = 2 * K * V * a.width + (S + L) * a.width + 12 * a.layers * a.width**2 + a.width * S
    n_metrics = 40 + 4 * (g.frequency_bins if g.groups == "frequency" else V if g.groups == "attribute" else 1)
    parts = {
        "the lab itself (JAX, compiled programs)": (0.5 * 2**30, ()),
        "the world's objects": (listed * (8 + 3 * 8 * K), ("game.n_attributes", "game.n_values", "game.n_objects")),
        "the evaluation of every object": (parallel * pairs * largest_split * L * per_position * FLOAT,
                                           ("game.n_attributes", "game.n_values", "game.n_objects", width,
                                            "agents.max_len", "train.seeds")),
        "topsim and the decomposition's n^2 pairs": (parallel * p.n_senders * m * m * 4 * FLOAT,
                                                     ("train.eval_size", "agents.max_len")),
        "the training step's activations": (parallel * p.n_senders * t.batch_size * L * per_position * FLOAT * SLACK,
                                            ("train.batch_size", width, "agents.max_len", "population.n_senders")),
        "parameters and Adam's moments": (runs * (p.n_senders + p.n_receivers) * agent * 4 * FLOAT,
                                          (width, "agents.vocab_size", "train.seeds")),
        "the table of every evaluation": (runs * (t.n_evals + 1) * pairs * 3 * n_metrics * 100,
                                          ("train.steps", "train.eval_every", "train.seeds")),
    }
    return Estimate(parts)


def check_world(config) -> None:
    """Refuse a world of all V^K objects too large to list and split (ConfigError, one line)."""
    g = config.game
    if g.n_objects == 0 and n_possible(g.n_attributes, g.n_values) > MAX_LISTED_OBJECTS:
        raise ConfigError(f"game.n_attributes={g.n_attributes}, game.n_values={g.n_values}: V^K = "
                          f"{n_possible(g.n_attributes, g.n_values):.3g} objects to list and split, more than "
                          f"{MAX_LISTED_OBJECTS:.0e}; sample some with game.n_objects (or pass --no-size-check)")


def check(config, runs: int | None = None, available: float | None = None) -> None:
    """Refuse (ConfigError, one line) `runs` runs of a config this machine cannot train: the module doc."""
    t = config.train
    runs = t.seeds if runs is None else runs
    check_world(config)
    games = t.steps * t.batch_size * runs * config.population.n_senders
    if games > MAX_GAMES:
        raise ConfigError(f"train.steps={t.steps} x train.batch_size={t.batch_size} x {runs} runs = {games:.3g} games, more "
                          f"than {MAX_GAMES:.0e} (weeks even on an accelerator); lower them (or pass --no-size-check)")
    cost = estimate(config, runs)
    available = available_memory() if available is None else available
    if cost.bytes > available:
        raise ConfigError(f"{runs} runs of this config need about {_gib(cost.bytes)} of memory, this machine has "
                          f"{_gib(available)} free; the most: {cost.largest(config)}; lower these, or pass "
                          f"--no-size-check to try anyway")
