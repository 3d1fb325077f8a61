"""The time-series training composer: split engines, fit the scaler and the five models,
choose every flag level and the default model out of fold on cut training engines, write the
release.

Protocol (recorded in the manifests and ``evaluation.json``):

* ``train_FD001`` is split by engine (unit), never by row: ``val_fraction`` of the units,
  drawn with ``seed``, are validation engines; the rest train.
* The scaler (sensors kept, z-score statistics) is fitted on the training engines' rows only.
* Training windows: every full window (``WINDOW`` cycles) of the training engines, with
  each one's machine history slopes (``transform.history_slopes``) for the XGBoost models. The RUL
  regressor learns ``min(RUL, cap)`` on all of them and the end-of-life classifier "RUL <=
  30"; each anomaly detector learns from the healthy ones, full windows with RUL above its
  ``FIT_RUL`` (the Isolation Forest: 30; the two networks: 125, early life, before the wear
  they should flag: fitted on windows up to RUL 31, they learnt to reconstruct and forecast
  wear). The networks' settings (``SHIPPED_PARAMS``: what their score reads) and ``FIT_RUL``
  were chosen with ``python -m pipelines.timeseries.selection --group anomaly``.
* Flag levels, every model's: the level with the best F1 out of fold on the training
  engines cut like the official test set (``selection``: ``OOF_SPLITS``-fold ``GroupKFold``
  by engine, ``SELECTION_CUTS`` cuts with seeds from ``SELECTION_SEED``, pooled). The
  default model is the one with the best out-of-fold F1 there. The validation engines play
  no part in any choice; each model records its false-alarm rate on their healthy windows.
* Validation metrics (reported, chosen by nothing): F1, precision, recall, ROC-AUC over
  every full window of the validation engines; the same over the windows of the validation
  engines cut like the official test set, ``CUT_F1_CUTS`` cuts pooled (``cut``: the figure
  the official test files resemble); RUL RMSE and NASA score on the validation engines cut
  like the official test set (``evaluate.pseudo_test``), ``N_CUTS`` times with seeds ``seed..seed
  + N_CUTS - 1`` and pooled (20 engines alone swing the RMSE by several cycles; each cut's
  RMSE is recorded too), and RMSE over all validation windows against the capped RUL. Every
  score is the one the web app gives the row (a network that averages over its machine's
  last windows reads the engine's earlier windows).
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
from pipelines.core.thresholds import false_alarm_rate, score_quantiles
from pipelines.timeseries.evaluate import evaluation_windows, pseudo_test, rul_metrics
from pipelines.timeseries.fingerprint import (TRAINING_ROWS_FILE, TRAINING_ROWS_ROLE,
                                              write_fingerprint)
from pipelines.timeseries.ingest import Series, find_data, read_cmapss, rul_per_row, subset
from pipelines.timeseries.reference import REFERENCE_FILE, REFERENCE_ROLE, write_range_reference
from pipelines.timeseries.schema import ANOMALY_RUL, RUL_CAP, WINDOW
from pipelines.timeseries.selection import (OOF_SPLITS, SELECTION_CUTS, cut_windows,
                                            row_scores, select_level)
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
# the healthy windows each anomaly detector learns from: full windows with RUL above this
FIT_RUL = {"isolation_forest": ANOMALY_RUL, "lstm_autoencoder": RUL_CAP, "patchtst": RUL_CAP}
# what the networks' scores read (chosen out of fold: ``selection --group anomaly``); the
# detectors' own defaults are the releases before issue 20 (whole-window squared error)
SHIPPED_PARAMS = {"lstm_autoencoder": {"score_on": "mean_error", "recent": 5},
                  "patchtst": {"score_on": "mean_error", "history_windows": 60}}
# what each model's score measures (the Models page shows it beside the flag level)
MEASURES = {
    RUL_MODEL: "the RUL deficit, 125 minus the predicted RUL: it flags when the predicted RUL "
               "is at or below the level's RUL",
    EOL_MODEL: "the probability that the engine has 30 cycles or fewer left, learnt from the "
               "training engines run to failure",
    "isolation_forest": "how easily a window's features are isolated from healthy training "
                        "windows: unusual, not necessarily worn",
    "lstm_autoencoder": "how far an autoencoder that learnt early-life windows (RUL above "
                        "125) reconstructs the window's last 5 cycles from the readings: the "
                        "distance from healthy behaviour. It grows from about 100 cycles "
                        "before failure, steeply in the last 20; it does not see how fast an "
                        "engine wears, which decides whether 30 cycles are left, so near that "
                        "boundary it flags fast-wearing engines late and slow ones early",
    "patchtst": "the forecast bias: how far a forecaster that learnt early-life windows (RUL "
                "above 125) falls behind each sensor, averaged over the windows of the "
                "machine's last 60 cycles (before its first cycle they count as 0, so a "
                "short history scores low): a wear trend that healthy engines do not have. "
                "Send detect a machine's last 89 cycles or more for the score a file gives",
}


def end_of_life_profile(scaler: dict, series: Series, last: int = 5) -> dict:
    """Training engines' mean z-score per kept sensor over their last ``last`` cycles, and each
    dropped sensor's (constant) training value: what generated sample histories drift towards."""
    z = standardise(scaler, series.values, series.sensors)
    end = rul_per_row(series) < last
    dropped = [series.sensors.index(s) for s in scaler["dropped"]]
    return {"end_of_life_z": np.round(z[end].mean(axis=0), 4).tolist(),
            "dropped_values": np.round(np.median(series.values[:, dropped], axis=0), 4).tolist()}


def _threshold(name: str, detector, healthy: np.ndarray, selection: dict, default: str,
               selections: dict) -> dict:
    """The flag level chosen out of fold (``selection``), what it means and how it was set;
    ``healthy``: the model's scores on the healthy validation windows (its false-alarm rate
    there is measured, not chosen); ``note``: what the score measures and whether the model
    is the default (``default``, by out-of-fold F1, ``selections``)."""
    value = float(selection["value"])
    trained_on = "" if selection.get("fit_rul") is None else \
        f"; the detectors were fitted on full windows with RUL > {selection['fit_rul']:g}"
    source = (f"chosen to maximise pooled out-of-fold F1 (label: true RUL <= {ANOMALY_RUL}) "
              f"on the {selection['engines']} training engines cut like the official test "
              f"set: {selection['splits']}-fold GroupKFold by engine, {selection['cuts']} "
              f"cuts (seeds {selection['seeds']}) pooled, {selection['windows']} windows "
              f"({selection['anomalous']} anomalous){trained_on}; out-of-fold F1 there "
              f"{selection['oof_f1']:.3f}; target_false_alarm_rate is its measured rate on "
              f"healthy validation windows")
    if name == RUL_MODEL:
        rule = f"flag when predicted RUL <= {detector.cap - value:.2f} (score = " \
               f"{detector.cap:g} - RUL >= {value:.4g})"
    elif name == EOL_MODEL:
        rule = f"flag when P(RUL <= {ANOMALY_RUL}) >= {value:.4g}"
    else:
        rule = "flag when score >= value"
    if name == default:
        verdict = (f"the default: the best out-of-fold F1 on cut training engines "
                   f"({selection['oof_f1']:.3f})")
    else:
        verdict = (f"not the default: out-of-fold F1 {selection['oof_f1']:.3f} on cut "
                   f"training engines, against {selections[default]['oof_f1']:.3f} for "
                   f"{default}")
    far = false_alarm_rate(healthy, value)
    return {"value": value, "rule": rule, "source": source,
            "target_false_alarm_rate": max(far, 1e-6), "measured_false_alarm_rate": far,
            "normal_score_quantiles": score_quantiles(healthy), "selection": selection,
            "note": f"score: {MEASURES.get(name, 'the model score')}; {verdict}"}


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
    """Every full window of the training engines with its RUL."""

    windows: Windows
    rul: np.ndarray

    def healthy(self, fit_rul: float, seed: int, at_most: int | None = None) -> np.ndarray:
        """The windows with RUL above ``fit_rul`` (an anomaly detector learns from them), at
        most ``at_most`` of them drawn with ``seed``."""
        healthy = self.windows.X[self.rul > fit_rul]
        if at_most is not None and len(healthy) > at_most:
            pick = np.random.default_rng(seed).choice(len(healthy), at_most, replace=False)
            healthy = healthy[np.sort(pick)]
        return healthy


@dataclass(frozen=True)
class ValidationWindows:
    """What the validation figures are computed on: every window of the validation engines
    (``every``, scored as the web app scores each row), the full ones (``windows``, ``rul``,
    labels ``y``), the rows and labels of the windows of the same engines cut
    ``CUT_F1_CUTS`` times and pooled (``cut_rows``, ``y_cut``) and cut ``N_CUTS`` times for
    RUL (``rul_cuts``: per cut, its windows and each engine's last one, and the true RUL
    there)."""

    series: Series
    every: Windows
    windows: Windows
    rul: np.ndarray
    y: np.ndarray
    cut_rows: np.ndarray
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


def training_windows(scaler: dict, train: Series) -> TrainingWindows:
    """Full training windows and their RUL."""
    windows = series_windows(scaler, train, WINDOW, full_only=True)
    return TrainingWindows(windows, rul_per_row(train)[windows.rows])


def validation_windows(scaler: dict, val: Series, val_ids: list[str], seed: int
                       ) -> ValidationWindows:
    """The validation engines' windows, and the same engines cut like the official test
    set: ``N_CUTS`` cuts for RUL, ``CUT_F1_CUTS`` pooled for F1 (seeds from ``seed``)."""
    every = series_windows(scaler, val, WINDOW)
    windows = every.take(~every.padded)
    rul = rul_per_row(val)[windows.rows]
    cuts = [pseudo_test(val, val_ids, seed=seed + k) for k in range(N_CUTS)]
    rul_cuts = [evaluation_windows(scaler, cut, WINDOW)[:2] for cut, _ in cuts]
    cut_rows, y_cut = cut_windows(scaler, val, val_ids, list(range(seed, seed + CUT_F1_CUTS)))
    return ValidationWindows(val, every, windows, rul, (rul <= ANOMALY_RUL).astype(int),
                             cut_rows, y_cut, rul_cuts, [last_rul for _, last_rul in cuts])


def fit_detector(name: str, detector, training: TrainingWindows, scaler: dict,
                 engines: Engines, seed: int, max_healthy: int | None,
                 progress: Callable[[str], None]) -> tuple[float, dict]:
    """Fit one model; returns its fit time and its flag-level selection (out of fold on the
    training engines, ``selection``)."""
    t0 = time.perf_counter()
    names = scaler["sensors"]
    fit_rul = FIT_RUL.get(name)
    if name not in SUPERVISED:
        healthy = training.healthy(fit_rul, seed, max_healthy)
        progress(f"{name}: fitting on {len(healthy)} windows with RUL > {fit_rul}")
        if hasattr(detector, "fit_progress"):
            detector.fit(healthy, feature_names=names, progress=progress)
        else:
            detector.fit(healthy, feature_names=names)
    else:
        w = training.windows
        detector.fit(w.X, training.rul, feature_names=names, history=w.history)
    seconds = round(time.perf_counter() - t0, 1)
    selection = select_level(name, detector, scaler, engines.train, engines.train_ids,
                             fit_rul=None if name in SUPERVISED else fit_rul,
                             max_fit=None if name in SUPERVISED else max_healthy)
    progress(f"{name}: flag level {selection['value']:.4g} (out-of-fold F1 "
             f"{selection['oof_f1']:.3f} on {SELECTION_CUTS} cuts of the training "
             f"engines); {time.perf_counter() - t0:.0f}s with the folds")
    return seconds, selection


def validation_scores(detector, val: ValidationWindows) -> np.ndarray:
    """Each validation row's score, as the web app scores a file of the validation engines."""
    return row_scores(detector, val.every, val.series)


def window_metrics(val: ValidationWindows, scores: np.ndarray, threshold: float,
                   seed: int) -> dict:
    """F1, precision, recall, ROC-AUC (and PR-AUC) over every full validation window, and
    the same over the cut validation engines (``cut``), from each row's score."""
    m = binary_metrics(val.y, scores[val.windows.rows], threshold)
    metrics = {k: round(m[k], 4) for k in ("f1", "precision", "recall", "roc_auc", "pr_auc")}
    m = binary_metrics(val.y_cut, scores[val.cut_rows], threshold)
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
                training: TrainingWindows, seed: int, max_healthy: int | None,
                progress: Callable[[str], None]) -> tuple[object, dict, float]:
    """One model: fit and choose its flag level out of fold. Returns (detector, selection,
    fit seconds)."""
    detector = get_detector_class(MODULE, name)(**(SHIPPED_PARAMS.get(name, {}) | params))
    seconds, selection = fit_detector(name, detector, training, scaler, engines, seed,
                                      max_healthy, progress)
    return detector, selection, seconds


def validate_model(name: str, detector, selection: dict, *, val: ValidationWindows,
                   default: str, selections: dict, n_val: int, seed: int,
                   progress: Callable[[str], None]) -> tuple[dict, dict]:
    """One fitted model on the validation engines (chosen by nothing): its threshold record
    and figures."""
    scores = validation_scores(detector, val)
    healthy = scores[val.windows.rows][val.y == 0]
    threshold = _threshold(name, detector, healthy, selection, default, selections)
    metrics = window_metrics(val, scores, threshold["value"], seed)
    if name == RUL_MODEL:
        metrics |= rul_figures(detector, val, n_val)
    if hasattr(detector, "parity_"):
        metrics["torch_onnx_max_abs_diff"] = detector.parity_(val.windows.X[:512])
    progress(f"{name}: val F1 {metrics['f1']:.3f} (precision {metrics['precision']:.3f}, "
             f"recall {metrics['recall']:.3f}, ROC-AUC {metrics['roc_auc']:.3f}) at "
             f"{threshold['value']:.4g}; cut engines F1 {metrics['cut']['f1']:.3f}")
    return threshold, metrics


def protocol_text(engines: Engines, seed: int) -> str:
    """The protocol in one sentence, as the manifests and ``evaluation.json`` record it."""
    fits = ", ".join(f"{n} RUL > {r}" for n, r in FIT_RUL.items())
    return (f"engines split by unit ({len(engines.train_ids)} train, {len(engines.val_ids)} "
            f"validation, seed {seed}); scaler on training engines; window {WINDOW}; anomaly "
            f"= RUL <= {ANOMALY_RUL}; supervised models fit on every full training window, "
            f"anomaly detectors on healthy ones ({fits}); every flag level chosen to maximise "
            f"pooled out-of-fold F1 on the training engines cut like the official test set "
            f"({OOF_SPLITS}-fold GroupKFold by engine, {SELECTION_CUTS} cuts), and the default "
            f"model by that F1; validation engines used for no choice: F1 on all validation "
            f"windows and on validation engines cut like the official test set "
            f"({CUT_F1_CUTS} cuts pooled, 'cut'); RUL on validation engines cut like the "
            f"official test set, {N_CUTS} random cuts pooled")


def data_reference(engines: Engines) -> dict:
    """The training file the release names (name, sha256, rows, engines; no machine path)."""
    series = engines.series
    return {"name": "NASA C-MAPSS FD001 (train)", "file": engines.file.name,
            "sha256": sha256(engines.file), "rows": len(series),
            "engines": len(series.machine_ids())}


def train_timeseries(data: Path, artifacts_dir: Path | None, *, models=MODELS,
                     params: dict | None = None, val_fraction: float = 0.2, seed: int = 0,
                     max_healthy: int | None = None,
                     progress: Callable[[str], None] = lambda s: None) -> dict:
    """Train the models on ``data`` (a C-MAPSS training file) and write the release.

    ``params`` maps model name -> constructor parameters (over ``SHIPPED_PARAMS``);
    ``max_healthy`` caps the healthy windows each anomaly detector learns from (a random
    sample; quick runs).
    """
    started = time.perf_counter()
    engines = split_engines(data, val_fraction, seed)
    scaler = fit_training_scaler(engines.train)
    progress(f"{len(engines.train_ids)} training and {len(engines.val_ids)} validation "
             f"engines; {len(scaler['sensors'])} sensors kept, dropped {scaler['dropped']}")
    training = training_windows(scaler, engines.train)
    progress(f"{len(training.windows.X)} full training windows")
    fitted, selections, timings = {}, {}, {}
    for name in models:
        fitted[name], selections[name], timings[name] = train_model(
            name, (params or {}).get(name, {}), scaler=scaler, engines=engines,
            training=training, seed=seed, max_healthy=max_healthy, progress=progress)
    best = max(fitted, key=lambda n: selections[n]["oof_f1"])
    progress(f"default model: {best} (best out-of-fold F1 on cut training engines)")
    val = validation_windows(scaler, engines.val, engines.val_ids, seed)
    progress(f"{len(val.windows.X)} full validation windows ({int(val.y.sum())} anomalous)")
    thresholds, metrics = {}, {}
    for name in models:
        thresholds[name], metrics[name] = validate_model(
            name, fitted[name], selections[name], val=val, default=best,
            selections=selections, n_val=len(engines.val_ids), seed=seed, progress=progress)
    protocol = protocol_text(engines, seed)
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
            "out_of_fold_f1": {n: t["selection"]["oof_f1"] for n, t in thresholds.items()},
            "best_detector": best,
            "best_detector_chosen_by": "the best pooled out-of-fold F1 on the training engines "
                                       "cut like the official test set (the validation "
                                       "engines play no part)",
            "fit_seconds": timings, "window": WINDOW,
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
