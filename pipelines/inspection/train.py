"""The inspection training composer: fit both detectors on good images, threshold, release.

Protocol (recorded in the manifests): the good training images (``train/good`` of an MVTec AD
category, or a plain folder of a user's good parts) are split at random (fixed seed) into a
fit part and a validation part (``val_fraction``). Each detector fits on the fit part only.
The validation part, as it is and turned by ``val_rotations`` random angles about the centre,
gives the normal scores; the threshold is the one at which ``target_far`` of them are flagged.
Synthetic defects (``synthetic``) on the validation images, aligned and rotated, measure each
model without touching any test image; the default model is the one with the higher mean of
those four figures (image and pixel AUROC, aligned and rotated). Test figures come from
``python -m pipelines.evaluate inspection --data <category>``.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from pipelines.core.artifacts import atomic_directory, save_bundle, sha256, write_release
from pipelines.core.thresholds import (false_alarm_rate, score_quantiles,
                                       threshold_at_false_alarm_rate)
from pipelines.inspection.detectors.autoencoder import AutoencoderDetector
from pipelines.inspection.detectors.radial import RadialGaussianDetector
from pipelines.inspection.ingest import good_folder, image_files, read_folder
from pipelines.inspection.metrics import evaluate_maps
from pipelines.inspection.schema import CHANNELS, IMAGE_SIZE
from pipelines.inspection.synthetic import make_defects
from pipelines.inspection.transform import random_angles, rotate_batch

MODULE = "inspection"
MODELS = {"radial": RadialGaussianDetector, "autoencoder": AutoencoderDetector}
EVALUATION_FILE = "evaluation.json"
SYNTHETIC_SEED = 1


def find_category(path: Path) -> Path:
    """The category folder: ``path`` itself (MVTec AD layout or plain folder), or
    ``path/mvtec/bottle`` (the project's data directory)."""
    path = Path(path)
    for candidate in (path, path / "mvtec" / "bottle"):
        if (candidate / "train" / "good").is_dir():
            return candidate
    if path.is_dir() and image_files(path):
        return path
    raise FileNotFoundError(f"no train/good folder (MVTec AD layout) nor images in {path} or "
                            f"{path / 'mvtec' / 'bottle'}")


def split_good(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the fit and validation parts of ``n`` good images (random, fixed seed)."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(val_fraction * n)))
    if n - n_val < 2:
        raise ValueError(f"{n} good images are too few to fit and validate")
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def data_reference(folder: Path, names: list[str]) -> dict:
    """Name and content hash of the good images trained on (no machine path)."""
    digest = __import__("hashlib").sha256()
    for name in names:
        digest.update(name.encode())
        digest.update(sha256(folder / name).encode())
    return {"folder": f"{folder.parent.parent.name}/train/good" if folder.name == "good"
            else folder.name, "images": len(names), "sha256_of_file_hashes": digest.hexdigest()}


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


def train_inspection(data: Path, artifacts_dir: Path | None, *, models: tuple[str, ...] =
                     tuple(MODELS), params: dict[str, dict] | None = None,
                     val_fraction: float = 0.2, val_rotations: int = 3, target_far: float = 0.05,
                     n_jobs: int = 2, seed: int = 0,
                     progress: Callable[[str], None] = lambda s: None) -> dict:
    """Fit, threshold and compare the detectors; with ``artifacts_dir`` write the release.

    Returns the evaluation document (per model: synthetic-defect metrics on validation,
    threshold, timings, torch/ONNX parity).
    """
    started = time.perf_counter()
    load_before = os.getloadavg()
    category = find_category(data)
    folder = good_folder(category)
    images, names = read_folder(folder, IMAGE_SIZE)
    fit_idx, val_idx = split_good(len(images), val_fraction, seed)
    fit, val = images[fit_idx], images[val_idx]
    reference = data_reference(folder, names) | {
        "fit_images": len(fit_idx), "val_images": [names[i] for i in val_idx],
        "split_seed": seed}
    progress(f"read {len(images)} good images from {reference['folder']}: {len(fit)} to fit, "
             f"{len(val)} to validate")
    defects, masks, kinds = make_defects(val, seed=SYNTHETIC_SEED)
    synth_images = np.concatenate([val, defects])
    synth_labels = np.r_[np.zeros(len(val), int), np.ones(len(defects), int)]
    synth_masks = np.concatenate([np.zeros_like(masks), masks])
    results, detectors = {}, {}
    for name in models:
        params_m = {"n_jobs": n_jobs, **(params or {}).get(name, {})}
        detector = MODELS[name](**params_m)
        t0, c0 = time.perf_counter(), time.process_time()
        detector.fit(fit.astype(np.float32), feature_names=list(CHANNELS), progress=progress)
        fit_seconds, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
        normal = normal_scores(detector, val, val_rotations, seed)
        threshold = threshold_at_false_alarm_rate(normal, target_far)
        synthetic = evaluate_maps(_explainer(detector), synth_images, synth_labels, synth_masks,
                                  threshold)
        torch_scores, torch_maps = detector.torch_outputs(val[:8].astype(np.float32))
        onnx = detector.explain(val[:8].astype(np.float32))
        parity = {"scores": float(np.abs(torch_scores - onnx.scores).max()),
                  "maps": float(np.abs(torch_maps - onnx.maps).max())}
        results[name] = {
            "threshold": {"value": threshold, "target_false_alarm_rate": target_far,
                          "normal_false_alarm_rate": false_alarm_rate(normal, threshold),
                          "normal_score_quantiles": score_quantiles(normal),
                          "source": f"{len(val)} held-out good training images, as they are "
                                    f"and at {val_rotations} random rotations each "
                                    f"({len(normal)} scores)"},
            "synthetic_validation": synthetic | {"kinds": sorted(set(kinds)),
                                                 "defects": len(defects), "good": len(val)},
            "fit_seconds": round(fit_seconds, 1), "fit_cpu_seconds": round(fit_cpu, 1),
            "torch_onnx_max_abs_diff": parity, "onnx_bytes": len(detector.onnx_),
        }
        detectors[name] = detector
        s = synthetic
        progress(f"{name}: fit {fit_seconds:.0f}s; synthetic defects on validation: image AUROC "
                 f"{s['image_auroc']:.4f} / rotated {s['rotated']['image_auroc']:.4f}, pixel "
                 f"AUROC {s['pixel_auroc']:.4f} / rotated {s['rotated']['pixel_auroc']:.4f}; "
                 f"threshold {threshold:.4f}")

    def merit(name: str) -> float:
        s = results[name]["synthetic_validation"]
        return float(np.mean([s["image_auroc"], s["pixel_auroc"], s["rotated"]["image_auroc"],
                              s["rotated"]["pixel_auroc"]]))

    default = max(results, key=merit)
    protocol = ("fit on a random part of the good training images; threshold at the target "
                "false-alarm rate of the held-out good training images (as they are and "
                "rotated); synthetic defects (cut-paste, spots, chipped rim) on those held-out "
                "images measure the models; default = higher mean synthetic AUROC. No test "
                "image is used.")
    evaluation = {"default_model": default, "protocol": protocol, "models": results,
                  "training_data": reference, "total_seconds":
                  round(time.perf_counter() - started, 1), "torch_threads": n_jobs,
                  "load_average_before": [round(v, 2) for v in load_before],
                  "load_average_after": [round(v, 2) for v in os.getloadavg()]}
    progress(f"default model: {default} (mean synthetic AUROC "
             f"{', '.join(f'{n} {merit(n):.4f}' for n in results)})")
    if artifacts_dir is None:
        return evaluation
    with atomic_directory(Path(artifacts_dir) / MODULE) as release:
        for name, detector in detectors.items():
            r = results[name]
            save_bundle(detector, release / name, module=MODULE, manifest_fields={
                "name": name, "role": "anomaly",
                "version": f"{name}-{time.strftime('%Y%m%d')}",
                "training_data": reference,
                "feature_schema": {"dtype": "RGB 0..255",
                                   "image_size": [IMAGE_SIZE, IMAGE_SIZE]},
                "preprocessing": {"outside_onnx": "decode, convert to RGB (transparency on "
                                                  "white), bilinear resize to "
                                                  f"{IMAGE_SIZE} x {IMAGE_SIZE}",
                                  "inside_onnx": "scale to 0..1, average down to work_size, "
                                                 "the model, map blur and enlargement"},
                "threshold": r["threshold"],
                "metrics": _page_metrics(r["synthetic_validation"]) | {
                    "protocol": protocol, "fit_seconds": r["fit_seconds"]},
                "torch_onnx_max_abs_diff": r["torch_onnx_max_abs_diff"],
            })
        (release / EVALUATION_FILE).write_text(json.dumps(evaluation, indent=2) + "\n")
        write_release(release, module=MODULE, models=list(detectors), default_model=default,
                      files={EVALUATION_FILE: "validation (synthetic defect) metrics, "
                                              "thresholds, timings"},
                      fields={"training_data": reference})
    progress(f"release written to {Path(artifacts_dir) / MODULE}")
    return evaluation
