"""Sensor prediction: score wafers with the released models and explain each decision.

Besides scores, the predictor answers questions about an upload against the training data:
which rows are training rows (:meth:`SensorPredictor.in_sample`), how its sensors sit against
the training ranges (:meth:`SensorPredictor.drift`, :meth:`SensorPredictor.training_profile`).
"""
from __future__ import annotations

import logging
from functools import cached_property
from typing import ClassVar

import numpy as np
import pandas as pd

from pipelines.core.predictor import Predictor
from pipelines.core.thresholds import flagged
from pipelines.sensor.ingest.table import SensorTable
from pipelines.core.rowhash import in_sample, read_row_hashes, read_row_keys
from pipelines.sensor.rows import DriftCounter, drift
from pipelines.sensor.samples import SAMPLE_MODEL_FILE
from pipelines.sensor.schema import SENSOR_COLUMNS
from pipelines.sensor.story import (PROFILE_FILE, ROW_HASHES_FILE, ROW_KEYS_FILE, headline,
                                    score_meaning, threshold_note)
from pipelines.sensor.transform import training_range

logger = logging.getLogger(__name__)

TOP_K = 3
# the result column each model role fills with its score: the one source of these names.
# The classifier's output is a score, not a probability: the fail class is up-weighted in
# training, so its level is inflated; its meaning comes from the threshold's false-alarm rate.
SCORE_COLUMNS = {"classifier": "fault_score", "anomaly": "anomaly_score"}


class SensorPredictor(Predictor):
    """Scores wafers with the shipped classifier and the autoencoder; explains the decision."""

    module: ClassVar[str] = "sensor"
    feature_names: ClassVar[list[str]] = SENSOR_COLUMNS
    item_noun: ClassVar[str] = "wafers"
    normal_items: ClassVar[str] = "passing wafers (out-of-fold validation scores)"
    recalibrate_command: ClassVar[str] = ("python -m pipelines.recalibrate sensor --data "
                                          "<CSV of recent passing wafers>")

    def __init__(self, module_dir, **overrides):
        super().__init__(module_dir, **overrides)
        roles = {m.role: n for n, m in self.models.items()}
        self.classifier = roles.get("classifier")
        self.anomaly = roles.get("anomaly")

    @property
    def sample_model(self) -> dict:
        """Statistics the sample CSV is drawn from (a hash-checked file of the release)."""
        return self.module_json(SAMPLE_MODEL_FILE)

    def describe(self) -> list[dict]:
        """Each model's description plus its result column, what the score and threshold mean,
        every protocol's headline figures with 95% intervals, and whether the page shows it."""
        out = []
        for d in super().describe():
            manifest = self.models[d["name"]].manifest
            out.append(d | {
                "score": SCORE_COLUMNS[d["role"]],
                "score_meaning": score_meaning(d["role"], manifest.get("metrics")),
                "threshold_note": manifest["threshold"].get("note")
                or threshold_note(manifest["threshold"]),
                "evaluation": headline(manifest.get("metrics")),
                "shown": self.models[d["name"]].shown})
        return out

    def card(self, name: str) -> dict:
        """The Models page card, with what the score means and the threshold's note."""
        card = super().card(name)
        manifest = self.models[name].manifest
        card["score_meaning"] = score_meaning(self.models[name].role, manifest.get("metrics"))
        card["score"] = SCORE_COLUMNS[self.models[name].role]
        card["threshold"]["note"] = (manifest["threshold"].get("note")
                                     or threshold_note(manifest["threshold"]))
        return card

    def training_profile(self) -> dict:
        """Per sensor: training p01, p99, median and missing rate (a hash-checked release file).

        ``{"features": [...590], "p01": [...], "p99": [...], "median": [...],
        "missing_rate": [...]}``; None where a sensor was never observed.
        """
        return self._profile

    @cached_property
    def _profile(self) -> dict:
        return self.module_json(PROFILE_FILE)

    @cached_property
    def _training_hashes(self) -> np.ndarray:
        return read_row_hashes(self.module_file(ROW_HASHES_FILE))

    @cached_property
    def _training_keys(self) -> tuple[np.ndarray, np.ndarray] | None:
        if ROW_KEYS_FILE not in self.release.get("files", {}):  # a release from before the keys
            return None
        return read_row_keys(self.module_file(ROW_KEYS_FILE))

    def in_sample(self, X: np.ndarray) -> np.ndarray:
        """Boolean per row: its sensor values match a training row (canonical row hash)."""
        return in_sample(X, self._training_hashes, self._training_keys)

    def drift_counter(self) -> DriftCounter:
        """A drift report to fill chunk by chunk (``update(X)``, then ``result()``)."""
        return DriftCounter(self.training_profile())

    def drift(self, X: np.ndarray) -> dict:
        """How unlike the training data the rows look: ``{"share_outside", "share_imputed",
        "top_drifted": [{"sensor", "share_outside", "median", "train_p01", "train_p99"}]}``."""
        return drift(self.training_profile(), X)

    def predict(self, table: SensorTable, threshold: float | None = None,
                model: str | None = None) -> pd.DataFrame:
        """One row per wafer: id, scores, decision at the threshold and the top sensors.

        ``threshold`` applies to the deciding model's score (fault score for the
        classifier, anomaly score for the autoencoder); default is the manifest's. Beside the
        decider's score, each model the page shows is scored too; a hidden one (the
        autoencoder) only when it decides, so nobody pays for a score nobody asked for.
        """
        decider = self.get(model)
        threshold = decider.threshold if threshold is None else float(threshold)
        X = table.values
        explanation = decider.detector.explain(X)
        columns: dict[str, object] = {"id": table.ids}  # one frame built at the end
        for name in filter(None, (self.classifier, self.anomaly)):
            loaded = self.models[name]
            if name == decider.name:
                columns[SCORE_COLUMNS[loaded.role]] = explanation.scores
            elif loaded.shown:
                columns[SCORE_COLUMNS[loaded.role]] = loaded.detector.score(X)
        columns["is_fault"] = flagged(explanation.scores, threshold)
        columns["imputed_cells"] = np.isnan(X).sum(axis=1)
        order = explanation.top(TOP_K)
        low, high = training_range(decider.detector.preprocessor_, X.shape[1])
        rows = np.arange(len(X))
        names = np.asarray(table.sensor_labels)  # as the file names them
        for k in range(order.shape[1]):
            j = order[:, k]
            columns[f"top_sensor_{k + 1}"] = names[j]
            columns[f"top_sensor_{k + 1}_contribution"] = explanation.contributions[rows, j]
            columns[f"top_sensor_{k + 1}_value"] = X[rows, j]
            columns[f"top_sensor_{k + 1}_low"] = low[j]
            columns[f"top_sensor_{k + 1}_high"] = high[j]
        out = pd.DataFrame(columns)
        out.attrs.update(model=decider.name, model_version=decider.version, threshold=threshold)
        return out


def results_to_records(results: pd.DataFrame) -> list[dict]:
    """JSON-ready prediction records with ``top_sensors`` as a list per row."""
    records = []
    top = [c[:-len("_contribution")] for c in results.columns if c.endswith("_contribution")]
    data = results.to_dict("list")
    for i in range(len(results)):
        record = {"id": data["id"][i], "is_fault": bool(data["is_fault"][i]),
                  "imputed_cells": int(data["imputed_cells"][i])}
        for key in SCORE_COLUMNS.values():
            if key in data:
                record[key] = float(data[key][i])
        record["top_sensors"] = [{
            "sensor": data[t][i], "contribution": float(data[f"{t}_contribution"][i]),
            "value": _none_if_nan(data[f"{t}_value"][i]), "low": _none_if_nan(data[f"{t}_low"][i]),
            "high": _none_if_nan(data[f"{t}_high"][i])} for t in top]
        records.append(record)
    return records


def _none_if_nan(value: float) -> float | None:
    return None if value != value else float(value)
