"""Time series: C-MAPSS engine histories -> early warning (five detectors) and RUL.

train: splits train_FD001 by engine, fits the scaler and the models, chooses every flag level
and the default model out of fold on the training engines cut like the official test set,
reports on the validation engines, writes artifacts/timeseries/. evaluate: scores a test file and its RUL
file (official layout, plain or gzipped) with the committed release and prints
{"models": {model: {f1, precision, recall, roc_auc}}, "rul": {rmse, nasa_score}}.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

from pipelines.core.cli import add_artifacts_argument, add_data_argument


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    """``train``: data and training options; ``evaluate``: --train, --test and --rul files."""
    add_artifacts_argument(parser)
    if verb == "evaluate":
        parser.add_argument("--train", type=Path, help="the training file the release was "
                                                       "trained on (recorded, not refitted)")
        parser.add_argument("--test", type=Path, required=True,
                            help="test_FD00x.txt (or .gz): engines cut before failure")
        parser.add_argument("--rul", type=Path, required=True,
                            help="RUL_FD00x.txt (or .gz): true RUL at each engine's last cycle")
        parser.add_argument("--record", type=Path, default=None,
                            help="JSON lines file the run is appended to (files' sha256, "
                                 "release, figures; default: evaluations/timeseries.jsonl in "
                                 "the repository)")
        parser.add_argument("--no-record", action="store_true",
                            help="do not record the run (scratch runs only)")
        return
    add_data_argument(parser, "a folder holding cmapss/train_FD001.txt.gz (or the file)")
    parser.add_argument("--models", default=",".join(_models()),
                        help="comma-separated models to train (default: all five)")
    parser.add_argument("--seed", type=int, default=0, help="engine split seed (default 0)")
    parser.add_argument("--threads", type=int, default=2, help="threads per model (default 2)")
    parser.add_argument("--max-healthy", type=int,
                        help="at most this many healthy windows for each anomaly detector")
    parser.add_argument("--params", type=json.loads, default={},
                        help='model parameters as JSON, e.g. \'{"patchtst": {"epochs": 5}}\'')
    parser.add_argument("--no-release", action="store_true",
                        help="train and report, but do not write artifacts/timeseries")


def _models() -> tuple[str, ...]:
    from pipelines.timeseries.train import MODELS

    return MODELS


def run(args: argparse.Namespace, verb: str, progress: Callable[[str], None]) -> dict:
    """Train (and release) the models, or evaluate the committed release on test files."""
    if verb == "evaluate":
        from pipelines.timeseries.evaluate import RECORD_FILE, evaluate_files

        record = None if args.no_record else (
            args.record or RECORD_FILE)
        return evaluate_files(args.train, args.test, args.rul, Path(args.artifacts) / "timeseries",
                              progress=progress, record=record)
    from pipelines.timeseries.train import train_timeseries

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    params = {m: {"n_jobs": args.threads} | dict(args.params.get(m, {})) for m in models}
    return train_timeseries(args.data, None if args.no_release else args.artifacts,
                            models=models, params=params, seed=args.seed,
                            max_healthy=args.max_healthy, progress=progress)
