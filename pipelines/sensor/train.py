"""The sensor training composer: evaluate every candidate, ship the best, write the release.

It loads labelled wafers, evaluates every candidate model with the same protocols (repeated
stratified CV and a time-ordered split when real timestamps exist), ships the best
supervised model plus the autoencoder, and writes the sensor release under
``artifacts/sensor/``: one bundle per shipped model, ``evaluation.json`` and
``sample_model.json``, swapped into place in one step.
"""
from __future__ import annotations

import hashlib
import json
import time
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from pipelines.core.artifacts import atomic_directory, save_bundle, sha256, write_release
from pipelines.core.detectors import get_detector_class
from pipelines.core.evaluation import cross_validate, stratified, time_split
from pipelines.core.thresholds import score_quantiles
from pipelines.sensor.ingest.batches import load_sensor_fault
from pipelines.sensor.ingest.secom import load_secom
from pipelines.sensor.ingest.table import SensorTable
from pipelines.sensor.samples import SAMPLE_MODEL_FILE, fit_sample_model
from pipelines.sensor.schema import SENSOR_COLUMNS

MODULE = "sensor"
EVALUATION_FILE = "evaluation.json"
SECOM_FILES = ("uci-secom.csv", "uci-secom.csv.gz", "secom.data")

# candidate name -> (registered detector, parameters, role)
# Boosted trees compare the two imbalance treatments on equal (median-imputed) footing; the
# forest is XGBoost in random-forest mode (one round of 300 parallel trees on 63% row samples
# and 5% of sensors per split) with native missing-value handling.
SENSOR_CANDIDATES: dict[str, tuple[str, dict, str]] = {
    "xgboost": ("xgboost", {"imbalance": "scale_pos_weight"}, "classifier"),
    "xgboost_smote": ("xgboost", {"imbalance": "smote"}, "classifier"),
    "xgboost_forest": ("xgboost", {
        "imbalance": "scale_pos_weight", "missing": "native", "n_estimators": 1,
        "num_parallel_tree": 300, "learning_rate": 1.0, "max_depth": 16, "subsample": 0.632,
        "colsample_bynode": 0.05, "min_child_weight": 2.0, "reg_lambda": 1e-5}, "classifier"),
    "autoencoder": ("autoencoder", {}, "anomaly"),
}


def load_sensor_data(directory: Path) -> tuple[SensorTable, dict]:
    """Load labelled wafers from a SECOM or sensor-fault directory; return table and data reference.

    The reference names the data set and its sha256 (no machine path).
    """
    directory = Path(directory)
    if (directory / "secom").is_dir():
        directory = directory / "secom"
    if any((directory / n).exists() for n in SECOM_FILES):
        table = load_secom(directory)
        source = next(directory / n for n in SECOM_FILES if (directory / n).exists())
        reference: dict = {"name": "uci-secom", "file": source.name, "sha256": sha256(source)}
    else:
        table, reports = load_sensor_fault(directory)
        accepted = sorted(r.file for r in reports if r.accepted)
        digest = hashlib.sha256("".join(f"{name}:{sha256(_batch_path(directory, name))}\n"
                                        for name in accepted).encode()).hexdigest()
        reference = {"name": "sensor-fault batches", "files_accepted": accepted,
                     "files_rejected": len(reports) - len(accepted),
                     "sha256": digest, "sha256_of": "lines '<file>:<sha256>' of accepted files"}
    reference.update(rows=len(table), class_counts={"pass": int((table.labels == 0).sum()),
                                                     "fail": int((table.labels == 1).sum())})
    return table, reference


def _batch_path(directory: Path, name: str) -> Path:
    batch_dir = directory / "Training_Batch_Files"
    return (batch_dir if batch_dir.is_dir() else directory) / name


def make_factory(candidate: str, overrides: dict | None = None) -> Callable[[], object]:
    """A zero-argument function that builds a fresh, unfitted detector for a candidate."""
    registered, params, _ = SENSOR_CANDIDATES[candidate]
    return partial(get_detector_class(MODULE, registered), **{**params, **(overrides or {})})


def evaluate_sensor(table: SensorTable, candidates: list[str], *, n_repeats: int = 3,
                    target_far: float = 0.05, overrides: dict | None = None,
                    progress: Callable[[str], None] = lambda s: None) -> tuple[dict, dict]:
    """Evaluate candidates; return (evaluation document, per-candidate threshold data)."""
    X, y = table.values, table.labels
    models: dict[str, dict] = {}
    thresholds: dict[str, dict] = {}
    for name in candidates:
        factory = make_factory(name, (overrides or {}).get(name))
        start = time.perf_counter()
        cv = cross_validate(factory, X, y, task="binary",
                            splitter=stratified(n_splits=5, n_repeats=n_repeats),
                            target_far=target_far,
                            progress=lambda s, n=name: progress(f"{n}: cv {s}"))
        entry = {"cv": cv.metrics}
        if table.times is not None:
            progress(f"{name}: time split")
            order = table.times.to_numpy().astype("datetime64[ns]").astype(np.int64)
            entry["time_split"] = time_split(factory, X, y, order, target_far=target_far,
                                             unit="wafers")
        else:
            entry["time_split"] = None
            entry["time_split_note"] = "no real timestamps in this data"
        entry["seconds"] = round(time.perf_counter() - start, 1)
        models[name] = entry
        thresholds[name] = {"value": cv.threshold, "target_false_alarm_rate": target_far,
                            "source": "out-of-fold scores of passing wafers",
                            "normal_score_quantiles": score_quantiles(cv.normal_scores)}
        progress(f"{name}: ROC-AUC {cv.metrics['roc_auc']:.3f}  PR-AUC {cv.metrics['pr_auc']:.3f}")
    classifiers = [n for n in models if SENSOR_CANDIDATES[n][2] == "classifier"]
    shipped = max(classifiers, key=lambda n: models[n]["cv"]["roc_auc"]) if classifiers else None
    return {"shipped": shipped, "models": models}, thresholds


def train_sensor(data_dir: Path, artifacts_dir: Path, *, candidates: list[str] | None = None,
                 n_repeats: int = 3, target_far: float = 0.05, overrides: dict | None = None,
                 evaluate_only: bool = False,
                 progress: Callable[[str], None] = lambda s: None) -> dict:
    """Evaluate sensor candidates, then (unless ``evaluate_only``) fit and release the shipped ones."""
    candidates = candidates or list(SENSOR_CANDIDATES)
    unknown = [c for c in candidates if c not in SENSOR_CANDIDATES]
    if unknown:
        raise ValueError(f"unknown sensor model(s) {unknown}; choose from {list(SENSOR_CANDIDATES)}")
    table, reference = load_sensor_data(data_dir)
    progress(f"loaded {reference['rows']} wafers ({reference['class_counts']['fail']} fail) "
             f"from {reference['name']}")
    evaluation, thresholds = evaluate_sensor(table, candidates, n_repeats=n_repeats,
                                             target_far=target_far, overrides=overrides,
                                             progress=progress)
    if evaluate_only:
        return evaluation
    shipped = [n for n in candidates
               if n == evaluation["shipped"] or SENSOR_CANDIDATES[n][2] == "anomaly"]
    with atomic_directory(Path(artifacts_dir) / MODULE) as release:
        for name in shipped:
            progress(f"{name}: fitting on all {len(table)} wafers")
            detector = make_factory(name, (overrides or {}).get(name))().fit(
                table.values, table.labels, feature_names=SENSOR_COLUMNS)
            save_bundle(detector, release / name, module=MODULE, manifest_fields={
                "name": name,
                "role": SENSOR_CANDIDATES[name][2],
                "version": f"{name}-{time.strftime('%Y%m%d')}",
                "training_data": reference,
                "feature_schema": {"dtype": "float64",
                                   "id_column": "first column (wafer name or timestamp)",
                                   "missing": "allowed; imputed with training medians"},
                "preprocessing": {"max_missing": detector.max_missing,
                                  "kept": len(detector.preprocessor_["kept"]),
                                  "dropped_missing": detector.preprocessor_["dropped_missing"],
                                  "dropped_constant": detector.preprocessor_["dropped_constant"],
                                  "file": detector.PREPROCESSOR_FILE},
                "threshold": thresholds[name],
                "metrics": evaluation["models"][name],
            })
        (release / EVALUATION_FILE).write_text(json.dumps(evaluation, indent=2) + "\n")
        (release / SAMPLE_MODEL_FILE).write_text(
            json.dumps(fit_sample_model(table.values, table.labels)) + "\n")
        write_release(release, module=MODULE, models=shipped,
                      default_model=evaluation["shipped"] or shipped[0],
                      files={EVALUATION_FILE: "evaluation of every candidate",
                             SAMPLE_MODEL_FILE: "statistics the sample CSV is drawn from"},
                      fields={"training_data": reference})
    return evaluation
