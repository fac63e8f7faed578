"""The language a run's speakers speak: each seed's preferred (greedy) message for every object of its world.

One notation for people, used by `lab report`, `lab play`, `lab serve`, `lab export` and the notebooks:
attributes are numbered from 1, an object is written as its values (`2 0 3`: attribute 1 has value 2,
...), a message as letters (`games.languages.spell`: symbol 1 = a, EOS not written), and an object
the speakers never saw in training is *held-out*.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

import games
from games.languages import spell
from lab.core.spec import world_game_agents
from lab.experiment import checkpoint
from lab.experiment.config import Config


def object_text(obj) -> str:
    """An object as its values, attribute 1 first: `[2, 0, 3] -> '2 0 3'`."""
    return " ".join(str(int(v)) for v in np.asarray(obj).tolist())


def greedy_messages(config: Config, checkpoint_path: str | Path, sender: int = 0) -> np.ndarray:
    """`[seeds, n_objects, max_len]`: sender `sender` of every seed, its greedy message for each object of the world."""
    senders, _, _ = checkpoint.load(checkpoint_path, config)  # leaves [seeds, P, ...]
    world, _, agents = world_game_agents(config.game, config.agents)
    objects = world.objects
    speak = jax.jit(jax.vmap(lambda params: agents.sender(params).greedy(objects).symbols))
    return np.asarray(speak(jax.tree.map(lambda leaf: leaf[:, sender], senders)))


def lexicon(config: Config, messages: np.ndarray, seeds) -> "pd.DataFrame":
    """A tidy lexicon: one row per seed and object, with `seed, object, attribute 1..K, message, symbols, held_out, frequency`.

    `messages [seeds, n_objects, max_len]` (`greedy_messages`); `frequency` is how often the object was
    drawn in training (the world's input distribution; 0 for held-out objects). A referent that is not an
    attribute-value object (a feature vector) is named by its row, `row i`, its attributes those of game.labels (none
    without them).
    """
    import pandas as pd

    world = games.world_of(config.game)
    objects = games.game_class(config.game.kind).OBJECTS
    attributes = world.attributes if world.attributes is not None else np.zeros((len(world.objects), 0), np.int32)
    held_out = np.zeros(len(world.objects), bool)
    held_out[world.test] = True
    frequency = np.zeros(len(world.objects))
    frequency[world.train] = world.train_probs
    rows = []
    for seed, language in zip(np.asarray(seeds).tolist(), messages):
        for i, (obj, message) in enumerate(zip(world.objects, language)):
            rows.append({"seed": seed, "object": object_text(obj) if objects else f"row {i}",
                         **{f"attribute {k + 1}": int(v) for k, v in enumerate(attributes[i])},
                         "message": spell(message), "symbols": " ".join(str(int(s)) for s in message),
                         "held_out": bool(held_out[i]), "frequency": float(frequency[i])})
    return pd.DataFrame(rows)


def run_lexicon(run_dir: str | Path, config: Config | None = None) -> "pd.DataFrame":
    """`lexicon` of the run in `run_dir` (its config and checkpoint), sender 0 of every seed."""
    from lab.experiment.run import read_config

    run_dir = Path(run_dir)
    config = config or read_config(run_dir)
    seeds = checkpoint.read(run_dir / checkpoint.FILENAME)["seeds"]
    return lexicon(config, greedy_messages(config, run_dir / checkpoint.FILENAME), seeds)


def lexicon_grid(objects, words, held_out=()) -> "pd.DataFrame":
    """A lexicon laid out as a grid: rows the values of attributes 1..K-1, columns those of attribute K.

    `objects [n, K]`, `words [n]` (strings), `held_out`: the objects to mark with `*` (any iterable of
    objects). Objects of the grid that are missing from `objects` stay empty.
    """
    import pandas as pd

    objects = np.asarray(objects)
    K = objects.shape[1]
    marked = {tuple(o) for o in np.asarray(held_out).reshape(-1, K).tolist()} if len(held_out) else set()
    cells = {tuple(o): w + (" *" if tuple(o) in marked else "") for o, w in zip(objects.tolist(), words)}
    rows = sorted({o[:-1] for o in cells})
    columns = sorted({o[-1] for o in cells})
    grid = pd.DataFrame([[cells.get(r + (c,), "") for c in columns] for r in rows],
                        columns=pd.Index(columns, name=f"attribute {K}"))
    if K > 1:
        grid.index = pd.MultiIndex.from_tuples(rows, names=[f"attribute {k + 1}" for k in range(K - 1)]) if K > 2 else \
            pd.Index([r[0] for r in rows], name="attribute 1")
    return grid
