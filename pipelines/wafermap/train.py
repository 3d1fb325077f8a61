"""The wafer-map training composer: fit the CNN on train, tune on val, write the release.

Protocol (recorded in the manifest): the CNN trains on the ``train`` split of WM-811K's
original-resolution maps, each resized to 64 x 64 by ``transform.resize_map`` (the code that
serves). The ``val`` split chooses the epoch (best macro-F1), fits the calibration temperature
(lowest log-loss) and sets the "needs review" confidence level; the metrics reported are on
that same ``val`` split, so they are slightly optimistic, and the held-out ``test`` split is
the unbiased check (``python -m pipelines.evaluate wafermap --data <test npz>``).

"Needs review" level: the val predictions are sorted by confidence (the calibrated top
probability) and read in bands of ``REVIEW_BAND`` neighbours; the level is the highest
confidence at which such a band is right less than ``target_accuracy`` (default 90%) of the
time. Above it, every band of similarly confident val predictions is right at least that
often; a prediction below it is flagged ``needs_review``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from pipelines.core.artifacts import atomic_directory, save_bundle, write_release
from pipelines.core.evaluation import multiclass_metrics
from pipelines.wafermap.detectors.cnn import CNNDetector, single_view_onnx
from pipelines.wafermap.ingest import (DATA_FILES, WaferMaps, class_counts, find_data,  # noqa: F401
                                       load_training_data, read_npz)
from pipelines.wafermap.reference import REFERENCE_FILE, REFERENCE_ROLE, write_map_reference
from pipelines.wafermap.schema import CLASSES, MODEL_SIZE

MODULE = "wafermap"
MODEL = "cnn"
EVALUATION_FILE = "evaluation.json"
REVIEW_BAND = 250
# the shipped model: the network in one orientation, blended with the map-feature trees
RELEASE_PARAMS: dict = {"tta": 1, "blend_features": True}


def review_level(probabilities: np.ndarray, y: np.ndarray, target_accuracy: float = 0.9,
                 band: int = REVIEW_BAND) -> dict:
    """The "needs review" confidence level from validation predictions (see the module doc)."""
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == y
    order = np.argsort(confidence, kind="stable")
    confidence, right = confidence[order], right[order].astype(float)
    band = max(1, min(band, len(right)))
    window = np.convolve(right, np.ones(band) / band, mode="valid")  # band i: [i, i + band)
    low = np.flatnonzero(window < target_accuracy)
    level = float(confidence[low[-1] + band - 1]) if low.size else 0.0
    flagged = confidence < level
    return {
        "value": round(level, 4),
        "rule": "needs_review when confidence (the top calibrated probability) < value",
        "target_accuracy": target_accuracy,
        "band": band,
        "source": f"validation predictions sorted by confidence, in bands of {band}: the "
                  f"highest confidence where a band is right less than "
                  f"{target_accuracy:.0%} of the time",
        "val_flagged_share": round(float(flagged.mean()), 4),
        "val_accuracy_flagged": round(float(right[flagged].mean()), 4) if flagged.any()
        else None,
        "val_accuracy_not_flagged": round(float(right[~flagged].mean()), 4)
        if (~flagged).any() else None,
    }


def expected_calibration_error(probabilities: np.ndarray, y: np.ndarray, bins: int = 15
                               ) -> float:
    """ECE of the top probability: the confidence-weighted gap to accuracy over equal bins."""
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == y
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        chosen = which == b
        if chosen.any():
            total += chosen.mean() * abs(right[chosen].mean() - confidence[chosen].mean())
    return float(total)


def with_annotations(train: WaferMaps, val: WaferMaps, reference: dict, annotations: Path,
                     progress: Callable[[str], None] = lambda s: None) -> WaferMaps:
    """``train`` plus the maps people labelled (a FabLens COCO export,
    :mod:`pipelines.wafermap.annotations`), recorded in ``reference["annotations"]``. A labelled
    map identical to a val map is left out (val chooses the epoch and reports the metrics)."""
    from pipelines.core.artifacts import sha256
    from pipelines.wafermap.annotations import map_sha256, read_coco_maps

    labelled = read_coco_maps(annotations)
    val_maps = {map_sha256(g) for g in val.maps}
    keep = [i for i, g in enumerate(labelled.maps) if map_sha256(g) not in val_maps]
    labels = labelled.labels[keep]
    reference["annotations"] = {"file": Path(annotations).name,
                                "sha256": sha256(Path(annotations)),
                                "maps": len(keep),
                                "left_out_as_val_maps": len(labelled) - len(keep),
                                "class_counts": class_counts(labels)}
    progress(f"added {len(keep)} annotated maps to the train split"
             + (f" ({len(labelled) - len(keep)} left out: identical to val maps)"
                if len(keep) < len(labelled) else ""))
    split = None if train.split is None else np.concatenate([train.split, ["train"] * len(keep)])
    return WaferMaps(train.maps + [labelled.maps[i] for i in keep],
                     train.names + [labelled.names[i] for i in keep],
                     np.concatenate([train.labels.astype(str), labels.astype(str)]), split,
                     train.layout)


def network_from(bundle: Path, params: dict | None = None) -> CNNDetector:
    """The trained network of a wafer-map bundle (``<release>/cnn``), in one orientation and
    with ``params`` (the release's by default), ready for :meth:`CNNDetector.fit_blend`."""
    from pipelines.core.artifacts import read_manifest
    from pipelines.core.onnx import onnx_session

    detector = CNNDetector.load(Path(bundle), read_manifest(Path(bundle)))
    detector.set_params(**{**RELEASE_PARAMS, **(params or {})})
    detector.onnx_ = single_view_onnx(detector.onnx_)
    detector.session_ = onnx_session(detector.onnx_, detector.n_jobs)
    detector.trees_ = None
    return detector


def train_wafermap(data: Path, artifacts_dir: Path | None, *, params: dict | None = None,
                   subset: int | None = None, target_accuracy: float = 0.9,
                   annotations: Path | None = None, network: Path | None = None,
                   progress: Callable[[str], None] = lambda s: None) -> dict:
    """Fit on train (plus the maps of ``annotations``, a FabLens COCO export), tune on val, and
    (with ``artifacts_dir``) write the wafer-map release. With ``network`` (a trained
    bundle's folder) its network is kept and only the map-feature trees and the blend are
    fitted (minutes instead of an hour on 2 cores).

    Returns the evaluation document (val metrics, calibration, review level, timings).
    """
    started = time.perf_counter()
    train, val, reference = load_training_data(data, subset)
    progress(f"loaded {len(train)} train and {len(val)} val maps from {reference['file']}")
    if annotations is not None:
        train = with_annotations(train, val, reference, annotations, progress)
    X_train, X_val = train.model_input(MODEL_SIZE), val.model_input(MODEL_SIZE)
    y_val = np.array([CLASSES.index(c) for c in val.labels])
    progress(f"resized to {MODEL_SIZE} x {MODEL_SIZE} [{time.perf_counter() - started:.0f}s]")
    fit_start, fit_cpu = time.perf_counter(), time.process_time()
    if network is None:
        detector = CNNDetector(**{**RELEASE_PARAMS, **(params or {})})
        detector.fit(X_train, train.labels, validation=(X_val, val.labels), progress=progress)
    else:
        detector = network_from(network, params)
        progress(f"network from {network} (epoch {detector.best_epoch_}), in one orientation")
        detector.fit_blend(X_train, train.labels, validation=(X_val, val.labels),
                           progress=progress)
    fit_seconds = time.perf_counter() - fit_start
    fit_cpu = time.process_time() - fit_cpu
    probabilities = detector.score(X_val)
    metrics = multiclass_metrics(y_val, probabilities, list(CLASSES))
    review = review_level(probabilities, y_val, target_accuracy)
    parity = (None if getattr(detector, "module_", None) is None or detector.trees_ is not None
              else float(np.abs(detector.torch_probabilities(X_val[:2000])
                                - probabilities[:2000]).max()))
    blended = detector.trees_ is not None
    protocol = ("trained on the train split (maps resized to 64 x 64 keeping every fail die); "
                "epoch chosen by val macro-F1, temperature fitted on val log-loss, "
                + ("map-feature trees fitted on train with fixed parameters, blend weight "
                   "chosen by val macro-F1 and blend temperature by val log-loss, "
                   if blended else "")
                + "review level set on val; metrics on the same val split (the held-out "
                "test split is the unbiased check)")
    evaluation = {
        "model": MODEL,
        "protocol": protocol,
        "val": metrics,
        "calibration": {
            "temperature": round(detector.temperature_, 4),
            **({"blend_network_weight": detector.blend_weight_,
                "blend_temperature": round(detector.blend_temperature_, 4),
                "val_macro_f1_by_part": detector.blend_val_} if blended else {}),
            "val_ece_before": round(expected_calibration_error(detector.uncalibrated_val_,
                                                               y_val), 4),
            "val_ece_after": round(expected_calibration_error(probabilities, y_val), 4),
        },
        "review": review,
        "best_epoch": detector.best_epoch_,
        "epochs_run": len(detector.history_),
        "torch_onnx_max_abs_diff": parity,
        **({"network_from": str(network)} if network is not None else {}),
        "fit_seconds": round(fit_seconds, 1),
        "fit_cpu_seconds": round(fit_cpu, 1),
        "torch_threads": detector.n_jobs,
        "total_seconds": round(time.perf_counter() - started, 1),
        "onnx_bytes": len(detector.onnx_),
    }
    progress(f"val macro-F1 {metrics['macro_f1']:.4f}, accuracy {metrics['accuracy']:.4f}; "
             f"temperature {detector.temperature_:.3f}; review below {review['value']:.3f} "
             f"({review['val_flagged_share']:.1%} of val flagged)")
    if artifacts_dir is None:
        return evaluation
    with atomic_directory(Path(artifacts_dir) / MODULE) as release:
        save_bundle(detector, release / MODEL, module=MODULE, manifest_fields={
            "name": MODEL,
            "role": "classifier",
            "version": f"{MODEL}-{time.strftime('%Y%m%d')}",
            "classes": list(CLASSES),
            "training_data": reference,
            "feature_schema": {"dtype": "uint8 die codes: 0 off-wafer, 1 pass, 2 fail",
                               "map_size": [MODEL_SIZE, MODEL_SIZE]},
            "preprocessing": {"resize": "pipelines.wafermap.transform.resize_map: per axis, "
                                        "max over source cells (shrinking) or nearest "
                                        "neighbour (growing); every fail die stays visible",
                              "size": MODEL_SIZE,
                              "inside_onnx": "on-wafer and fail planes, temperature, softmax",
                              **({"trees": "pipelines.wafermap.features.grid_features of the "
                                           "64 x 64 map, XGBoost's runtime; blended with the "
                                           "network's probabilities"} if blended else {})},
            "calibration": evaluation["calibration"],
            "threshold": review,
            "metrics": {"val": metrics, "protocol": protocol,
                        "fit_seconds": evaluation["fit_seconds"]},
        })
        (release / EVALUATION_FILE).write_text(json.dumps(evaluation, indent=2) + "\n")
        write_map_reference(release, train.maps, train.labels, CLASSES)
        write_release(release, module=MODULE, models=[MODEL], default_model=MODEL,
                      files={EVALUATION_FILE: "validation metrics, calibration, review level",
                             REFERENCE_FILE: REFERENCE_ROLE},
                      fields={"training_data": reference})
    progress(f"release written to {Path(artifacts_dir) / MODULE}")
    return evaluation

