"""Inspection: photos of parts (MVTec AD layout) -> anomaly map and score, trained on good parts.

train: fits the radial-Gaussian model and the autoencoder baseline on train/good (part of it
held out for the threshold and synthetic-defect validation), writes artifacts/inspection/.
evaluate: scores a category folder in the MVTec AD layout (train/good, test/<type>,
ground_truth/<type>/<n>_mask.png) with every committed model and prints image AUROC, pixel
AUROC and F1 at each model's threshold, as they are and at random rotations ("rotated").
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

from pipelines.core.cli import add_artifacts_argument, add_data_argument


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    """``train``: data, artifacts, models and options; ``evaluate``: a category folder."""
    add_artifacts_argument(parser)
    if verb == "evaluate":
        add_data_argument(parser, "a category folder in the MVTec AD layout (or the data "
                                  "directory holding mvtec/bottle)")
        parser.add_argument("--seed", type=int, default=None,
                            help="seed of the random rotations (default: the fixed one)")
        parser.add_argument("--no-rotated", action="store_true",
                            help="skip the random-rotation evaluation")
        parser.add_argument("--record", action="store_true",
                            help="also store the figures in the release (test_evaluation.json, "
                                 "hashed in its manifest) for the Models page")
        return
    add_data_argument(parser, "a category folder (MVTec AD layout or a plain folder of good "
                              "images), or the data directory holding mvtec/bottle")
    parser.add_argument("--models", default="radial,autoencoder",
                        help="comma-separated models to fit (default: radial,autoencoder)")
    parser.add_argument("--target-far", type=float, default=0.05,
                        help="false-alarm rate on held-out good images for the threshold")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--params", type=json.loads, default={},
                        help="per-model parameters as JSON, e.g. "
                             "'{\"autoencoder\": {\"epochs\": 5}}'")
    parser.add_argument("--no-release", action="store_true",
                        help="train and report, but do not write artifacts/inspection")


def run(args: argparse.Namespace, verb: str, progress: Callable[[str], None]) -> dict:
    """Train (and release) both models, or evaluate the committed release on a category."""
    if verb == "evaluate":
        from pipelines.inspection.evaluate import evaluate_category
        from pipelines.inspection.metrics import ROTATION_SEED

        return evaluate_category(args.data, Path(args.artifacts) / "inspection",
                                 seed=ROTATION_SEED if args.seed is None else args.seed,
                                 rotated=not args.no_rotated, progress=progress,
                                 record=args.record)
    from pipelines.inspection.train import MODELS, train_inspection

    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; choose from {sorted(MODELS)}")
    evaluation = train_inspection(args.data, None if args.no_release else args.artifacts,
                                  models=models, params=args.params,
                                  target_far=args.target_far, n_jobs=args.threads,
                                  progress=progress)
    progress(json.dumps({"default_model": evaluation["default_model"],
                         "total_seconds": evaluation["total_seconds"]}))
    return evaluation
