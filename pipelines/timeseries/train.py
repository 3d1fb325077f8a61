"""The time-series training composer: split engines, fit the scaler and the five models,
choose thresholds (anomaly detectors: on healthy validation windows; supervised models: out of
fold on cut training engines), write the release.

Protocol (recorded in the manifests and ``evaluation.json``):

* ``train_FD001`` is split by engine (unit), never by row: ``val_fraction`` of the units,
  drawn with ``seed``, are validation engines; the rest train.
* The scaler (sensors kept, z-score statistics) is fitted on the training engines' rows only.
* Training windows: every full window (``WINDOW`` cycles) of the training engines, with
  each one's machine history slopes (``transform.history_slopes``) for the XGBoost models. The RUL
  regressor learns ``min(RUL, cap)`` on all of them; the anomaly detectors (Isolation Forest,
  LSTM autoencoder, PatchTST forecaster) learn from the healthy ones (RUL > ``ANOMALY_RUL``).
  The end-of-life classifier learns "RUL <= 30" on all of them.
* Thresholds: for each anomaly detector, the level flagging ``target_far`` of the healthy
  validation windows (RUL > 30). For the two supervised models (the RUL regressor's flag
  "predicted RUL <= L", score = cap - RUL >= cap - L, and the end-of-life classifier's
  probability), the level with the best F1 out of fold on the training engines cut like the
  official test set (``selection``: ``OOF_SPLITS``-fold ``GroupKFold`` by engine,
  ``SELECTION_CUTS`` cuts with seeds from ``SELECTION_SEED``, pooled): the validation engines
  play no part in it. Each records its false-alarm rate on the healthy validation windows.
* Validation metrics: F1, precision, recall, ROC-AUC over every full window of the validation
  engines (the anomaly detectors' thresholds were set on their healthy windows, so their F1
  is slightly optimistic); the same over the windows of the validation engines cut like the
  official test set, ``CUT_F1_CUTS`` cuts pooled (``cut``: the figure the official test files
  resemble); RUL RMSE and NASA score on the validation engines cut like the official test
  set (``evaluate.pseudo_test``), ``N_CUTS`` times with seeds ``seed..seed + N_CUTS - 1`` and
  pooled (20 engines alone swing the RMSE by several cycles; each cut's RMSE is recorded
  too), and RMSE over all validation windows against the capped RUL.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from pipelines.core.artifacts import atomic_directory, save_bundle, sha256, write_release
from pipelines.core.detectors import get_detector_class
from pipelines.core.evaluation import binary_metrics
from pipelines.core.thresholds import (false_alarm_rate, score_quantiles,
                                       threshold_at_false_alarm_rate)
from pipelines.timeseries.detectors import history_kwargs
from pipelines.timeseries.evaluate import (evaluation_windows, pooled_cuts, pseudo_test,
                                           rul_metrics)
from pipelines.timeseries.fingerprint import (TRAINING_ROWS_FILE, TRAINING_ROWS_ROLE,
                                              write_fingerprint)
from pipelines.timeseries.ingest import Series, find_data, read_cmapss, rul_per_row, subset
from pipelines.timeseries.reference import REFERENCE_FILE, REFERENCE_ROLE, write_range_reference
from pipelines.timeseries.schema import ANOMALY_RUL, RUL_CAP, WINDOW
from pipelines.timeseries.selection import OOF_SPLITS, SELECTION_CUTS, select_level
from pipelines.timeseries.split import split_machines
from pipelines.timeseries.transform import (SCALER_FILE, Windows, fit_scaler, series_windows,
                                            standardise)

MODULE = "timeseries"
EVALUATION_FILE = "evaluation.json"
RUL_MODEL = "xgboost_rul"
EOL_MODEL = "xgboost_eol"
SUPERVISED = (RUL_MODEL, EOL_MODEL)  # fitted on every window with its RUL; level chosen OOF
ANOMALY_MODELS = ("isolation_forest", "lstm_autoencoder", "patchtst")
MODELS = (RUL_MODEL, EOL_MODEL, *ANOMALY_MODELS)
N_CUTS = 5  # random cuts of the validation engines for the RUL figures (pooled)
CUT_F1_CUTS = 20  # random cuts of the validation engines for the test-like F1 (pooled)
ROLES = {RUL_MODEL: "rul_regressor", EOL_MODEL: "end_of_life_classifier",
         "isolation_forest": "anomaly_detector", "lstm_autoencoder": "anomaly_detector",
         "patchtst": "anomaly_detector"}


def end_of_life_profile(scaler: dict, series: Series, last: int = 5) -> dict:
    """Training engines' mean z-score per kept sensor over their last ``last`` cycles, and each
    dropped sensor's (constant) training value: what generated sample histories drift towards."""
    z = standardise(scaler, series.values, series.sensors)
    end = rul_per_row(series) < last
    dropped = [series.sensors.index(s) for s in scaler["dropped"]]
    return {"end_of_life_z": np.round(z[end].mean(axis=0), 4).tolist(),
            "dropped_values": np.round(np.median(series.values[:, dropped], axis=0), 4).tolist()}


def _threshold(name: str, detector, healthy: np.ndarray, target_far: float,
               selection: dict | None = None) -> dict:
    if selection is not None:
        value = selection["value"]
        how = (f"chosen to maximise pooled out-of-fold F1 (label: true RUL <= {ANOMALY_RUL}) "
               f"on the {selection['engines']} training engines cut like the official test "
               f"set: {selection['splits']}-fold GroupKFold by engine, {selection['cuts']} "
               f"cuts (seeds {selection['seeds']}) pooled, {selection['windows']} windows "
               f"({selection['anomalous']} anomalous); out-of-fold F1 there "
               f"{selection['oof_f1']:.3f}; target_false_alarm_rate is its measured rate on "
               f"healthy validation windows")
        if name == RUL_MODEL:
            value = float(value)
            rule = f"flag when predicted RUL <= {detector.cap - value:.2f} (score = " \
                   f"{detector.cap:g} - RUL >= {value:.4g})"
        else:
            rule = f"flag when P(RUL <= {ANOMALY_RUL}) >= {value:.4g}"
        source = how
        far = false_alarm_rate(healthy, value)
    else:
        value = threshold_at_false_alarm_rate(healthy, target_far)
        rule = "flag when score >= value"
        source = f"flags {target_far:.1%} of healthy validation windows (RUL > {ANOMALY_RUL})"
        far = target_far
    return {"value": value, "rule": rule, "source": source,
            "target_false_alarm_rate": max(far, 1e-6),
            "measured_false_alarm_rate": false_alarm_rate(healthy, value),
            "normal_score_quantiles": score_quantiles(healthy)} | \
        ({"selection": selection} if selection is not None else {})


@dataclass(frozen=True)
class Engines:
    """The training file split by engine: the whole series, its training and validation parts."""

    file: Path
    series: Series
    train_ids: list[str]
    val_ids: list[str]
    train: Series
    val: Series


@dataclass(frozen=True)
class TrainingWindows:
    """Every full window of the training engines with its RUL, and the healthy ones used."""

    windows: Windows
    rul: np.ndarray
    healthy: np.ndarray


@dataclass(frozen=True)
class ValidationWindows:
    """What the validation figures are computed on: every full window of the validation
    engines (``windows``, ``rul``, labels ``y``), the same engines cut ``CUT_F1_CUTS`` times
    and pooled (``cut``, ``y_cut``) and cut ``N_CUTS`` times for RUL (``rul_cuts``: per cut,
    its windows and each engine's last one, and the true RUL there)."""

    windows: Windows
    rul: np.ndarray
    y: np.ndarray
    cut: Windows
    y_cut: np.ndarray
    rul_cuts: list[tuple[Windows, np.ndarray]]
    rul_cut_truth: list[np.ndarray]


def split_engines(data: Path, val_fraction: float, seed: int) -> Engines:
    """Read the training file and split it by engine (``val_fraction`` of them, ``seed``)."""
    file = find_data(data)
    series = read_cmapss(file)
    train_ids, val_ids = split_machines(series.machine_ids(), val_fraction, seed)
    return Engines(file, series, train_ids, val_ids, subset(series, train_ids),
                   subset(series, val_ids))


def fit_training_scaler(train: Series) -> dict:
    """The scaler (sensors kept, z-score statistics) of the training engines, with their
    end-of-life profile."""
    scaler = fit_scaler(train.values, train.sensors)
    return scaler | end_of_life_profile(scaler, train)


def training_windows(scaler: dict, train: Series, seed: int, max_healthy: int | None
                     ) -> TrainingWindows:
    """Full training windows and their RUL; the healthy ones (RUL > ``ANOMALY_RUL``), at most
    ``max_healthy`` of them drawn with ``seed``."""
    windows = series_windows(scaler, train, WINDOW, full_only=True)
    rul = rul_per_row(train)[windows.rows]
    healthy = windows.X[rul > ANOMALY_RUL]
    if max_healthy is not None and len(healthy) > max_healthy:
        pick = np.random.default_rng(seed).choice(len(healthy), max_healthy, replace=False)
        healthy = healthy[np.sort(pick)]
    return TrainingWindows(windows, rul, healthy)


def validation_windows(scaler: dict, val: Series, val_ids: list[str], seed: int
                       ) -> ValidationWindows:
    """The validation engines' full windows, and the same engines cut like the official test
    set: ``N_CUTS`` cuts for RUL, ``CUT_F1_CUTS`` pooled for F1 (seeds from ``seed``)."""
    windows = series_windows(scaler, val, WINDOW, full_only=True)
    rul = rul_per_row(val)[windows.rows]
    cuts = [pseudo_test(val, val_ids, seed=seed + k) for k in range(N_CUTS)]
    rul_cuts = [evaluation_windows(scaler, cut, WINDOW)[:2] for cut, _ in cuts]
    f1_cuts, f1_last_rul = pooled_cuts(val, val_ids, list(range(seed, seed + CUT_F1_CUTS)))
    cut, _, _ = evaluation_windows(scaler, f1_cuts, WINDOW)
    y_cut = (rul_per_row(f1_cuts, f1_last_rul)[cut.rows] <= ANOMALY_RUL).astype(int)
    return ValidationWindows(windows, rul, (rul <= ANOMALY_RUL).astype(int), cut, y_cut,
                             rul_cuts, [last_rul for _, last_rul in cuts])


def fit_detector(name: str, detector, training: TrainingWindows, scaler: dict,
                 engines: Engines, progress: Callable[[str], None]) -> tuple[float, dict | None]:
    """Fit one model; returns its fit time and, for a supervised one, its flag-level selection
    (out of fold on the training engines, ``selection``)."""
    t0 = time.perf_counter()
    names = scaler["sensors"]
    if name not in SUPERVISED:
        if hasattr(detector, "fit_progress"):
            detector.fit(training.healthy, feature_names=names, progress=progress)
        else:
            detector.fit(training.healthy, feature_names=names)
        return round(time.perf_counter() - t0, 1), None
    w = training.windows
    detector.fit(w.X, training.rul, feature_names=names, history=w.history)
    seconds = round(time.perf_counter() - t0, 1)
    selection = select_level(name, detector, scaler, engines.train, engines.train_ids)
    progress(f"{name}: flag level {selection['value']:.4g} (out-of-fold F1 "
             f"{selection['oof_f1']:.3f} on {SELECTION_CUTS} cuts of the training "
             f"engines); {time.perf_counter() - t0:.0f}s with the folds")
    return seconds, selection


def _scores(detector, windows: Windows) -> np.ndarray:
    return detector.score(windows.X, **history_kwargs(detector, windows.history))


def window_metrics(detector, val: ValidationWindows, scores: np.ndarray, threshold: float,
                   seed: int) -> dict:
    """F1, precision, recall, ROC-AUC (and PR-AUC) over every validation window, and the
    same over the cut validation engines (``cut``)."""
    m = binary_metrics(val.y, scores, threshold)
    metrics = {k: round(m[k], 4) for k in ("f1", "precision", "recall", "roc_auc", "pr_auc")}
    m = binary_metrics(val.y_cut, _scores(detector, val.cut), threshold)
    metrics["cut"] = {k: round(m[k], 4) for k in ("f1", "precision", "recall", "roc_auc")} | {
        "windows": int(len(val.y_cut)), "anomalous": int(val.y_cut.sum()),
        "cuts": CUT_F1_CUTS, "seeds": f"{seed}..{seed + CUT_F1_CUTS - 1}"}
    return metrics


def rul_figures(detector, val: ValidationWindows, n_val: int) -> dict:
    """The RUL regressor's RMSE and NASA score on the ``N_CUTS`` cuts pooled, each cut's
    RMSE, and the RMSE over every validation window against the capped RUL."""
    true = np.concatenate(val.rul_cut_truth)
    pred_cut = np.concatenate([detector.predict_rul(cw.X[c_last], cw.history[c_last])
                               for cw, c_last in val.rul_cuts])
    figures = {f"rul_{k}": round(v, 3) if isinstance(v, float) else v
               for k, v in rul_metrics(true, pred_cut).items()}
    figures["rul_rmse_per_cut"] = [
        round(rul_metrics(true[k * n_val:(k + 1) * n_val],
                          pred_cut[k * n_val:(k + 1) * n_val])["rmse"], 3)
        for k in range(N_CUTS)]
    capped = np.minimum(val.rul, detector.cap)
    w = val.windows
    figures["rul_rmse_all_val_windows_capped"] = round(float(np.sqrt(np.mean(
        (detector.predict_rul(w.X, w.history) - capped) ** 2))), 3)
    return figures


def train_model(name: str, params: dict, *, scaler: dict, engines: Engines,
                training: TrainingWindows, val: ValidationWindows, target_far: float,
                seed: int, progress: Callable[[str], None]) -> tuple[object, dict, dict, float]:
    """One model: fit, threshold, validation figures. Returns (detector, threshold, metrics,
    fit seconds)."""
    detector = get_detector_class(MODULE, name)(**params)
    seconds, selection = fit_detector(name, detector, training, scaler, engines, progress)
    scores = _scores(detector, val.windows)
    threshold = _threshold(name, detector, scores[val.y == 0], target_far, selection)
    metrics = window_metrics(detector, val, scores, threshold["value"], seed)
    if name == RUL_MODEL:
        metrics |= rul_figures(detector, val, len(engines.val_ids))
    if hasattr(detector, "parity_"):
        metrics["torch_onnx_max_abs_diff"] = detector.parity_(val.windows.X[:512])
    progress(f"{name}: val F1 {metrics['f1']:.3f} (precision {metrics['precision']:.3f}, "
             f"recall {metrics['recall']:.3f}, ROC-AUC {metrics['roc_auc']:.3f}) at "
             f"{threshold['value']:.4g}; cut engines F1 {metrics['cut']['f1']:.3f}; "
             f"fit {seconds}s")
    return detector, threshold, metrics, seconds


def protocol_text(engines: Engines, seed: int, target_far: float) -> str:
    """The protocol in one sentence, as the manifests and ``evaluation.json`` record it."""
    return (f"engines split by unit ({len(engines.train_ids)} train, {len(engines.val_ids)} "
            f"validation, seed {seed}); scaler on training engines; window {WINDOW}; anomaly "
            f"= RUL <= {ANOMALY_RUL}; anomaly detectors fit on healthy training windows; "
            f"thresholds at {target_far:.0%} false alarms on healthy validation windows; "
            f"supervised models' ({', '.join(SUPERVISED)}) flag levels chosen to maximise "
            f"pooled out-of-fold F1 on the training engines cut like the official test set "
            f"({OOF_SPLITS}-fold GroupKFold by engine, {SELECTION_CUTS} cuts); F1 on all "
            f"validation windows and on validation engines cut like the official test set "
            f"({CUT_F1_CUTS} cuts pooled, 'cut'); RUL on validation engines cut like the "
            f"official test set, {N_CUTS} random cuts pooled")


def data_reference(engines: Engines) -> dict:
    """The training file the release names (name, sha256, rows, engines; no machine path)."""
    series = engines.series
    return {"name": "NASA C-MAPSS FD001 (train)", "file": engines.file.name,
            "sha256": sha256(engines.file), "rows": len(series),
            "engines": len(series.machine_ids())}


def train_timeseries(data: Path, artifacts_dir: Path | None, *, models=MODELS,
                     params: dict | None = None, target_far: float = 0.02,
                     val_fraction: float = 0.2, seed: int = 0, max_healthy: int | None = None,
                     progress: Callable[[str], None] = lambda s: None) -> dict:
    """Train the models on ``data`` (a C-MAPSS training file) and write the release.

    ``params`` maps model name -> constructor parameters; ``max_healthy`` caps the healthy
    windows the anomaly detectors learn from (a random sample; quick runs).
    """
    started = time.perf_counter()
    engines = split_engines(data, val_fraction, seed)
    scaler = fit_training_scaler(engines.train)
    progress(f"{len(engines.train_ids)} training and {len(engines.val_ids)} validation "
             f"engines; {len(scaler['sensors'])} sensors kept, dropped {scaler['dropped']}")
    training = training_windows(scaler, engines.train, seed, max_healthy)
    val = validation_windows(scaler, engines.val, engines.val_ids, seed)
    progress(f"{len(training.windows.X)} training windows ({len(training.healthy)} healthy "
             f"used), {len(val.windows.X)} validation windows ({int(val.y.sum())} anomalous)")
    fitted, thresholds, metrics, timings = {}, {}, {}, {}
    for name in models:
        fitted[name], thresholds[name], metrics[name], timings[name] = train_model(
            name, (params or {}).get(name, {}), scaler=scaler, engines=engines,
            training=training, val=val, target_far=target_far, seed=seed, progress=progress)
    best = max(fitted, key=lambda n: metrics[n]["f1"])
    protocol = protocol_text(engines, seed, target_far)
    evaluation = evaluation_document(protocol, engines, metrics, thresholds, best, timings,
                                     scaler, round(time.perf_counter() - started, 1))
    if artifacts_dir is None:
        return evaluation
    write_timeseries_release(Path(artifacts_dir) / MODULE, fitted, engines, scaler,
                             thresholds, metrics, timings, evaluation, protocol)
    progress(f"release written to {Path(artifacts_dir) / MODULE}")
    return evaluation


def evaluation_document(protocol: str, engines: Engines, metrics: dict, thresholds: dict,
                        best: str, timings: dict, scaler: dict, total_seconds: float) -> dict:
    """``evaluation.json``: every model's validation figures and threshold, the best one."""
    return {"protocol": protocol, "val_machines": engines.val_ids, "models": metrics,
            "thresholds": {n: {k: t[k] for k in ("value", "rule", "measured_false_alarm_rate")}
                           for n, t in thresholds.items()},
            "best_detector": best, "fit_seconds": timings, "window": WINDOW,
            "rul_cap": RUL_CAP, "scaler": {k: scaler[k] for k in ("sensors", "dropped")},
            "total_seconds": total_seconds}


def write_timeseries_release(directory: Path, fitted: dict, engines: Engines, scaler: dict,
                             thresholds: dict, metrics: dict, timings: dict, evaluation: dict,
                             protocol: str) -> None:
    """One bundle per model, the scaler, the evaluation, the training rows' fingerprint and
    the training ranges drift is measured against, written in one step."""
    reference = data_reference(engines)
    version = time.strftime("%Y%m%d")
    with atomic_directory(directory) as release:
        for name, detector in fitted.items():
            save_bundle(detector, release / name, module=MODULE, manifest_fields=bundle_fields(
                name, version, reference, thresholds[name], metrics[name], protocol,
                timings[name]))
        (release / SCALER_FILE).write_text(json.dumps(scaler, indent=1) + "\n")
        (release / EVALUATION_FILE).write_text(json.dumps(evaluation, indent=2) + "\n")
        write_fingerprint(release, engines.series, scaler["sensors"])
        write_range_reference(release, engines.series, scaler["sensors"])
        write_release(release, module=MODULE, models=list(fitted),
                      default_model=evaluation["best_detector"],
                      files={SCALER_FILE: "sensors kept and z-score statistics (training "
                                          "engines)",
                             EVALUATION_FILE: "validation metrics and thresholds",
                             TRAINING_ROWS_FILE: TRAINING_ROWS_ROLE,
                             REFERENCE_FILE: REFERENCE_ROLE},
                      fields={"training_data": reference, "window": WINDOW,
                              "rul_model": RUL_MODEL, "rul_cap": RUL_CAP})


def bundle_fields(name: str, version: str, reference: dict, threshold: dict, metrics: dict,
                  protocol: str, fit_seconds: float) -> dict:
    """What a model's manifest records beside the detector's own fields."""
    return {"name": name, "role": ROLES.get(name, "anomaly_detector"),
            "version": f"{name}-{version}", "training_data": reference,
            "preprocessing": {"scaler": SCALER_FILE, "window": WINDOW,
                              "windows": "the window ending at each cycle; padded at the "
                                         "front with the machine's first row when the "
                                         "machine has fewer cycles"},
            "threshold": threshold,
            "metrics": {"val": metrics, "protocol": protocol, "fit_seconds": fit_seconds}}
