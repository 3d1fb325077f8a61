"""Wafer map: die pass/fail grids (WM-811K npz, images, CSV, JSON) -> one of nine defect patterns.

train: fits the CNN on the npz's train split, tunes on its val split, writes
artifacts/wafermap/. evaluate: scores an npz of either layout with the committed release and
prints accuracy, macro-F1, per-class figures and the confusion matrix (rows true, columns
predicted, both in per_class order); every map is scored unless --split picks one part.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

from pipelines.core.cli import add_artifacts_argument, add_data_argument


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    """``train``: data, artifacts and training options; ``evaluate``: an npz and a split."""
    add_artifacts_argument(parser)
    if verb == "evaluate":
        add_data_argument(parser, "an npz of maps with labels (either layout), or a folder "
                                  "holding WM-811K's wafer_maps_orig.npz")
        parser.add_argument("--split", help="score only the maps of this split (train, val, "
                                            "test); default: every map in the file")
        parser.add_argument("--record", type=Path, default=None,
                            help="with --split test: the JSON lines file the run is appended "
                                 "to (default: evaluations/wafermap.jsonl in the repository)")
        parser.add_argument("--no-record", action="store_true",
                            help="do not record a test run (scratch runs only)")
        return
    add_data_argument(parser, "a folder holding wm811k/wafer_maps_orig.npz (or the npz)")
    parser.add_argument("--epochs", type=int, help="maximum epochs (default: the model's)")
    parser.add_argument("--epoch-size", type=int, help="maps drawn per epoch")
    parser.add_argument("--subset", type=int,
                        help="train on a random sample of this many train maps (quick runs)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--params", type=json.loads, default={},
                        help="more CNN parameters as JSON, e.g. '{\"balance\": 0.7}'")
    parser.add_argument("--annotations", type=Path,
                        help="a FabLens COCO export of labelled maps (the review queue's "
                             "Export) to add to the train split")
    parser.add_argument("--network", type=Path,
                        help="keep the network of this trained bundle (e.g. "
                             "artifacts/wafermap/cnn) and fit only the map-feature trees and "
                             "the blend")
    parser.add_argument("--no-release", action="store_true",
                        help="train and report, but do not write artifacts/wafermap")


def run(args: argparse.Namespace, verb: str, progress: Callable[[str], None]) -> dict:
    """Train (and release) the CNN, or evaluate the committed release on an npz."""
    if verb == "evaluate":
        from pipelines.wafermap.evaluate import evaluate_npz

        from pipelines.core.evaluation_log import record_file

        record = None if args.no_record or args.split != "test" else (
            args.record or record_file("wafermap"))
        return evaluate_npz(args.data, Path(args.artifacts) / "wafermap", split=args.split,
                            progress=progress, record=record)
    from pipelines.wafermap.train import train_wafermap

    params = dict(args.params)
    for key in ("epochs", "epoch_size"):
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)
    params["n_jobs"] = args.threads
    evaluation = train_wafermap(args.data, None if args.no_release else args.artifacts,
                                params=params, subset=args.subset,
                                annotations=args.annotations,
                                network=args.network, progress=progress)
    progress(json.dumps({k: evaluation[k] for k in ("best_epoch", "fit_seconds")}
                        | {"val_macro_f1": evaluation["val"]["macro_f1"]}))
    return evaluation
