"""Scoring labelled histories with the released models: anomaly flags over all windows, RUL
at each engine's last window.

Labels: a window is anomalous when the engine's true RUL at its last cycle is ``ANOMALY_RUL``
(30) or less, the label every FabLens model is trained and its flag level chosen for. The
public reference project's README says the same, but its code labels RUL < 30; each model's
figures under that label, at the same flag level, are in ``reference_label`` (they differ by
the windows at exactly RUL 30, one per engine that reaches it). Windows: one ending at every
cycle with a full window of history, and, for an engine shorter than the window, its last
cycle with the window padded at the front with the engine's first row (so every engine is
scored). Each model scores the file as the web app does (``TimeseriesPredictor.score_series``:
a window network that reads its machine's history reads the engine's rows before the
window). RUL: RMSE and the NASA score (PHM08) of the predicted RUL at each engine's last
cycle against the true RUL.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from pipelines.core.evaluation import binary_metrics
from pipelines.core.evaluation_log import record_file
from pipelines.core.evaluation_log import record_run as log_run
from pipelines.timeseries.ingest import Series, read_cmapss, read_rul, rul_per_row
from pipelines.timeseries.schema import ANOMALY_RUL, WINDOW
from pipelines.timeseries.transform import Windows, series_windows


def nasa_score(true_rul: np.ndarray, predicted: np.ndarray) -> float:
    """PHM08 score: sum of exp(-d/13) - 1 for early (d < 0) and exp(d/10) - 1 for late."""
    d = np.asarray(predicted, dtype=float) - np.asarray(true_rul, dtype=float)
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0), np.exp(d / 10.0)) - 1.0))


def rul_metrics(true_rul: np.ndarray, predicted: np.ndarray) -> dict:
    """RMSE, MAE and NASA score of RUL predictions at each engine's last cycle."""
    d = np.asarray(predicted, dtype=float) - np.asarray(true_rul, dtype=float)
    return {"rmse": float(np.sqrt(np.mean(d ** 2))), "mae": float(np.mean(np.abs(d))),
            "nasa_score": nasa_score(true_rul, predicted), "engines": int(len(d))}


def evaluation_windows(scaler: dict, series: Series, window: int = WINDOW
                       ) -> tuple[Windows, np.ndarray, int]:
    """The windows scored (see the module doc), per engine the index of its last one among
    them, and how many are padded."""
    every = series_windows(scaler, series, window)
    keep = ~every.padded
    last_rows = np.array([rows[-1] for _, rows in series.groups()])
    keep[np.isin(every.rows, last_rows)] = True  # an engine shorter than the window: its last
    scored = every.take(keep)
    position = {int(r): k for k, r in enumerate(scored.rows)}
    return scored, np.array([position[int(r)] for r in last_rows]), \
        int(np.sum(scored.padded))


def evaluate_series(predictor, series: Series, last_rul: np.ndarray | None = None,
                    progress: Callable[[str], None] = lambda s: None) -> dict:
    """Every model's anomaly metrics and the RUL metrics on labelled histories."""
    w, last, n_padded = evaluation_windows(predictor.scaler, series, predictor.window)
    true = rul_per_row(series, last_rul)[w.rows]
    y = (true <= ANOMALY_RUL).astype(int)
    y_reference = (true < ANOMALY_RUL).astype(int)
    progress(f"{len(w.X)} windows of {len(last)} engines ({n_padded} padded), "
             f"{int(y.sum())} anomalous (RUL <= {ANOMALY_RUL})")
    models = {}
    for name, model in predictor.models.items():
        scores = predictor.score_series(series, name, explain=False).scores[w.rows]
        models[name] = _metrics(y, scores, model.threshold) | {
            "threshold": model.threshold,
            "reference_label": _metrics(y_reference, scores, model.threshold)}
        progress(f"{name}: F1 {models[name]['f1']}")
    predicted = predictor.rul(w.X[last], w.history[last])
    rul = rul_metrics(true[last], predicted)
    progress(f"RUL RMSE {rul['rmse']:.2f} on {len(last)} engines")
    return {"models": models, "rul": rul,
            "windows": {"total": int(len(w.X)), "anomalous": int(y.sum()),
                        "anomalous_reference_label": int(y_reference.sum()),
                        "padded": n_padded, "engines": int(len(last)),
                        "window": predictor.window, "anomaly_rul": ANOMALY_RUL,
                        "label": f"true RUL <= {ANOMALY_RUL}",
                        "reference_label": f"true RUL < {ANOMALY_RUL}"}}


def _metrics(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """F1, precision, recall and ROC-AUC of ``scores`` flagged at ``threshold`` (None where
    the labels hold one class only)."""
    if not 0 < y.sum() < len(y):
        return {"f1": None, "precision": None, "recall": None, "roc_auc": None}
    metrics = binary_metrics(y, scores, threshold)
    return {k: metrics[k] for k in ("f1", "precision", "recall", "roc_auc")}


RECORD_FILE = record_file("timeseries")


def record_run(record: Path, document: dict, test: Path, rul: Path, release: dict) -> dict:
    """Append the run to ``record`` (:func:`pipelines.core.evaluation_log.record_run`): the
    test and RUL files, the release, each model's F1, the RUL RMSE and the windows scored."""
    return log_run(record, {"test": test, "rul": rul}, release, {
        "f1": {n: m["f1"] for n, m in document["models"].items()},
        "rul_rmse": document["rul"]["rmse"], "windows": document["windows"]["total"],
        "engines": document["windows"]["engines"]})


def evaluate_files(train: Path | None, test: Path, rul: Path, artifacts_dir: Path,
                   progress: Callable[[str], None] = lambda s: None,
                   record: Path | None = None) -> dict:
    """``python -m pipelines.evaluate timeseries``: the committed release on a test file + RUL.

    ``train`` is recorded (name only) for the record: the release's scaler was fitted on the
    training engines when it was trained, and is never refitted here. ``record``: the JSON
    lines file the run is appended to (:func:`record_run`; None: not recorded).
    """
    from pipelines.timeseries.predict import TimeseriesPredictor

    predictor = TimeseriesPredictor(artifacts_dir)
    series = read_cmapss(test)
    last_rul = read_rul(rul)
    progress(f"read {len(series)} rows of {len(series.groups())} engines from {Path(test).name}")
    document = evaluate_series(predictor, series, last_rul, progress)
    document["files"] = {"test": Path(test).name, "rul": Path(rul).name,
                         "train": Path(train).name if train else None}
    if record is not None:
        release = json.loads((Path(artifacts_dir) / "manifest.json").read_text())
        document["record"] = record_run(record, document, test, rul, release)
        progress(f"recorded in {record}: run {document['record']['runs_on_this_test_file']} "
                 f"on this test file")
    return document


def pseudo_test(series: Series, machines: list[str], seed: int = 0, min_rul: int = 5,
                max_rul: int = 145, min_cycles: int = 10) -> tuple[Series, np.ndarray]:
    """Run-to-failure engines cut like the official test set: each engine ends at a random
    cycle, its true RUL there drawn uniformly from ``min_rul..max_rul`` (FD001's test RULs lie
    in 7..145) while keeping at least ``min_cycles`` cycles. Returns the cut series and the
    true RUL at each engine's last cycle (in order of first appearance)."""
    rng = np.random.default_rng(seed)
    keep, last_rul = [], []
    wanted = set(machines)
    for machine, rows in series.groups():
        if machine not in wanted:
            continue
        n = len(rows)
        high = max(min_rul, min(max_rul, n - min_cycles))
        rul = int(rng.integers(min_rul, high + 1))
        keep.append(rows[:max(1, n - rul)])
        last_rul.append(float(n - len(keep[-1])))
    index = np.concatenate(keep)
    cut = Series(series.source, series.machines[index], series.cycles[index],
                 series.values[index], list(series.sensors), series.layout,
                 settings=None if series.settings is None else series.settings[index],
                 extra={"source_rows": index})
    return cut, np.asarray(last_rul)


def pooled_cuts(series: Series, machines: list[str], seeds: list[int]
                ) -> tuple[Series, np.ndarray]:
    """``machines`` cut once per seed (:func:`pseudo_test`) and pooled into one test set: the
    engines of cut ``k`` are renamed ``"<k>:<machine>"``. One cut of 20 engines holds few
    anomalous windows; pooling many cuts gives figures as steady as a 100-engine test file.
    ``extra["source_rows"]`` maps each row back to its row in ``series``."""
    parts = [pseudo_test(series, machines, seed=seed) for seed in seeds]
    rows = np.concatenate([cut.extra["source_rows"] for cut, _ in parts])
    names = np.concatenate([np.char.add(f"{k}:", cut.machines.astype(str))
                            for k, (cut, _) in enumerate(parts)]).astype(object)
    pooled = Series(series.source, names, series.cycles[rows], series.values[rows],
                    list(series.sensors), series.layout,
                    settings=None if series.settings is None else series.settings[rows],
                    extra={"source_rows": rows})
    return pooled, np.concatenate([last for _, last in parts])
