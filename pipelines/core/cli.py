"""Command-line dispatch: ``python -m pipelines.<verb> <module> [options]``.

Each pipeline module with a ``cli`` adds its own options for each verb it names in its
``VERBS`` (default: train and evaluate; a module without ``recalibrate`` is no sub-command
of it, so the verb can never fall through to training) and runs the work;
the core sets up logging and progress on stderr and, for ``evaluate`` and ``recalibrate``,
prints the module's JSON document on stdout.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import time
from pathlib import Path

from pipelines.core import locations
from pipelines.core.modules import discover

VERBS = ("train", "evaluate", "recalibrate")
DEFAULT_VERBS = ("train", "evaluate")  # what a module's cli does unless its VERBS says more


def add_data_argument(parser: argparse.ArgumentParser, help_text: str = "data directory") -> None:
    """``--data`` with the project's one default (``$FABLENS_DATA_DIR`` or ../shared/data)."""
    parser.add_argument("--data", type=Path, default=locations.data_dir(os.environ),
                        help=f"{help_text} (default: $FABLENS_DATA_DIR or ../shared/data)")


def add_artifacts_argument(parser: argparse.ArgumentParser) -> None:
    """``--artifacts``: where bundles are read and written (default: the project's artifacts/)."""
    parser.add_argument("--artifacts", type=Path, default=locations.artifacts_dir(os.environ),
                        help="artifacts directory (default: $FABLENS_ARTIFACTS_DIR or artifacts/)")


def build_parser(verb: str) -> tuple[argparse.ArgumentParser, dict]:
    """The parser with one sub-command per module that has a command line."""
    parser = argparse.ArgumentParser(prog=f"python -m pipelines.{verb}",
                                     description=f"{verb.title()} a FabLens module's models.")
    commands = parser.add_subparsers(dest="module", required=True, metavar="module")
    clis = {}
    for name, module in discover().items():
        if module.cli is None:
            continue
        cli = importlib.import_module(module.cli)
        if verb not in getattr(cli, "VERBS", DEFAULT_VERBS):
            continue
        sub = commands.add_parser(name, help=(cli.__doc__ or name).strip().splitlines()[0],
                                  description=cli.__doc__)
        cli.add_arguments(sub, verb)
        clis[name] = cli
    return parser, clis


def main(verb: str, argv: list[str] | None = None) -> int:
    """Parse, dispatch to the module, print its JSON document for ``evaluate``/``recalibrate``."""
    if verb not in VERBS:
        raise ValueError(f"verb must be one of {VERBS}")
    parser, clis = build_parser(verb)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{args.module} {time.perf_counter() - started:6.1f}s] {message}",
              file=sys.stderr, flush=True)

    document = clis[args.module].run(args, verb, progress)
    if verb in ("evaluate", "recalibrate"):
        print(json.dumps(document, indent=2))
    return 0
