"""The training composer: ``python -m pipelines.train <module> --data DIR``.

For the sensor module it loads labelled wafers, evaluates every candidate model with the
same protocols (repeated stratified CV and a time-ordered split when real timestamps exist),
ships the best supervised model plus the autoencoder, and writes a bundle for each under
``artifacts/sensor/<model>/`` with the evaluation in its manifest. Progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from pipelines.artifacts import save_bundle, sha256
from pipelines.detectors.base import get_detector_class
from pipelines.evaluate import cross_validate, score_quantiles, time_split
from pipelines.ingest.secom import load_secom
from pipelines.ingest.sensor_csv import SensorTable
from pipelines.ingest.sensor_fault import load_sensor_fault
from pipelines.samples import SAMPLE_MODEL_FILE, fit_sample_model
from pipelines.schema import SENSOR_COLUMNS

logger = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
DEFAULT_ARTIFACTS_DIR = Path(__file__).resolve().parent.parent / "artifacts"

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
    """Load labelled wafers from a SECOM or sensor-fault directory; return table and data reference."""
    directory = Path(directory)
    if (directory / "secom").is_dir():
        directory = directory / "secom"
    reference: dict = {"path": str(directory)}
    if any((directory / n).exists() for n in ("uci-secom.csv", "uci-secom.csv.gz", "secom.data")):
        table = load_secom(directory)
        source = next(directory / n for n in ("uci-secom.csv", "uci-secom.csv.gz", "secom.data")
                      if (directory / n).exists())
        reference.update(source="uci-secom", file=source.name, sha256=sha256(source))
    else:
        table, reports = load_sensor_fault(directory)
        reference.update(source="sensor-fault batches",
                         files_accepted=[r.file for r in reports if r.accepted],
                         files_rejected=len([r for r in reports if not r.accepted]))
    reference.update(rows=len(table), class_counts={"pass": int((table.labels == 0).sum()),
                                                     "fail": int((table.labels == 1).sum())})
    return table, reference


def make_factory(candidate: str, overrides: dict | None = None) -> Callable[[], object]:
    """A zero-argument function that builds a fresh, unfitted detector for a candidate."""
    registered, params, _ = SENSOR_CANDIDATES[candidate]
    return partial(get_detector_class(registered), **{**params, **(overrides or {})})


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
        cv = cross_validate(factory, X, y, n_repeats=n_repeats, target_far=target_far,
                            progress=lambda s, n=name: progress(f"{n}: cv {s}"))
        entry = {"cv": cv.metrics}
        if table.times is not None:
            progress(f"{name}: time split")
            order = table.times.to_numpy().astype("datetime64[ns]").astype(np.int64)
            entry["time_split"] = time_split(factory, X, y, order, target_far=target_far)
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
    """Evaluate sensor candidates, then (unless ``evaluate_only``) fit and save the shipped ones."""
    candidates = candidates or list(SENSOR_CANDIDATES)
    unknown = [c for c in candidates if c not in SENSOR_CANDIDATES]
    if unknown:
        raise ValueError(f"unknown sensor model(s) {unknown}; choose from {list(SENSOR_CANDIDATES)}")
    table, reference = load_sensor_data(data_dir)
    progress(f"loaded {reference['rows']} wafers ({reference['class_counts']['fail']} fail) "
             f"from {reference['path']}")
    evaluation, thresholds = evaluate_sensor(table, candidates, n_repeats=n_repeats,
                                             target_far=target_far, overrides=overrides,
                                             progress=progress)
    if evaluate_only:
        return evaluation
    shipped = [n for n in candidates
               if n == evaluation["shipped"] or SENSOR_CANDIDATES[n][2] == "anomaly"]
    module_dir = Path(artifacts_dir) / "sensor"
    for stale in module_dir.glob("*/manifest.json") if module_dir.exists() else []:
        if stale.parent.name not in shipped:
            for f in stale.parent.iterdir():
                f.unlink()
            stale.parent.rmdir()
    for name in shipped:
        progress(f"{name}: fitting on all {len(table)} wafers")
        detector = make_factory(name, (overrides or {}).get(name))().fit(table.values, table.labels)
        save_bundle(detector, module_dir / name, module="sensor", manifest_fields={
            "name": name,
            "role": SENSOR_CANDIDATES[name][2],
            "version": f"{name}-{time.strftime('%Y%m%d')}",
            "training_data": reference,
            "feature_schema": {"names": SENSOR_COLUMNS, "dtype": "float64",
                               "id_column": "first column (wafer name or timestamp)",
                               "missing": "allowed; imputed with training medians"},
            "preprocessing": {"max_missing": detector.max_missing,
                              "kept": len(detector.preprocessor_["kept"]),
                              "dropped_missing": detector.preprocessor_["dropped_missing"],
                              "dropped_constant": detector.preprocessor_["dropped_constant"],
                              "file": "preprocessor.json"},
            "threshold": thresholds[name],
            "metrics": evaluation["models"][name],
            "evaluation": evaluation,
        })
    (module_dir / "evaluation.json").write_text(json.dumps(evaluation, indent=2) + "\n")
    write_sample_model(table, module_dir)
    return evaluation


def write_sample_model(table: SensorTable, module_dir: Path) -> Path:
    """Store the statistics the app draws its sample CSV from (no training rows)."""
    path = Path(module_dir) / SAMPLE_MODEL_FILE
    path.write_text(json.dumps(fit_sample_model(table.values, table.labels)) + "\n")
    return path


def _parser(evaluate_only: bool) -> argparse.ArgumentParser:
    verb = "evaluate" if evaluate_only else "train"
    parser = argparse.ArgumentParser(prog=f"python -m pipelines.{verb}",
                                     description=f"{verb.title()} a FabLens module's models.")
    parser.add_argument("module", choices=["sensor"])
    parser.add_argument("--data", type=Path,
                        default=Path(os.environ.get("FABLENS_DATA_DIR", DEFAULT_DATA_DIR)),
                        help="data directory (default: $FABLENS_DATA_DIR or ../shared/data)")
    parser.add_argument("--artifacts", type=Path,
                        default=Path(os.environ.get("FABLENS_ARTIFACTS_DIR", DEFAULT_ARTIFACTS_DIR)))
    parser.add_argument("--models", nargs="+", help="candidates (default: all)")
    parser.add_argument("--repeats", type=int, default=3, help="CV repeats (default 3)")
    parser.add_argument("--far", type=float, default=0.05,
                        help="target false-alarm rate on passing wafers (default 0.05)")
    parser.add_argument("--epochs", type=int, help="autoencoder epochs (default: the model's)")
    return parser


def run_cli(argv: list[str] | None = None, evaluate_only: bool = False) -> int:
    """Shared command line of ``pipelines.train`` and ``pipelines.evaluate``."""
    args = _parser(evaluate_only).parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = {"autoencoder": {"epochs": args.epochs}} if args.epochs else None
    started = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{args.module} {time.perf_counter() - started:6.1f}s] {message}",
              file=sys.stderr, flush=True)

    evaluation = train_sensor(args.data, args.artifacts, candidates=args.models,
                              n_repeats=args.repeats, target_far=args.far, overrides=overrides,
                              evaluate_only=evaluate_only, progress=progress)
    if evaluate_only:
        print(json.dumps(evaluation, indent=2))
    else:
        progress(f"shipped {evaluation['shipped']}; bundles in {args.artifacts / args.module}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli())
