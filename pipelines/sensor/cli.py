"""Sensor: wafers x 590 sensors (UCI SECOM or sensor-fault batch files) -> fail / pass."""
from __future__ import annotations

import argparse
from typing import Callable

from pipelines.core.cli import add_artifacts_argument, add_data_argument


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    """The sensor options, the same for ``train`` and ``evaluate``."""
    from pipelines.sensor.train import SENSOR_CANDIDATES

    add_data_argument(parser, "data directory: a SECOM folder, a sensor-fault folder, or their parent")
    add_artifacts_argument(parser)
    parser.add_argument("--models", nargs="+", choices=list(SENSOR_CANDIDATES), metavar="MODEL",
                        help=f"candidates (default: all of {', '.join(SENSOR_CANDIDATES)})")
    parser.add_argument("--repeats", type=int, default=3, help="CV repeats (default 3)")
    parser.add_argument("--far", type=float, default=0.05,
                        help="target false-alarm rate on passing wafers (default 0.05)")
    parser.add_argument("--epochs", type=int, help="autoencoder epochs (default: the model's)")


def run(args: argparse.Namespace, verb: str, progress: Callable[[str], None]) -> dict:
    """Evaluate (and for ``train``, fit and release) the sensor candidates."""
    from pipelines.sensor.train import train_sensor

    overrides = {"autoencoder": {"epochs": args.epochs}} if args.epochs else None
    evaluation = train_sensor(args.data, args.artifacts, candidates=args.models,
                              n_repeats=args.repeats, target_far=args.far, overrides=overrides,
                              evaluate_only=verb == "evaluate", progress=progress)
    if verb == "train":
        progress(f"shipped {evaluation['shipped']}; bundles in {args.artifacts / 'sensor'}")
    return evaluation
