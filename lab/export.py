"""`lab export RUN --format elcc --out DIR`: a run's emergent languages as an ELCC-style corpus, meanings included.

ELCC, the Emergent Language Corpus Collection (Boldt & Mortensen 2024, arXiv 2407.04158), shares
emergent languages as plain corpora so that tools can compare them without running the systems that
made them: per system a `metadata.yml`, per corpus (a variant of the system) a folder with
`corpus.jsonl` (one utterance per line, a JSON list of integer tokens) and `metadata.json` (the
variant's settings and an analysis of the corpus). ELCC corpora hold utterances only; the lab also
writes what each utterance meant, so a corpus can be read as a lexicon:

    DIR/metadata.yml                          the system: the lab, the game, the source, the variants
    DIR/data/seed-<s>/corpus.jsonl            one utterance per line: [3, 1, 4] (symbols 1.., EOS and padding dropped)
    DIR/data/seed-<s>/corpus.structured.jsonl the same lines with their meanings: {"utterance": [3, 1, 4], "word": "cad",
                                              "object": [2, 0, 1], "attributes": {"1": 2, "2": 0, "3": 1},
                                              "held_out": false, "frequency": 0.0048}
    DIR/data/seed-<s>/metadata.json           the run's config, the corpus's analysis (sizes, entropies in bits,
                                              mean length) and the lab's measures of the language (topsim, posdis,
                                              bosdis, context independence, TRE)

One corpus per seed of the run (each seed's speaker is its own language). By default a corpus is the
lexicon: each object of the world once, with the speaker's preferred (greedy) word; `utterances=N`
samples N utterances instead, objects drawn from the world's training distribution and words from
the speaker's policy, as a corpus of language use.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import yaml

import games
from games.languages import spell
from lab.core import metrics
from lab.core.spec import world_game_agents
from lab.experiment import checkpoint
from lab.experiment.config import Config, ConfigError, to_dict
from lab.experiment.io import check_out, staged
from lab.experiment.language import greedy_messages
from lab.experiment.run import read_config

FORMATS = ("elcc",)


def content(message) -> list[int]:
    """A message's symbols before its first EOS, as Python ints."""
    out = []
    for s in np.asarray(message).tolist():
        if s == 0:
            break
        out.append(int(s))
    return out


def entropy_bits(items: list) -> float:
    _, counts = np.unique(np.array([repr(i) for i in items]), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def analysis(utterances: list[list[int]]) -> dict:
    """ELCC-style corpus statistics: sizes, token and utterance entropies (bits), mean length (tokens)."""
    tokens = [t for u in utterances for t in u]
    return {"n_utterances": len(utterances), "n_unique_utterances": len({tuple(u) for u in utterances}),
            "n_tokens": len(tokens), "n_unique_tokens": len(set(tokens)),
            "token_entropy_bits": entropy_bits(tokens) if tokens else 0.0,
            "utterance_entropy_bits": entropy_bits(utterances), "mean_utterance_length": len(tokens) / max(len(utterances), 1)}


def sampled_corpus(config: Config, checkpoint_path: Path, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`(object indices [runs, n], messages [runs, n, max_len])`: n objects from the training distribution, words sampled."""
    world, _, agents = world_game_agents(config.game, config.agents)
    senders, _, _ = checkpoint.load(checkpoint_path, config)
    rng = np.random.default_rng(seed)
    runs = jax.tree.leaves(senders)[0].shape[0]
    rows = world.train[np.stack([rng.choice(len(world.train), n, p=world.train_probs) for _ in range(runs)])]  # [runs, n]
    speak = jax.jit(jax.vmap(lambda params, objects, key: agents.sender(params).sample(objects, key).symbols))
    keys = jax.random.split(jax.random.key(seed), runs)
    messages = speak(jax.tree.map(lambda leaf: leaf[:, 0], senders), world.objects[rows], keys)
    return rows, np.asarray(messages)


def language_measures(objects: np.ndarray, messages: np.ndarray, config: Config) -> dict:
    sizes = dict(vocab_size=config.agents.vocab_size, n_values=config.game.n_values)
    return {"topsim": metrics.topsim(objects, messages), "posdis": metrics.posdis(objects, messages, **sizes),
            "bosdis": metrics.bosdis(objects, messages, **sizes),
            "context_independence": metrics.context_independence(objects, messages, **sizes),
            "tree_reconstruction_error": metrics.tree_reconstruction_error(objects, messages, **sizes)}


def system_metadata(config: Config, run_dir: Path, seeds, utterances: int) -> dict:
    g, a = config.game, config.agents
    return {
        "origin": {"system": "the lab (a JAX laboratory for emergent communication)", "run": str(run_dir),
                   "game_source": "Lewis signaling game (Lewis 1969); reconstruction and discrimination as in EGG"},
        "system": {"game_type": "signalling", "game": g.kind, "agents": "one speaker, one listener per corpus",
                   "observation_type": "symbolic attribute-value objects",
                   "objects": f"{g.n_attributes} attributes x {g.n_values} values", "vocab_size": a.vocab_size - 1,
                   "max_utterance_length": a.max_len, "data_source": "lexicon" if utterances == 0 else "sampled"},
        "notes": ("Tokens are the speaker's symbols 1..vocab_size-1 (the end-of-message symbol 0 and the padding after it "
                  "are dropped). corpus.structured.jsonl gives each utterance's meaning: the object (attribute values, "
                  "attributes numbered from 1), whether it was held-out in training, and its training frequency."),
        "variants": {f"seed-{s}": {"seed": int(s)} for s in seeds},
    }


def export(run_dir: str | Path, out: str | Path, fmt: str = "elcc", utterances: int = 0, overwrite: bool = False) -> Path:
    """Write the run's languages as an ELCC-style corpus collection in `out` (module doc); returns `out`."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: allowed values are {', '.join(FORMATS)}")
    if utterances < 0:
        raise ConfigError(f"--utterances {utterances}: give 0 (each object once, its preferred word) or more")
    run_dir, out = Path(run_dir), Path(out)
    config = read_config(run_dir)
    if not games.game_class(config.game.kind).OBJECTS:
        raise ConfigError(f"game.kind={config.game.kind!r}: its referents are feature vectors; an ELCC corpus pairs "
                          f"utterances with attribute-value objects")
    path = run_dir / checkpoint.FILENAME
    if not path.is_file():
        raise ConfigError(f"{str(run_dir)!r} has no {checkpoint.FILENAME}; is it a run directory written by `lab run`?")
    check_out(out, overwrite)
    world = games.world_of(config.game)
    held_out = np.zeros(len(world.objects), bool)
    held_out[world.test] = True
    frequency = np.zeros(len(world.objects))
    frequency[world.train] = world.train_probs
    seeds = checkpoint.read(path)["seeds"]
    lexicons = greedy_messages(config, path)  # [seeds, n_objects, max_len]: the measures read each seed's lexicon
    if utterances:
        rows, messages = sampled_corpus(config, path, utterances)
    else:
        rows, messages = np.broadcast_to(np.arange(len(world.objects)), lexicons.shape[:2]), lexicons
    with staged(out, overwrite, kind="export") as staging:
        (staging / "metadata.yml").write_text(yaml.safe_dump(system_metadata(config, run_dir, seeds, utterances), sort_keys=False))
        for seed, objects_of, language, lexicon in zip(seeds.tolist(), rows, messages, lexicons):
            corpus = staging / "data" / f"seed-{seed}"
            corpus.mkdir(parents=True)
            said = [content(m) for m in language]
            (corpus / "corpus.jsonl").write_text("".join(json.dumps(u) + "\n" for u in said))
            lines = []
            for u, i in zip(said, objects_of.tolist()):
                obj = [int(v) for v in world.objects[i]]
                lines.append(json.dumps({"utterance": u, "word": spell(u), "object": obj,
                                         "attributes": {str(k + 1): v for k, v in enumerate(obj)},
                                         "held_out": bool(held_out[i]), "frequency": round(float(frequency[i]), 6)}) + "\n")
            (corpus / "corpus.structured.jsonl").write_text("".join(lines))
            meta = {"system": "lab", "variant": f"seed-{seed}", "seed": int(seed), "config": to_dict(config),
                    "analysis": analysis(said),
                    "language": language_measures(world.objects, lexicon, config)}
            (corpus / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out
