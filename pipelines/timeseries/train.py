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
from pipelines.timeseries.schema import ANOMALY_RUL, RUL_CAP, WINDOW
from pipelines.timeseries.selection import OOF_SPLITS, SELECTION_CUTS, select_level
from pipelines.timeseries.split import split_machines
from pipelines.timeseries.transform import SCALER_FILE, fit_scaler, series_windows, standardise

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


def train_timeseries(data: Path, artifacts_dir: Path | None, *, models=MODELS,
                     params: dict | None = None, target_far: float = 0.02,
                     val_fraction: float = 0.2, seed: int = 0, max_healthy: int | None = None,
                     progress: Callable[[str], None] = lambda s: None) -> dict:
    """Train the models on ``data`` (a C-MAPSS training file) and write the release.

    ``params`` maps model name -> constructor parameters; ``max_healthy`` caps the healthy
    windows the anomaly detectors learn from (a random sample; quick runs).
    """
    started = time.perf_counter()
    file = find_data(data)
    series = read_cmapss(file)
    rul = rul_per_row(series)
    train_ids, val_ids = split_machines(series.machine_ids(), val_fraction, seed)
    train_s, val_s = subset(series, train_ids), subset(series, val_ids)
    scaler = fit_scaler(train_s.values, train_s.sensors)
    scaler |= end_of_life_profile(scaler, train_s)
    progress(f"{len(train_ids)} training and {len(val_ids)} validation engines; "
             f"{len(scaler['sensors'])} sensors kept, dropped {scaler['dropped']}")
    tw = series_windows(scaler, train_s, WINDOW, full_only=True)
    t_rul = rul_per_row(train_s)[tw.rows]
    vw = series_windows(scaler, val_s, WINDOW, full_only=True)
    v_rul = rul_per_row(val_s)[vw.rows]
    y_val = (v_rul <= ANOMALY_RUL).astype(int)
    healthy_train = tw.X[t_rul > ANOMALY_RUL]
    if max_healthy is not None and len(healthy_train) > max_healthy:
        pick = np.random.default_rng(seed).choice(len(healthy_train), max_healthy, replace=False)
        healthy_train = healthy_train[np.sort(pick)]
    cuts = [pseudo_test(val_s, val_ids, seed=seed + k) for k in range(N_CUTS)]
    rul_cut_windows = [evaluation_windows(scaler, cut, WINDOW)[:2] for cut, _ in cuts]
    f1_cuts, f1_last_rul = pooled_cuts(val_s, val_ids, list(range(seed, seed + CUT_F1_CUTS)))
    f1_w, _, _ = evaluation_windows(scaler, f1_cuts, WINDOW)
    y_cut = (rul_per_row(f1_cuts, f1_last_rul)[f1_w.rows] <= ANOMALY_RUL).astype(int)
    names = scaler["sensors"]
    progress(f"{len(tw.X)} training windows ({len(healthy_train)} healthy used), "
             f"{len(vw.X)} validation windows ({int(y_val.sum())} anomalous)")
    fitted, thresholds, metrics, timings = {}, {}, {}, {}
    for name in models:
        cls = get_detector_class(MODULE, name)
        detector = cls(**(params or {}).get(name, {}))
        t0 = time.perf_counter()
        selection = None
        if name in SUPERVISED:
            detector.fit(tw.X, t_rul, feature_names=names, history=tw.history)
            timings[name] = round(time.perf_counter() - t0, 1)
            selection = select_level(name, detector, scaler, train_s, train_ids)
            progress(f"{name}: flag level {selection['value']:.4g} (out-of-fold F1 "
                     f"{selection['oof_f1']:.3f} on {SELECTION_CUTS} cuts of the training "
                     f"engines); {time.perf_counter() - t0:.0f}s with the folds")
        elif hasattr(detector, "fit_progress"):
            detector.fit(healthy_train, feature_names=names, progress=progress)
        else:
            detector.fit(healthy_train, feature_names=names)
        timings.setdefault(name, round(time.perf_counter() - t0, 1))
        scores = detector.score(vw.X, **history_kwargs(detector, vw.history))
        thresholds[name] = _threshold(name, detector, scores[y_val == 0], target_far,
                                      selection)
        m = binary_metrics(y_val, scores, thresholds[name]["value"])
        metrics[name] = {k: round(m[k], 4) for k in ("f1", "precision", "recall", "roc_auc",
                                                      "pr_auc")}
        m = binary_metrics(y_cut, detector.score(f1_w.X, **history_kwargs(detector, f1_w.history)),
                           thresholds[name]["value"])
        metrics[name]["cut"] = {k: round(m[k], 4) for k in ("f1", "precision", "recall",
                                                             "roc_auc")} | {
            "windows": int(len(y_cut)), "anomalous": int(y_cut.sum()), "cuts": CUT_F1_CUTS,
            "seeds": f"{seed}..{seed + CUT_F1_CUTS - 1}"}
        if name == RUL_MODEL:
            true = np.concatenate([last_rul for _, last_rul in cuts])
            pred_cut = np.concatenate([detector.predict_rul(cw.X[c_last], cw.history[c_last])
                                       for cw, c_last in rul_cut_windows])
            metrics[name] |= {f"rul_{k}": round(v, 3) if isinstance(v, float) else v
                              for k, v in rul_metrics(true, pred_cut).items()}
            n_val = len(val_ids)
            metrics[name]["rul_rmse_per_cut"] = [
                round(rul_metrics(true[k * n_val:(k + 1) * n_val],
                                  pred_cut[k * n_val:(k + 1) * n_val])["rmse"], 3)
                for k in range(N_CUTS)]
            capped = np.minimum(v_rul, detector.cap)
            metrics[name]["rul_rmse_all_val_windows_capped"] = round(float(np.sqrt(np.mean(
                (detector.predict_rul(vw.X, vw.history) - capped) ** 2))), 3)
        if hasattr(detector, "parity_"):
            metrics[name]["torch_onnx_max_abs_diff"] = detector.parity_(vw.X[:512])
        fitted[name] = detector
        progress(f"{name}: val F1 {metrics[name]['f1']:.3f} (precision "
                 f"{metrics[name]['precision']:.3f}, recall {metrics[name]['recall']:.3f}, "
                 f"ROC-AUC {metrics[name]['roc_auc']:.3f}) at {thresholds[name]['value']:.4g}; "
                 f"cut engines F1 {metrics[name]['cut']['f1']:.3f}; fit {timings[name]}s")
    best = max((n for n in fitted), key=lambda n: metrics[n]["f1"])
    reference = {"name": "NASA C-MAPSS FD001 (train)", "file": file.name, "sha256": sha256(file),
                 "rows": len(series), "engines": len(series.machine_ids())}
    protocol = (f"engines split by unit ({len(train_ids)} train, {len(val_ids)} validation, "
                f"seed {seed}); scaler on training engines; window {WINDOW}; anomaly = RUL <= "
                f"{ANOMALY_RUL}; anomaly detectors fit on healthy training windows; thresholds "
                f"at {target_far:.0%} false alarms on healthy validation windows; supervised "
                f"models' ({', '.join(SUPERVISED)}) flag levels chosen to maximise pooled "
                f"out-of-fold F1 on the training engines cut like the official test set "
                f"({OOF_SPLITS}-fold GroupKFold by engine, {SELECTION_CUTS} cuts); F1 on all "
                f"validation windows and on validation engines cut like the official test set "
                f"({CUT_F1_CUTS} cuts pooled, 'cut'); RUL on validation engines cut like the "
                f"official test set, {N_CUTS} random cuts pooled")
    evaluation = {"protocol": protocol, "val_machines": val_ids, "models": metrics,
                  "thresholds": {n: {k: t[k] for k in ("value", "rule",
                                                       "measured_false_alarm_rate")}
                                 for n, t in thresholds.items()},
                  "best_detector": best, "fit_seconds": timings, "window": WINDOW,
                  "rul_cap": RUL_CAP, "scaler": {k: scaler[k] for k in ("sensors", "dropped")},
                  "total_seconds": round(time.perf_counter() - started, 1)}
    if artifacts_dir is None:
        return evaluation
    version = time.strftime("%Y%m%d")
    with atomic_directory(Path(artifacts_dir) / MODULE) as release:
        for name, detector in fitted.items():
            save_bundle(detector, release / name, module=MODULE, manifest_fields={
                "name": name, "role": ROLES.get(name, "anomaly_detector"),
                "version": f"{name}-{version}", "training_data": reference,
                "preprocessing": {"scaler": SCALER_FILE, "window": WINDOW,
                                  "windows": "the window ending at each cycle; padded at the "
                                             "front with the machine's first row when the "
                                             "machine has fewer cycles"},
                "threshold": thresholds[name],
                "metrics": {"val": metrics[name], "protocol": protocol,
                            "fit_seconds": timings[name]}})
        (release / SCALER_FILE).write_text(json.dumps(scaler, indent=1) + "\n")
        (release / EVALUATION_FILE).write_text(json.dumps(evaluation, indent=2) + "\n")
        write_fingerprint(release, series, scaler["sensors"])
        write_release(release, module=MODULE, models=list(fitted), default_model=best,
                      files={SCALER_FILE: "sensors kept and z-score statistics (training "
                                          "engines)",
                             EVALUATION_FILE: "validation metrics and thresholds",
                             TRAINING_ROWS_FILE: TRAINING_ROWS_ROLE},
                      fields={"training_data": reference, "window": WINDOW,
                              "rul_model": RUL_MODEL, "rul_cap": RUL_CAP})
    progress(f"release written to {Path(artifacts_dir) / MODULE}")
    return evaluation
