"""The inspection training composer: fit both detectors on good images, threshold, release.

Protocol (recorded in the manifests): the good training images (``train/good`` of an MVTec AD
category, or a plain folder of a user's good parts) are split at random (fixed seed) into a
fit part and a validation part (``val_fraction``). Each detector fits on the fit part only.
The validation part, as it is and turned by ``val_rotations`` random angles about the centre,
gives the normal scores; the threshold is the one at which ``target_far`` of them are flagged.
Synthetic defects (``synthetic``: every kind on every validation image), aligned and
rotated, measure each model without touching any test image; the default model is the one
with the higher mean of those four figures (image and pixel AUROC, aligned and rotated).
Test figures come from ``python -m pipelines.evaluate inspection --data <category>``.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from pipelines.core.artifacts import atomic_directory, save_bundle, write_release
from pipelines.core.thresholds import (false_alarm_rate, score_quantiles,
                                       threshold_at_false_alarm_rate)
from pipelines.inspection.detectors.autoencoder import AutoencoderDetector
from pipelines.inspection.detectors.radial import RadialGaussianDetector
from pipelines.inspection.ingest import (data_reference, find_category, good_folder,  # noqa: F401
                                         read_folder)
from pipelines.inspection.metrics import evaluate_maps
from pipelines.inspection.reference import REFERENCE_FILE, REFERENCE_ROLE, write_photo_reference
from pipelines.inspection.schema import CHANNELS, IMAGE_SIZE
from pipelines.inspection.synthetic import KINDS, make_defects
from pipelines.inspection.transform import random_angles, rotate_batch

MODULE = "inspection"
MODELS = {"radial": RadialGaussianDetector, "autoencoder": AutoencoderDetector}
EVALUATION_FILE = "evaluation.json"
SYNTHETIC_SEED = 1
VAL_FRACTION, SPLIT_SEED = 0.2, 0  # the default split of the good images (tune.py uses it too)


def split_good(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the fit and validation parts of ``n`` good images (random, fixed seed)."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(val_fraction * n)))
    if n - n_val < 2:
        raise ValueError(f"{n} good images are too few to fit and validate")
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _explainer(detector) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    def explain(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e = detector.explain(images.astype(np.float32))
        return e.scores, e.maps
    return explain


def normal_scores(detector, val: np.ndarray, rotations: int, seed: int) -> np.ndarray:
    """Scores of the validation images as they are and at ``rotations`` random angles each."""
    parts = [detector.score(val.astype(np.float32))]
    rng = np.random.default_rng(seed)
    for _ in range(rotations):
        angles = random_angles(len(val), int(rng.integers(2 ** 31)))
        parts.append(detector.score(rotate_batch(val, angles).astype(np.float32)))
    return np.concatenate(parts)


def _page_metrics(synthetic: dict) -> dict:
    """The manifest's metrics, one flat dict per protocol (the Models page shows them as
    columns): synthetic defects on the held-out good images, as they are and rotated."""
    keys = ("image_auroc", "pixel_auroc", "f1")
    return {"synthetic defects, aligned": {k: synthetic[k] for k in keys},
            "synthetic defects, rotated": {k: synthetic["rotated"][k] for k in keys}}


PROTOCOL = ("fit on a random part of the good training images; threshold at the target "
            "false-alarm rate of the held-out good training images (as they are and "
            "rotated); synthetic defects of seven kinds (cut-paste, spots, chipped rim, and "
            "the subtle faint blobs, thin cracks, small edge chips and moved patches of the "
            "part itself), each on every held-out image, measure the models; default = "
            "higher mean synthetic AUROC. No test image is used.")


@dataclass(frozen=True)
class GoodImages:
    """The good training images split into a fit part and a validation part, and what the
    release says about them (``reference``)."""

    fit: np.ndarray
    val: np.ndarray
    reference: dict


@dataclass(frozen=True)
class SyntheticSet:
    """The validation images and synthetic defects made on them, with labels and masks."""

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    kinds: list[str]
    n_good: int
    n_defects: int


def read_good_images(data: Path, val_fraction: float, seed: int,
                     progress: Callable[[str], None]) -> GoodImages:
    """Read the category's good images and split them (``val_fraction``, ``seed``)."""
    folder = good_folder(find_category(data))
    images, names = read_folder(folder, IMAGE_SIZE)
    fit_idx, val_idx = split_good(len(images), val_fraction, seed)
    reference = data_reference(folder, names) | {
        "fit_images": len(fit_idx), "val_images": [names[i] for i in val_idx],
        "split_seed": seed}
    good = GoodImages(images[fit_idx], images[val_idx], reference)
    progress(f"read {len(images)} good images from {reference['folder']}: {len(good.fit)} to "
             f"fit, {len(good.val)} to validate")
    return good


def synthetic_set(val: np.ndarray) -> SyntheticSet:
    """The validation images followed by every kind of synthetic defect on each of them
    (``SYNTHETIC_SEED``)."""
    defects, masks, kinds = make_defects(val, seed=SYNTHETIC_SEED, per_image=len(KINDS))
    return SyntheticSet(np.concatenate([val, defects]),
                        np.r_[np.zeros(len(val), int), np.ones(len(defects), int)],
                        np.concatenate([np.zeros((len(val), *masks.shape[1:]), bool), masks]),
                        kinds, len(val), len(defects))


def synthetic_figures(detector, synthetic: SyntheticSet, threshold: float | None) -> dict:
    """Image and pixel AUROC (and F1 at ``threshold``) on the synthetic set, as it is and
    rotated (:func:`pipelines.inspection.metrics.evaluate_maps`)."""
    return evaluate_maps(_explainer(detector), synthetic.images, synthetic.labels,
                         synthetic.masks, threshold)


def fit_detector(name: str, params: dict, fit: np.ndarray, progress: Callable[[str], None]
                 ) -> tuple[object, float, float]:
    """One detector fitted on the fit part: (detector, wall seconds, CPU seconds)."""
    detector = MODELS[name](**params)
    t0, c0 = time.perf_counter(), time.process_time()
    detector.fit(fit.astype(np.float32), feature_names=list(CHANNELS), progress=progress)
    return detector, time.perf_counter() - t0, time.process_time() - c0


def threshold_section(normal: np.ndarray, target_far: float, n_val: int,
                      val_rotations: int) -> dict:
    """The threshold flagging ``target_far`` of the normal scores, and how it was measured."""
    threshold = threshold_at_false_alarm_rate(normal, target_far)
    return {"value": threshold, "target_false_alarm_rate": target_far,
            "normal_false_alarm_rate": false_alarm_rate(normal, threshold),
            "normal_score_quantiles": score_quantiles(normal),
            "source": f"{n_val} held-out good training images, as they are and at "
                      f"{val_rotations} random rotations each ({len(normal)} scores)"}


def onnx_parity(detector, images: np.ndarray) -> dict:
    """The largest difference between the torch model and its ONNX export (scores, maps)."""
    torch_scores, torch_maps = detector.torch_outputs(images.astype(np.float32))
    onnx = detector.explain(images.astype(np.float32))
    return {"scores": float(np.abs(torch_scores - onnx.scores).max()),
            "maps": float(np.abs(torch_maps - onnx.maps).max())}


def train_model(name: str, params: dict, good: GoodImages, synthetic: SyntheticSet, *,
                val_rotations: int, target_far: float, seed: int,
                progress: Callable[[str], None]) -> tuple[object, dict]:
    """One model: fit, threshold on the validation images, synthetic-defect figures, parity.
    Returns the detector and its entry in the evaluation document."""
    detector, fit_seconds, fit_cpu = fit_detector(name, params, good.fit, progress)
    normal = normal_scores(detector, good.val, val_rotations, seed)
    threshold = threshold_section(normal, target_far, len(good.val), val_rotations)
    s = synthetic_figures(detector, synthetic, threshold["value"])
    result = {
        "threshold": threshold,
        "synthetic_validation": s | {"kinds": sorted(set(synthetic.kinds)),
                                     "defects": synthetic.n_defects, "good": synthetic.n_good},
        "fit_seconds": round(fit_seconds, 1), "fit_cpu_seconds": round(fit_cpu, 1),
        "torch_onnx_max_abs_diff": onnx_parity(detector, good.val[:8]),
        "onnx_bytes": len(detector.onnx_),
    }
    progress(f"{name}: fit {fit_seconds:.0f}s; synthetic defects on validation: image AUROC "
             f"{s['image_auroc']:.4f} / rotated {s['rotated']['image_auroc']:.4f}, pixel "
             f"AUROC {s['pixel_auroc']:.4f} / rotated {s['rotated']['pixel_auroc']:.4f}; "
             f"threshold {threshold['value']:.4f}")
    return detector, result


def merit(result: dict) -> float:
    """What picks the default model: the mean of its four synthetic AUROCs (image and pixel,
    aligned and rotated)."""
    s = result["synthetic_validation"]
    return float(np.mean([s["image_auroc"], s["pixel_auroc"], s["rotated"]["image_auroc"],
                          s["rotated"]["pixel_auroc"]]))


def train_inspection(data: Path, artifacts_dir: Path | None, *, models: tuple[str, ...] =
                     tuple(MODELS), params: dict[str, dict] | None = None,
                     val_fraction: float = VAL_FRACTION, val_rotations: int = 3,
                     target_far: float = 0.05, n_jobs: int = 2, seed: int = SPLIT_SEED,
                     progress: Callable[[str], None] = lambda s: None) -> dict:
    """Fit, threshold and compare the detectors; with ``artifacts_dir`` write the release.

    Returns the evaluation document (per model: synthetic-defect metrics on validation,
    threshold, timings, torch/ONNX parity).
    """
    started = time.perf_counter()
    load_before = os.getloadavg()
    good = read_good_images(data, val_fraction, seed, progress)
    synthetic = synthetic_set(good.val)
    results, detectors = {}, {}
    for name in models:
        detectors[name], results[name] = train_model(
            name, {"n_jobs": n_jobs, **(params or {}).get(name, {})}, good, synthetic,
            val_rotations=val_rotations, target_far=target_far, seed=seed, progress=progress)
    default = max(results, key=lambda n: merit(results[n]))
    evaluation = {"default_model": default, "protocol": PROTOCOL, "models": results,
                  "training_data": good.reference, "total_seconds":
                  round(time.perf_counter() - started, 1), "torch_threads": n_jobs,
                  "load_average_before": [round(v, 2) for v in load_before],
                  "load_average_after": [round(v, 2) for v in os.getloadavg()]}
    progress(f"default model: {default} (mean synthetic AUROC "
             f"{', '.join(f'{n} {merit(r):.4f}' for n, r in results.items())})")
    if artifacts_dir is None:
        return evaluation
    write_inspection_release(Path(artifacts_dir) / MODULE, detectors, evaluation,
                             np.concatenate([good.fit, good.val]))
    progress(f"release written to {Path(artifacts_dir) / MODULE}")
    return evaluation


def write_inspection_release(directory: Path, detectors: dict, evaluation: dict,
                             good_images: np.ndarray) -> None:
    """One bundle per model, the evaluation document and the drift reference of the good
    training photos (``good_images``, fit and validation parts), written in one step."""
    reference = evaluation["training_data"]
    with atomic_directory(directory) as release:
        for name, detector in detectors.items():
            save_bundle(detector, release / name, module=MODULE, manifest_fields=bundle_fields(
                name, evaluation["models"][name], reference))
        (release / EVALUATION_FILE).write_text(json.dumps(evaluation, indent=2) + "\n")
        write_photo_reference(release, good_images)
        write_release(release, module=MODULE, models=list(detectors),
                      default_model=evaluation["default_model"],
                      files={EVALUATION_FILE: "validation (synthetic defect) metrics, "
                                              "thresholds, timings",
                             REFERENCE_FILE: REFERENCE_ROLE},
                      fields={"training_data": reference})


def bundle_fields(name: str, result: dict, reference: dict) -> dict:
    """What a model's manifest records beside the detector's own fields."""
    return {
        "name": name, "role": "anomaly",
        "version": f"{name}-{time.strftime('%Y%m%d')}",
        "training_data": reference,
        "feature_schema": {"dtype": "RGB 0..255", "image_size": [IMAGE_SIZE, IMAGE_SIZE]},
        "preprocessing": {"outside_onnx": "decode, convert to RGB (transparency on white), "
                                          f"bilinear resize to {IMAGE_SIZE} x {IMAGE_SIZE}",
                          "inside_onnx": "scale to 0..1, average down to work_size, the "
                                         "model, map blur and enlargement"},
        "threshold": result["threshold"],
        "metrics": _page_metrics(result["synthetic_validation"]) | {
            "protocol": PROTOCOL, "fit_seconds": result["fit_seconds"]},
        "torch_onnx_max_abs_diff": result["torch_onnx_max_abs_diff"],
    }
