"""Sensor: wafers x 590 sensors (UCI SECOM or sensor-fault batch files) -> fail / pass."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from pipelines.core.cli import add_artifacts_argument, add_data_argument

VERBS = ("train", "evaluate", "recalibrate")


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    """The sensor options: one set for ``train`` and ``evaluate``, another for ``recalibrate``."""
    if verb == "recalibrate":
        add_recalibrate_arguments(parser)
        return
    from pipelines.sensor.train import SENSOR_CANDIDATES

    add_data_argument(parser, "data directory: a SECOM folder, a sensor-fault folder, or their parent")
    add_artifacts_argument(parser)
    parser.add_argument("--models", nargs="+", choices=list(SENSOR_CANDIDATES), metavar="MODEL",
                        help=f"candidates (default: all of {', '.join(SENSOR_CANDIDATES)})")
    parser.add_argument("--repeats", type=int, default=2,
                        help="repeats of day-blocked and of shuffled CV (default 2)")
    parser.add_argument("--bootstrap", type=int, default=1000,
                        help="bootstrap resamples behind each 95%% interval (default 1000)")
    parser.add_argument("--far", type=float, default=0.05,
                        help="target false-alarm rate on passing wafers (default 0.05)")
    parser.add_argument("--epochs", type=int, help="autoencoder epochs (default: the model's)")


def add_recalibrate_arguments(parser: argparse.ArgumentParser) -> None:
    """``recalibrate``: a CSV of recent passing wafers and the rate to hold on them."""
    parser.add_argument("--data", type=Path, required=True,
                        help="CSV of recent passing wafers (any accepted layout; rows labelled "
                             "failing are left out)")
    add_artifacts_argument(parser)
    parser.add_argument("--target-far", type=float, default=None,
                        help="share of those wafers to flag (default: the model's current target)")
    parser.add_argument("--model", default=None,
                        help="model whose threshold to set (default: the release's default)")


def run(args: argparse.Namespace, verb: str, progress: Callable[[str], None]) -> dict:
    """Evaluate (and for ``train``, fit and release) the candidates, or recalibrate."""
    if verb == "recalibrate":
        from pipelines.sensor.recalibrate import RecalibrationError, recalibrate_sensor

        try:
            return recalibrate_sensor(args.artifacts / "sensor", args.data,
                                      target_far=args.target_far, model=args.model,
                                      progress=progress)
        except RecalibrationError as exc:
            raise SystemExit(f"recalibrate: {exc}") from None
    from pipelines.sensor.train import train_sensor

    overrides = {"autoencoder": {"epochs": args.epochs}} if args.epochs else None
    evaluation = train_sensor(args.data, args.artifacts, candidates=args.models,
                              n_repeats=args.repeats, target_far=args.far, overrides=overrides,
                              n_resamples=args.bootstrap, evaluate_only=verb == "evaluate",
                              progress=progress)
    if verb == "train":
        progress(f"shipped {evaluation['shipped']}; bundles in {args.artifacts / 'sensor'}")
    return evaluation
