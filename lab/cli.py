"""The `lab` command: thin wrappers over the Python API.

Errors a person can fix (bad config, bad paths, bad files) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lab.config import ConfigError, describe, load

EXIT_USAGE = 2


def cmd_run(args) -> None:
    from lab import results
    from lab.run import run

    config = load(args.config, args.overrides)
    table = run(config, args.out, overwrite=args.overwrite, progress=not args.quiet)
    print(f"wrote {args.out}/ (config.yaml, metrics.parquet, checkpoint.npz)")
    print(results.summary(table).to_string(float_format=lambda v: f"{v:.3f}"))


def cmd_report(args) -> None:
    from lab.report import report

    path = report(Path(args.run_dir))
    print(f"wrote {path}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lab", description="A JAX laboratory for emergent communication.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="train a population for one config", formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="config fields (override with section.field=value):\n" + describe())
    r.add_argument("--out", required=True, help="run directory to write")
    r.add_argument("--config", help="YAML file with game/agents/train sections")
    r.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. train.lr=0.003")
    r.set_defaults(func=cmd_run)

    rep = sub.add_parser("report", help="figures and report.md for a run directory")
    rep.add_argument("run_dir")
    rep.set_defaults(func=cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except (ConfigError, ValueError, FileNotFoundError) as error:
        print(f"lab {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"lab {args.command}: interrupted; nothing was written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
