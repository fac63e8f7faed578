"""The `lab` command: thin wrappers over the Python API.

Errors a person can fix (bad config, bad paths, bad files) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lab.experiment.config import ConfigError, describe, load
from lab.experiment.divergence import Diverged
from lab.experiment.execute import setup

EXIT_USAGE = 2
EXIT_DIVERGED = 3  # a run's numbers went non-finite: what it had is written (lab.experiment.divergence)


def cmd_run(args) -> None:
    from lab.experiment import results
    from lab.experiment.run import run

    config = load(args.config, args.overrides)
    try:
        table, diverged = run(config, args.out, overwrite=args.overwrite, progress=not args.quiet,
                              size_check=not args.no_size_check), None
    except Diverged as error:
        table, diverged = error.table, error
    print(f"wrote {args.out}/ (config.yaml, metrics.parquet, checkpoint.npz)")
    print(results.summary(table).to_string(float_format=lambda v: f"{v:.3f}"))
    if diverged is not None:
        print(f"lab run: {diverged}", file=sys.stderr)
        return EXIT_DIVERGED
    return 0


def cmd_sweep(args) -> None:
    from lab.experiment.sweep import finished, load_plan, read_manifest, run_sweep

    plan = load_plan(args.sweep_file)
    if args.dry_run:
        out = Path(args.out) if args.out else None
        done = frozenset()
        if out is not None and (out / "manifest.json").is_file() and read_manifest(out)["digest"] == plan.digest:
            done = finished(plan, out, remove=False)
        print(plan.describe(done))
        return
    if not args.out:
        raise ConfigError("--out is required (or --dry-run to print the plan only)")
    diverged = None
    try:
        table = run_sweep(plan, args.out, backend=args.backend, overwrite=args.overwrite, progress=not args.quiet,
                          chunk=args.chunk, ray_address=args.ray_address, ray_gpus=args.ray_gpus,
                          size_check=not args.no_size_check)
    except Diverged as error:
        table, diverged = error.table, error
    except KeyboardInterrupt:
        print(f"lab sweep: interrupted; finished cells are kept in {args.out}, run the same command to resume", file=sys.stderr)
        raise SystemExit(130) from None
    print(f"wrote {args.out}/: {table['cell'].nunique()} cells, {len(table)} rows; "
          f"read them with pandas.read_parquet('{args.out}/metrics')")
    if diverged is not None:
        print(f"lab sweep: {diverged}", file=sys.stderr)
        return EXIT_DIVERGED
    return 0


def cmd_report(args) -> None:
    from lab.report.run import report

    path = report(Path(args.run_dir))
    print(f"wrote {path}")


def cmd_play(args) -> None:
    from lab.play import play

    play(args.run_dir, role=args.role, rounds=args.rounds, index=args.seed_index, seed=args.seed,
         participant=args.participant, record=args.record, hint=args.hint)


def cmd_serve(args) -> None:
    from lab.serve import serve

    serve(args.run_dir, host=args.host, port=args.port, rounds=args.rounds, index=args.seed_index, record=args.record,
          role=args.role)


def cmd_export(args) -> None:
    from lab.export import export

    out = export(args.run_dir, args.out, fmt=args.format, utterances=args.utterances, overwrite=args.overwrite)
    print(f"wrote {out}/ (metadata.yml; data/seed-*/corpus.jsonl, corpus.structured.jsonl, metadata.json)")


def cmd_study(args) -> None:
    from lab.report.studies import run_study

    study = run_study(args.name, args.out, preset=args.preset, small=args.small, overwrite=args.overwrite,
                      progress=not args.quiet, overrides=args.overrides)
    written = ", ".join(sorted(p.name for p in Path(args.out).iterdir() if p.is_file() and not p.name.startswith(".")))
    print(f"wrote {args.out}/ ({written}); trained in {study.seconds:.0f} s")
    means = study.summary[[c for c in study.summary.columns if c.endswith(" mean")]]
    print(means.rename(columns=lambda c: c[: -len(" mean")]).T.to_string(float_format=lambda v: f"{v:.3f}"))
    print()
    print(study.verdict)


def parser(studies: bool = True) -> argparse.ArgumentParser:
    """The command line; `studies=False` leaves out the list of studies in `lab study --help`, whose import (the
    studies' plotting: matplotlib, seaborn) costs a second and more to every other command."""
    p = argparse.ArgumentParser(prog="lab", description="A JAX laboratory for emergent communication.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="train a population for one config", formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="config fields (override with section.field=value):\n" + describe())
    r.add_argument("--out", required=True, help="run directory to write")
    r.add_argument("--config", help="YAML file with game/agents/train sections")
    r.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--no-size-check", action="store_true", help="train even a config estimated not to fit this machine")
    r.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. train.lr=0.003")
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("sweep", help="train the cells of a sweep file into a resumable result store",
                       description="Grid and list of configs x seeds, grouped into compile groups; rerun to resume.")
    s.add_argument("sweep_file", help="YAML sweep file (base, grid, configs, seeds); see sweeps/")
    s.add_argument("--out", help="sweep directory to write or resume")
    s.add_argument("--dry-run", action="store_true", help="print the plan (groups, cells, seeds) and stop")
    s.add_argument("--overwrite", action="store_true", help="replace --out when it holds another sweep or anything else")
    s.add_argument("--backend", choices=("local", "ray"), default="local", help="local (in-process) or ray (a task per call)")
    s.add_argument("--ray-address", help="address of an existing Ray cluster (default: start a local Ray)")
    s.add_argument("--ray-gpus", type=float, default=0.0, help="GPUs per Ray task")
    s.add_argument("--chunk", type=int, default=0, help="at most this many cells per compiled call (0: a whole group)")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.add_argument("--no-size-check", action="store_true", help="train even calls estimated not to fit this machine")
    s.set_defaults(func=cmd_sweep)

    rep = sub.add_parser("report", help="figures and report.md for a run or sweep directory")
    rep.add_argument("run_dir")
    rep.set_defaults(func=cmd_report)

    PRESETS, STUDIES = {}, {}
    if studies:
        from lab.report.studies import PRESETS, STUDIES

    st = sub.add_parser("study", help="a study: conditions x seeds, tidy table, figure and a verdict from the numbers",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog="studies:\n" + "\n".join(f"  {name}: {fn.__doc__.strip().splitlines()[0]}" for name, fn in STUDIES.items()))
    st.add_argument("name", help=f"which study: {', '.join(STUDIES)}")
    st.add_argument("--out", required=True, help="study directory to write")
    st.add_argument("--small", action="store_true", help="a few minutes on a laptop CPU instead of about an hour")
    st.add_argument("--preset", help="a named setup of the study (" + "; ".join(f"{n}: {', '.join(p)}" for n, p in PRESETS.items())
                    + "); --small is the preset small")
    st.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    st.add_argument("--quiet", action="store_true", help="no progress bars")
    st.add_argument("overrides", nargs="*", metavar="key=value",
                    help="dotted overrides applied to every condition, right after the name: lab study coadaptation train.seeds=2 --out DIR")
    st.set_defaults(func=cmd_study)

    pl = sub.add_parser("play", help="play one role of the game against a trained agent, in the terminal; every round is recorded",
                        description="You play the speaker or the listener against one trained agent of a run. Each round is "
                                    "appended to a CSV table (participant, sitting, round, role, target, held_out, message, guess, "
                                    "reward, seconds, ...) at RUN/play/games.csv or --record; earlier sittings are kept.")
    pl.add_argument("run_dir", help="a run directory written by `lab run`")
    pl.add_argument("--role", default="listener", help="your role: listener (you read the agent's messages; the default) or speaker")
    pl.add_argument("--rounds", type=int, default=10, help="how many rounds to play (default 10)")
    pl.add_argument("--seed", type=int, default=None,
                    help="draw the targets from this seed, to replay a sitting (default: a new random order each sitting)")
    pl.add_argument("--seed-index", type=int, default=0, help="which seed of the run is your partner: 0 the first (default)")
    pl.add_argument("--participant", default="anonymous", help="your name or code, written in the record")
    pl.add_argument("--record", help="the CSV file to append the rounds to (default RUN/play/games.csv)")
    pl.add_argument("--hint", action="store_true", help="first show the agent's words for the objects it learned on")
    pl.set_defaults(func=cmd_play)

    sv = sub.add_parser("serve", help="a local web page where participants play against a trained agent; every round is recorded",
                        description="Starts a small web server. Participants read the instructions, consent, give a name or code, "
                                    "choose a role and play; the rounds go to the same table as `lab play` "
                                    "(RUN/play/games.csv or --record).")
    sv.add_argument("run_dir", help="a run directory written by `lab run`")
    sv.add_argument("--port", type=int, default=8000, help="the port to listen on (default 8000)")
    sv.add_argument("--host", default="127.0.0.1",
                    help="the address to listen on: 127.0.0.1 (this computer only, the default) or 0.0.0.0 (the local network)")
    sv.add_argument("--rounds", type=int, default=10, help="rounds per participant (default 10)")
    sv.add_argument("--role", choices=("speaker", "listener"), help="offer only this role (default: the participant chooses)")
    sv.add_argument("--seed-index", type=int, default=0, help="which seed of the run is the partner: 0 the first (default)")
    sv.add_argument("--record", help="the CSV file to append the rounds to (default RUN/play/games.csv)")
    sv.set_defaults(func=cmd_serve)

    ex = sub.add_parser("export", help="write a run's languages as a corpus other tools can read (ELCC-style, with meanings)",
                        description="One corpus per seed: corpus.jsonl (one utterance per line, a JSON list of symbols), "
                                    "corpus.structured.jsonl (each utterance with its meaning: the object, held-out or not, "
                                    "its training frequency) and metadata.json (the config, corpus statistics, the language's "
                                    "measures); metadata.yml describes the whole. See lab/export.py.")
    ex.add_argument("run_dir", help="a run directory written by `lab run`")
    ex.add_argument("--format", default="elcc", help="the corpus format: elcc (the Emergent Language Corpus Collection's layout)")
    ex.add_argument("--out", required=True, help="the folder to write")
    ex.add_argument("--utterances", type=int, default=0,
                    help="0 (default): each object once with the speaker's preferred word; N: N utterances sampled from the "
                         "speaker, objects drawn from the training distribution")
    ex.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    ex.set_defaults(func=cmd_export)
    return p


def main(argv: list[str] | None = None) -> int:
    setup()  # before JAX starts: the lab's XLA flags, CPU devices and compilation cache
    argv = sys.argv[1:] if argv is None else argv
    args = parser(studies=not argv or argv[0] not in ("run", "sweep", "report", "play", "serve", "export")).parse_args(argv)
    try:
        code = args.func(args) or 0
    except (ConfigError, ValueError, FileNotFoundError) as error:
        print(f"lab {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"lab {args.command}: interrupted; nothing was written", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
