"""Time-series prediction: per-cycle anomaly scores of one model, the RUL estimate, and why.

Serving runs XGBoost, the Isolation Forest's node arrays and onnxruntime only; torch is
never imported here. The release's ``scaler.json`` (fitted on training engines) and
``transform`` turn raw sensor readings into the standardised windows every model takes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import numpy as np

from pipelines.core import budget
from pipelines.core.drift import REFERENCE_FILE
from pipelines.core.artifacts import BundleError
from pipelines.core.detectors import top_k
from pipelines.core.predictor import LoadedModel, Predictor
from pipelines.core.problems import Problem, SchemaError
from pipelines.core.rowhash import read_row_hashes
from pipelines.timeseries.fingerprint import TRAINING_ROWS_FILE, in_sample_machines
from pipelines.timeseries.ingest import Series
from pipelines.timeseries.reference import range_counts, range_drift
from pipelines.timeseries.detectors import history_kwargs
from pipelines.timeseries.schema import ANOMALY_RUL, MAX_Z, WINDOW
from pipelines.timeseries.transform import (SCALER_FILE, history_slopes, iter_series_windows,
                                            off_scale, standardise)

logger = logging.getLogger(__name__)

RUL_MODEL = "xgboost_rul"
CHUNK = 4096
TOP_SENSORS = 3


@dataclass
class Scored:
    """Per-row results of one series: score, flag, RUL, the top sensors behind the score."""

    scores: np.ndarray
    flagged: np.ndarray
    rul: np.ndarray
    padded: np.ndarray
    top: list[list[str]]
    model: str
    model_version: str
    threshold: float


class TimeseriesPredictor(Predictor):
    """Anomaly scores per window with any released model, and RUL from the RUL regressor."""

    module: ClassVar[str] = "timeseries"
    item_noun: ClassVar[str] = "cycles"
    normal_items: ClassVar[str] = "healthy validation windows (RUL above 30)"

    def __init__(self, module_dir, **overrides):
        super().__init__(module_dir, **overrides)
        self.scaler = self.module_json(SCALER_FILE)
        self.window = int(self.release.get("window", WINDOW))
        if RUL_MODEL not in self.release["models"]:
            raise BundleError(f"the timeseries release in {self.module_dir} has no "
                              f"'{RUL_MODEL}' model; every answer carries its RUL")

    @property
    def rul_model(self) -> LoadedModel:
        """The RUL regressor whose RUL every answer carries, asked for when needed: a broken
        one makes each answer that needs it a ``ModelUnavailableError`` naming it (a 503),
        not the whole release fail to load."""
        return self.get(RUL_MODEL)

    @property
    def input_sensors(self) -> list[str]:
        """The sensor columns a window or file row holds, in order (dropped ones included)."""
        return list(self.scaler["input_sensors"])

    @property
    def sensors(self) -> list[str]:
        """The sensors the models use (those that vary in training)."""
        return list(self.scaler["sensors"])

    def describe(self) -> list[dict]:
        """Every model, plus the window, the sensors, the RUL rule and its flag rule."""
        return [d | {"window": self.window, "sensors": self.sensors,
                     "input_sensors": self.input_sensors, "anomaly_rul": ANOMALY_RUL,
                     "flag_rule": self.models[d["name"]].manifest.get("threshold", {})
                     .get("rule")}
                for d in super().describe()]

    def rul(self, X: np.ndarray, history: np.ndarray | None = None) -> np.ndarray:
        """Predicted RUL (cycles) of standardised windows (with their history slopes)."""
        return self.rul_model.detector.predict_rul(X, history)

    @cached_property
    def _training_rows(self) -> np.ndarray | None:
        if TRAINING_ROWS_FILE not in self.release.get("files", {}):  # a release from before it
            return None
        return read_row_hashes(self.module_file(TRAINING_ROWS_FILE))

    def in_sample_machines(self, series: Series) -> list[str] | None:
        """The machines of ``series`` that are engines of the training file (most of their
        rows are its rows); None for a release that does not keep its training rows."""
        if self._training_rows is None:
            return None
        return in_sample_machines(series, self.sensors, self._training_rows)

    @cached_property
    def _drift_reference(self) -> dict | None:
        if REFERENCE_FILE not in self.release.get("files", {}):  # a release from before it
            return None
        return self.module_json(REFERENCE_FILE)

    def drift(self, series: Series | None = None, *, counts: dict | None = None) -> dict | None:
        """The drift record of ``series``, or of its parts' summed :meth:`drift_counts`: its
        readings outside the training range per sensor
        (:func:`pipelines.timeseries.reference.range_drift`); None for a release without the
        training ranges."""
        reference = self._drift_reference
        return None if reference is None else range_drift(reference, series, counts=counts)

    def drift_counts(self, series: Series) -> dict | None:
        """What :meth:`drift` needs of one part of a history
        (:func:`pipelines.timeseries.reference.range_counts`; add parts with
        ``add_range_counts``); None for a release without the training ranges."""
        reference = self._drift_reference
        return None if reference is None else range_counts(reference, series)

    def check_sensors(self, sensors: list[str], source: str | None = None) -> None:
        """Every sensor the models use must be among ``sensors``."""
        missing = [s for s in self.sensors if s not in sensors]
        if missing:
            raise SchemaError([Problem(
                f"missing sensor column(s) {', '.join(missing[:8])}"
                f"{' ...' if len(missing) > 8 else ''}; the models use {len(self.sensors)} "
                f"sensors: {', '.join(self.sensors)}", file=source)])

    def scale_problem(self, z: np.ndarray, values: np.ndarray, sensors: list[str],
                      file: str | None = None, path: str | None = None) -> Problem | None:
        """A reading too far from the training data to be a measurement (``MAX_Z`` training
        standard deviations: a unit or decimal-point error), located, or None. ``z`` holds
        ``values``' z-scores (``standardise``), ``sensors`` names ``values``' columns."""
        found = off_scale(z)
        if found is None:
            return None
        r, sensor = found[0], self.sensors[found[1]]
        value = float(values[r, sensors.index(sensor)])
        message = (f"{value:g} is more than {MAX_Z:g} training standard deviations from "
                   f"{sensor}'s training mean; check the units")
        if path is not None:
            return Problem(message, path=f"{path}[{r}][{sensors.index(sensor)}]")
        return Problem(message, file=file, row=r + 1, column=sensor)

    @cached_property
    def history_cycles(self) -> int:
        """Cycles before a window that some model's score reads: a window network that
        averages its errors over the windows ending in its machine's last k cycles
        (``history_windows``) reads k - 1 cycles more. Detect keeps that many of each
        history it is sent besides the window."""
        return max([int((m.manifest.get("params") or {}).get("history_windows", 1)) - 1
                    for m in self.models.values()] + [0])

    def score_windows(self, X: np.ndarray, model: str | None = None, threshold: float | None = None,
                      explain: bool = True, history: np.ndarray | None = None) -> Scored:
        """Score standardised windows (windows, cycles, sensors) with ``model``; ``history``
        holds each window's machine history slopes (``transform.history_slopes``).

        ``X`` may hold more than ``window`` cycles (:meth:`window_input`): the last ``window``
        are the window; the cycles before it, NaN before the machine's first, are the history
        a window network averages its errors over (``history_windows``); the other models
        read the window alone."""
        m = self.get(model)
        level = m.threshold if threshold is None else float(threshold)
        if getattr(m.detector, "uses_machines", False):
            return self._score_histories(X, m, level, explain, history)
        scores, rul, top = [], [], []
        for s in range(0, len(X), CHUNK):
            budget.check()
            part = X[s:s + CHUNK, -self.window:]
            past = None if history is None else history[s:s + CHUNK]
            given = history_kwargs(m.detector, past)
            if explain:
                explanation = m.detector.explain(part, **given)
                scores.append(explanation.scores)
                names = explanation.feature_names
                top += [[names[j] for j in row] for row in explanation.top(TOP_SENSORS)]
            else:
                scores.append(m.detector.score(part, **given))
            rul.append(m.detector.rul_from_score(scores[-1]) if m.name == RUL_MODEL
                       else self.rul(part, past))
        scores_ = np.concatenate(scores) if scores else np.zeros(0)
        return Scored(scores_, scores_ >= level, np.concatenate(rul) if rul else np.zeros(0),
                      np.zeros(len(scores_), dtype=bool), top, m.name, m.version, level)

    def _score_histories(self, X: np.ndarray, m: LoadedModel, level: float, explain: bool,
                         history: np.ndarray | None) -> Scored:
        """A window network that reads its machine's history: for each row of ``X`` (its
        last ``window`` cycles the window, NaN before the machine's first cycle), the
        windows ending in its last ``history_windows`` cycles that ``X`` holds, padded at the
        front with the machine's first cycle as a file's first windows are; the row's score
        is the last one's, as a file of those cycles scores its last row."""
        n, length = X.shape[0], X.shape[1]
        take = max(1, min(int(m.detector.history_windows), length - self.window + 1))
        ends = np.arange(length - take, length)  # positions of the windows' last cycles
        offsets = np.arange(self.window) - (self.window - 1)
        scores, rul, top = [], [], []
        step = max(1, CHUNK // take)
        for s in range(0, n, step):
            budget.check()
            part = np.asarray(X[s:s + step], dtype=np.float32)
            real = ~np.isnan(part[:, :, 0])
            first = np.argmax(real, axis=1)
            exists = real[:, ends]  # (rows, take): the window ending there is the machine's
            at = np.maximum(ends[:, None] + offsets[None, :], 0)[None] \
                .repeat(len(part), axis=0)
            at = np.maximum(at, first[:, None, None])  # before the first cycle: the first
            windows = part[np.arange(len(part))[:, None, None], at]  # (rows, take, window, S)
            errors = m.detector.errors(windows[exists])
            counts = exists.sum(axis=1)
            explanation = m.detector.explain_errors(
                errors, np.repeat(np.arange(len(part)), counts))
            last = np.cumsum(counts) - 1
            scores.append(explanation.scores[last])
            if explain:
                names = explanation.feature_names
                top += [[names[j] for j in row]
                        for row in top_k(explanation.contributions[last], TOP_SENSORS)]
            past = None if history is None else history[s:s + step]
            rul.append(self.rul(part[:, -self.window:], past))
        scores_ = np.concatenate(scores) if scores else np.zeros(0)
        return Scored(scores_, scores_ >= level, np.concatenate(rul) if rul else np.zeros(0),
                      np.zeros(len(scores_), dtype=bool), top, m.name, m.version, level)

    def score_series(self, series: Series, model: str | None = None,
                     threshold: float | None = None, explain: bool = True) -> Scored:
        """One result per row of ``series``: the window ending at that row (padded at the
        start); a window network with ``history_windows`` k averages its errors over the
        windows ending in the machine's last k cycles (its rows before that one)."""
        self.check_sensors(series.sensors, series.source)
        z = standardise(self.scaler, series.values, series.sensors)
        problem = self.scale_problem(z, series.values, series.sensors, file=series.source)
        if problem is not None:
            raise SchemaError([problem])
        m = self.get(model)
        if getattr(m.detector, "uses_machines", False):
            return self._score_machines(series, z, m, threshold, explain)
        parts, rows, padded = [], [], []
        for w in iter_series_windows(self.scaler, series, self.window, CHUNK, z):
            budget.check()
            parts.append(self.score_windows(w.X, model, threshold, explain, history=w.history))
            rows.append(w.rows)
            padded.append(w.padded)
        if not parts:
            return self.score_windows(np.zeros((0, self.window, len(self.sensors))), model,
                                      threshold)
        order = np.argsort(np.concatenate(rows))  # back to file order
        first = parts[0]
        top = [t for p in parts for t in p.top]
        return Scored(np.concatenate([p.scores for p in parts])[order],
                      np.concatenate([p.flagged for p in parts])[order],
                      np.concatenate([p.rul for p in parts])[order],
                      np.concatenate(padded)[order], [top[k] for k in order] if top else top,
                      first.model, first.model_version, first.threshold)

    def _score_machines(self, series: Series, z: np.ndarray, m: LoadedModel,
                        threshold: float | None, explain: bool) -> Scored:
        """:meth:`score_series` for a window network that reads its machine's history: every
        window's per-sensor errors, then each machine's average over its last windows."""
        level = m.threshold if threshold is None else float(threshold)
        errors, rows, padded, rul = [], [], [], []
        for w in iter_series_windows(self.scaler, series, self.window, CHUNK, z):
            budget.check()  # the pieces come machine by machine, windows in cycle order
            errors.append(m.detector.errors(w.X))
            rows.append(w.rows)
            padded.append(w.padded)
            rul.append(self.rul(w.X, w.history))
        if not rows:
            return self.score_windows(np.zeros((0, self.window, len(self.sensors))), m.name,
                                      threshold)
        rows_ = np.concatenate(rows)
        explanation = m.detector.explain_errors(np.concatenate(errors), series.machines[rows_])
        order = np.argsort(rows_)  # back to file order
        scores = explanation.scores[order]
        top = []
        if explain:
            names = explanation.feature_names
            top = [[names[j] for j in row]
                   for row in top_k(explanation.contributions[order], TOP_SENSORS)]
        return Scored(scores, scores >= level, np.concatenate(rul)[order],
                      np.concatenate(padded)[order], top, m.name, m.version, level)

    def window_input(self, windows: list[np.ndarray], paths: list[str] | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Raw windows (cycles, input sensors) -> standardised (windows, window +
        :attr:`history_cycles`, sensors), NaN before a machine's first cycle, and their
        history slopes (windows, sensors).

        Each must hold the ``input_sensors`` columns and at least ``window`` cycles; the last
        ``window`` cycles are scored, and every cycle given is the machine's history (the
        longer, the steadier its wear rate; a window network that averages over its machine's
        last windows reads the ``history_cycles`` before the window). ``paths`` name each
        window in a JSON body (default ``windows[k]``) for the problems found.
        """
        n_in = len(self.input_sensors)
        keep = self.window + self.history_cycles
        problems, out, history = [], [], []
        for k, w in enumerate(windows):
            where = paths[k] if paths else f"windows[{k}]"
            if w.ndim != 2 or w.shape[1] != n_in:
                problems.append(Problem(f"each row must hold {n_in} sensor values "
                                        f"({', '.join(self.input_sensors[:4])}, ...), got "
                                        f"{w.shape[1] if w.ndim == 2 else 'ragged rows'}",
                                        path=where))
            elif w.shape[0] < self.window:
                problems.append(Problem(f"{w.shape[0]} cycles; the models need a window of at "
                                        f"least {self.window} cycles", path=where))
            else:
                z = standardise(self.scaler, w)
                problem = self.scale_problem(z, w, self.input_sensors, path=where)
                if problem is not None:
                    problems.append(problem)
                    continue
                recent = z[-keep:]
                if len(recent) < keep:
                    recent = np.concatenate([np.full((keep - len(recent), z.shape[1]), np.nan,
                                                     dtype=z.dtype), recent])
                out.append(recent)
                history.append(history_slopes(z)[-1])
        if problems:
            raise SchemaError(problems[:20])
        return np.stack(out), np.stack(history)


