"""`lab report DIR`: figures and a markdown report for a run directory that show the game and the language.

The report says what was played and for how long, shows the learning curves with a caption true to
the number of seeds, the final measures with each column explained in plain words, and the language
itself: every seed's word for every object (held-out objects marked), with measures of its structure.
Notation (`lab.experiment.language`): attributes numbered from 1, objects as their values, words as letters.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import games
from lab.core import metrics
from lab.experiment import divergence, results
from lab.experiment.config import Config, ConfigError
from lab.experiment.io import add_entries
from lab.experiment.language import run_lexicon
from lab.experiment.run import METRICS_FILE, read_config
from lab.report import plots
from lab.report.sweep import markdown_table
from lab.report.sweep import report as sweep_report

LEXICON_FILE = "lexicon.csv"
MAX_LEXICON_ROWS = 256  # objects listed in report.md; lexicon.csv holds them all
MAX_LEXICON_SEEDS = 8  # seeds shown side by side in report.md
MAX_MEASURED = 512  # objects the language measures see (topsim costs n^2 pairs)

COLUMN_MEANINGS = {
    "accuracy": "the fraction of objects the listener gets entirely right (every attribute) from the speaker's "
                "preferred message; chance is 1 in the number of objects",
    "topsim": "topographic similarity: do objects that differ in fewer attributes get more similar messages? The "
              "correlation of the two distances over all pairs of objects: 1 = the messages mirror the objects, "
              "0 = no relation",
    "posdis": "positional disentanglement: does each position of the message name one attribute? 1 = each position "
              "tracks exactly one attribute, 0 = none does",
    "bosdis": "bag-of-symbols disentanglement: does each letter name one attribute, wherever it stands? 1 = yes, 0 = no",
    "loss": "the game loss in nats: how surprised the listener is by the right object, on average (0 = certain and "
            "right; it grows as the listener spreads its bets or bets wrong)",
}
LANGUAGE_MEANINGS = {
    "words": "how many different words the speaker uses for the objects",
    "topsim": COLUMN_MEANINGS["topsim"],
    "posdis": COLUMN_MEANINGS["posdis"],
    "bosdis": COLUMN_MEANINGS["bosdis"],
    "context independence": "does each attribute value have one letter of its own, used whenever that value is meant "
                            "and for nothing else? 1 = yes (Bogin et al. 2018)",
    "TRE": "tree reconstruction error: how far the words are from the best code that adds up one piece per attribute "
           "value; 0 = perfectly additive (Andreas 2019)",
}


def read_metrics(run_dir: Path) -> pd.DataFrame:
    path = run_dir / METRICS_FILE
    if not path.is_file():
        raise ConfigError(f"{str(run_dir)!r} has no {METRICS_FILE}; is it a run directory written by `lab run`?")
    try:
        table = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise ConfigError(f"{str(path)!r} is not a readable parquet file ({type(error).__name__}); rerun the experiment") from None
    missing = [column for column in results.COLUMNS if column not in table.columns]
    if missing:
        raise ConfigError(f"{str(path)!r} has no column {missing[0]!r}; a run's table has {', '.join(results.COLUMNS)}")
    if table.empty:
        raise ConfigError(f"{str(path)!r} has no rows; rerun the experiment")
    return table


def title(config: Config, n_seeds: int) -> str:
    g = config.game
    return (f"{g.kind.capitalize()} game, {games.game_class(g.kind).describe_world(g)}: "
            f"{n_seeds} seed{'s' if n_seeds != 1 else ''}, {config.train.steps} training steps")


def describe_run(config: Config, seeds: list[int], n_objects: int, n_held_out: int, run_dir: Path) -> list[str]:
    """The game and the training, in words."""
    g, a, t, p = config.game, config.agents, config.train, config.population
    game = games.game_class(g.kind)
    split = game.describe_split(g)
    letters = f"a-{chr(ord('a') + a.vocab_size - 2)}" if a.vocab_size > 2 else "a"
    pairs = ("one speaker and one listener" if (p.n_senders, p.n_receivers) == (1, 1)
             else f"a population of {p.n_senders} speakers and {p.n_receivers} listeners")
    return [
        f"Run directory `{run_dir}`; the whole config is in `config.yaml`.",
        "",
        f"* **Game.** The speaker sees one of {game.describe_referents(g, n_objects)} and sends a word of at most "
        f"{a.max_len} letters ({letters}); the listener {game.describe_listener(g)}.",
        f"* **Held-out objects.** {n_held_out} objects are held-out ({split}): never seen in training, they test "
        f"whether the language generalizes." if g.split != "none" else f"* **Held-out objects.** none ({split}).",
        f"* **Training.** {t.steps} steps of {t.batch_size} games each ({t.mode}), {pairs}, "
        + (f"transformer networks ({a.layers} block{'s' * (a.layers > 1)} of width {a.width}, {a.heads} heads)."
           if a.cell == "transformer" else f"{a.cell.upper()} networks with {a.hidden_size} hidden units."),
        f"* **Seeds.** {', '.join(map(str, seeds))}: independent runs, each from its own random start (its own "
        f"community: the languages differ).",
        "",
    ]


def summary_section(table: pd.DataFrame, n_seeds: int, n_held_out: int) -> list[str]:
    summary = results.summary(table).reindex([s for s in ("train", "test") if s in set(table["split"])])
    if n_seeds == 1:  # one seed has no spread: show the values, not a column of NaN
        summary = summary[[c for c in summary.columns if not c.endswith(" std")]]
        summary.columns = [c.removesuffix(" mean") for c in summary.columns]
        intro = "Final evaluation (one seed, so no spread over seeds to report):"
    else:
        intro = f"Final evaluation: mean and standard deviation over the {n_seeds} seeds:"
    summary = summary.rename(index={"test": "held-out"}).reset_index().rename(columns={"split": "objects"})
    meanings = [f"* **{m}**: {text}." for m, text in COLUMN_MEANINGS.items() if any(c.startswith(m) for c in summary.columns)]
    threshold = [c for c in summary.columns if c.startswith("seeds >=")]
    if threshold:
        meanings.append(f"* **{threshold[0]}**: how many seeds reached that accuracy.")
    few = (f" With only {n_held_out} held-out objects, their topsim and posdis rest on too few objects to mean much."
           if 0 < n_held_out < 10 else "")
    return [intro, "", markdown_table(summary), "", "What the columns mean:", "", *meanings,
            f"* **objects**: train = the objects seen in training; held-out = the ones never seen.{few}", ""]


def language_measures(lexicon: pd.DataFrame, config: Config) -> pd.DataFrame:
    """Per seed: the measures of its greedy language over the objects of the world (at most MAX_MEASURED of them);
    only the number of words where the referents have no attributes (feature vectors without game.labels)."""
    world = games.world_of(config.game)
    K, V = world.n_attributes, world.n_values
    rows = []
    for seed, words in lexicon.groupby("seed", sort=True):
        if not K:
            rows.append({"seed": seed, "words": words["message"].nunique()})
            continue
        if len(words) > MAX_MEASURED:
            words = words.sample(MAX_MEASURED, random_state=0)
        objects = words[[f"attribute {k + 1}" for k in range(K)]].to_numpy()
        messages = np.array([list(map(int, s.split())) for s in words["symbols"]])
        sizes = dict(vocab_size=config.agents.vocab_size, n_values=V)
        rows.append({"seed": seed, "words": words["message"].nunique(), "topsim": metrics.topsim(objects, messages),
                     "posdis": metrics.posdis(objects, messages, **sizes), "bosdis": metrics.bosdis(objects, messages, **sizes),
                     "context independence": metrics.context_independence(objects, messages, **sizes),
                     "TRE": metrics.tree_reconstruction_error(objects, messages, **sizes)})
    return pd.DataFrame(rows)


def lexicon_tables(lexicon: pd.DataFrame, config: Config) -> list[str]:
    """The words of each seed: a grid for two attributes (rows attribute 1, columns attribute 2), else one row per object."""
    seeds = sorted(lexicon["seed"].unique())[:MAX_LEXICON_SEEDS]
    marked = lexicon.assign(word=lexicon["message"] + np.where(lexicon["held_out"], " *", ""))
    lines = []
    if {"attribute 1", "attribute 2"} <= set(lexicon) and "attribute 3" not in lexicon \
            and not lexicon.duplicated(["seed", "attribute 1", "attribute 2"]).any():
        for seed in seeds:
            words = marked[marked["seed"] == seed]
            grid = words.pivot(index="attribute 1", columns="attribute 2", values="word")
            grid = grid.rename(columns=lambda v: f"attribute 2 = {v}").reset_index()
            lines += [f"Seed {seed}:", "", markdown_table(grid.rename(columns={"attribute 1": "attribute 1 \\ 2"})), ""]
    else:
        wide = marked[marked["seed"].isin(seeds)].pivot(index="object", columns="seed", values="message")
        wide.columns = [f"seed {s}" for s in wide.columns]
        held = marked.drop_duplicates("object").set_index("object")["held_out"]
        wide.insert(0, "held-out", held.reindex(wide.index).map({True: "*", False: ""}))
        order = marked.drop_duplicates("object")["object"]
        wide = wide.reindex(order).reset_index()
        more = f" (the first {MAX_LEXICON_ROWS} of {len(wide)})" if len(wide) > MAX_LEXICON_ROWS else ""
        lines += [f"One row per object{more}:", "", markdown_table(wide.head(MAX_LEXICON_ROWS)), ""]
    return lines


def lexicon_section(run_dir: Path, config: Config) -> list[str]:
    lexicon = run_lexicon(run_dir, config)
    lexicon.to_csv(run_dir / LEXICON_FILE, index=False)
    measures = language_measures(lexicon, config)
    n_seeds = lexicon["seed"].nunique()
    shown = f" (the first {MAX_LEXICON_SEEDS} of {n_seeds} seeds)" if n_seeds > MAX_LEXICON_SEEDS else ""
    return [
        "## The language",
        "",
        "Each seed's speaker, asked for its preferred word for every object. Objects are written as their values, "
        "attribute 1 first; words as letters (symbol 1 = a, 2 = b, ...; the end-of-message symbol is not written, "
        f"and a message of only that symbol shows as `(silence)`); held-out objects are marked *{shown}. Every seed, "
        f"every object: `{LEXICON_FILE}`.",
        "",
        *lexicon_tables(lexicon, config),
        "Measures of each seed's language, over all its objects (held-out included)"
        + (f", at most {MAX_MEASURED} of them" if lexicon.groupby("seed").size().max() > MAX_MEASURED else "") + ":",
        "",
        markdown_table(measures),
        "",
        *[f"* **{m}**: {text}." for m, text in LANGUAGE_MEANINGS.items()],
        "",
    ]


def report(run_dir: Path) -> Path:
    if (run_dir / "manifest.json").is_file():  # a sweep directory written by `lab sweep`
        return sweep_report(run_dir)
    table = read_metrics(run_dir)
    config = read_config(run_dir)
    seeds = sorted(int(s) for s in table["seed"].unique())
    figures = run_dir / "figures"
    figures.mkdir(exist_ok=True)
    curves = plots.learning_curves(table, figures / "learning_curves.png")
    diverged = {int(seed): tuple(at) for seed, at in results.read_metadata(run_dir / METRICS_FILE).get("diverged", {}).items()}
    world = games.world_of(config.game)
    text = [
        f"# {title(config, len(seeds))}",
        "",
        *([f"**Diverged**: {divergence.describe(diverged)}. A run's rows end at the evaluation where its numbers went "
           f"non-finite; its final values below are those of that evaluation.", ""] if diverged else []),
        *describe_run(config, seeds, len(world.objects), len(world.test), run_dir),
        f"![learning curves]({curves.relative_to(run_dir)})",
        "",
        f"*Figure: {plots.seed_caption(len(seeds))} Train: the objects seen in training; held-out: the others.*",
        "",
        *summary_section(table, len(seeds), len(world.test)),
    ]
    if (run_dir / "checkpoint.npz").is_file():
        text += lexicon_section(run_dir, config)
    if "l_info" in set(table["metric"]):
        text += decomposition_section(table, figures, run_dir)
    path = run_dir / "report.md"
    path.write_text("\n".join(text))
    add_entries(run_dir, [path.name, figures.name])  # the folder's marker: the lab wrote these too
    return path


def share_of(part: float, whole: float) -> str:
    """`part`'s share of `whole` in words: a percentage only where it is one (0-100%); parts of opposite signs are named so."""
    if abs(whole) < 1e-9:
        return "n/a: no gap"
    ratio = part / whole
    if ratio > 1:
        return "more than the whole gap"
    if ratio < 0:
        return "against the gap"
    return f"{ratio:.0%}"


def gap_table(table: pd.DataFrame) -> pd.DataFrame:
    """Final game loss = L_info + L_adapt on train and test (mean over seeds, nats) and the gap, test - train."""
    last = results.final(table)
    last = last[last["metric"].isin(("loss", "l_info", "l_adapt")) & last["split"].isin(("train", "test"))]
    means = last.groupby(["split", "metric"])["value"].mean().unstack("metric")[["loss", "l_info", "l_adapt"]]
    means.loc["gap (test - train)"] = means.loc["test"] - means.loc["train"]
    return means.rename(columns={"loss": "game loss", "l_info": "L_info", "l_adapt": "L_adapt"})


def decomposition_section(table: pd.DataFrame, figures: Path, run_dir: Path) -> list[str]:
    """Why the language generalizes as it does: the generalization gap split into information and co-adaptation."""
    figure = figures / "decomposition.png"
    n_seeds = table["seed"].nunique()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    plots.decomposition_curves(table.assign(condition=run_dir.name), [ax], [run_dir.name])
    fig.savefig(figure, dpi=120, bbox_inches="tight")
    plt.close(fig)
    gaps = gap_table(table)
    gap = gaps.loc["gap (test - train)"]
    over = "one seed" if n_seeds == 1 else f"mean over {n_seeds} seeds"
    return [
        "## Why held-out games are lost: information or co-adaptation",
        "",
        "The game loss splits into L_info (what the messages cannot tell apart: the loss of the ideal listener of",
        "this speaker, who knows its every habit) and L_adapt (what this listener adds to it: its co-adaptation with",
        f"the speaker on the objects they trained on). Final values ({over}), in nats; test = held-out objects:",
        "",
        f"![L_info and L_adapt]({figure.relative_to(run_dir)})",
        "",
        f"*Figure: {plots.seed_caption(n_seeds)}*",
        "",
        "```",
        gaps.to_string(float_format=lambda v: f"{v:.3f}"),
        "```",
        "",
        f"Of the generalization gap of {gap['game loss']:.2f} nats, L_adapt carries {gap['L_adapt']:.2f} "
        f"({share_of(gap['L_adapt'], gap['game loss'])}) and L_info {gap['L_info']:.2f} "
        f"({share_of(gap['L_info'], gap['game loss'])})." if np.isfinite(gap.to_numpy()).all() else
        "The gap is not a finite number: a run diverged (above), so it says nothing about generalization.",
        "",
    ]
