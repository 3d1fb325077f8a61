"""Prediction: load the committed bundles once, score sensor tables, explain each decision."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.artifacts import BundleError, load_bundle
from pipelines.detectors.base import UnknownDetectorError, top_k
from pipelines.ingest.sensor_csv import SensorTable
from pipelines.samples import SAMPLE_MODEL_FILE
from pipelines.schema import SENSOR_COLUMNS

logger = logging.getLogger(__name__)

TOP_K = 3
# the result column each model role fills with its score
SCORE_COLUMNS = {"classifier": "fault_probability", "anomaly": "anomaly_score"}


@dataclass
class LoadedModel:
    """A fitted detector with its manifest."""

    name: str
    detector: object
    manifest: dict

    @property
    def threshold(self) -> float:
        return float(self.manifest["threshold"]["value"])

    @property
    def score_column(self) -> str:
        """``fault_probability`` for the classifier, ``anomaly_score`` for the anomaly model."""
        return SCORE_COLUMNS[self.manifest.get("role", "classifier")]

    @property
    def version(self) -> str:
        return self.manifest.get("version", self.name)

    def false_alarm_rate(self, threshold: float) -> float:
        """Approximate share of good wafers flagged at ``threshold`` (validation quantiles)."""
        quantiles = np.asarray(self.manifest["threshold"]["normal_score_quantiles"])
        below = np.interp(threshold, quantiles, np.linspace(0, 1, len(quantiles)),
                          left=0.0, right=1.0)
        return float(1.0 - below)


class SensorPredictor:
    """Scores wafers with the shipped classifier and the autoencoder; explains the decision."""

    def __init__(self, module_dir: Path):
        self.module_dir = Path(module_dir)
        self.models: dict[str, LoadedModel] = {}
        for manifest_path in sorted(self.module_dir.glob("*/manifest.json")):
            detector, manifest = load_bundle(manifest_path.parent, SENSOR_COLUMNS)
            name = manifest.get("name", manifest_path.parent.name)
            self.models[name] = LoadedModel(name, detector, manifest)
        if not self.models:
            raise BundleError(f"no sensor model bundles under {self.module_dir}; train them with "
                              f"'python -m pipelines.train sensor'")
        roles = {m.manifest.get("role"): n for n, m in self.models.items()}
        self.classifier = roles.get("classifier")
        self.anomaly = roles.get("anomaly")
        self.default_model = self.classifier or self.anomaly
        sample_path = self.module_dir / SAMPLE_MODEL_FILE
        self.sample_model = json.loads(sample_path.read_text()) if sample_path.exists() else None

    def get(self, name: str | None) -> LoadedModel:
        """The model that decides: ``name`` or the shipped default."""
        name = name or self.default_model
        if name not in self.models:
            raise UnknownDetectorError(f"unknown model '{name}'; choose one of: "
                                       f"{', '.join(sorted(self.models))}")
        return self.models[name]

    def predict(self, table: SensorTable, threshold: float | None = None,
                model: str | None = None) -> pd.DataFrame:
        """One row per wafer: id, scores, decision at the threshold and the top sensors.

        ``threshold`` applies to the deciding model's score (fault probability for the
        classifier, anomaly score for the autoencoder); default is the manifest's.
        """
        decider = self.get(model)
        threshold = decider.threshold if threshold is None else float(threshold)
        X = table.values
        scores, contributions = decider.detector.explain(X)
        out = pd.DataFrame({"id": table.ids})
        for name in filter(None, (self.classifier, self.anomaly)):
            loaded = self.models[name]
            out[loaded.score_column] = scores if name == decider.name else \
                loaded.detector.score(X)
        out["is_fault"] = scores >= threshold
        out["imputed_cells"] = np.isnan(X).sum(axis=1)
        order = top_k(contributions, TOP_K)
        pre = decider.detector.preprocessor_
        low = np.full(len(SENSOR_COLUMNS), np.nan)
        high = np.full(len(SENSOR_COLUMNS), np.nan)
        low[pre["kept"]], high[pre["kept"]] = pre["q01"], pre["q99"]
        rows = np.arange(len(X))
        names = np.asarray(SENSOR_COLUMNS)
        for k in range(order.shape[1]):
            j = order[:, k]
            out[f"top_sensor_{k + 1}"] = names[j]
            out[f"top_sensor_{k + 1}_contribution"] = contributions[rows, j]
            out[f"top_sensor_{k + 1}_value"] = X[rows, j]
            out[f"top_sensor_{k + 1}_low"] = low[j]
            out[f"top_sensor_{k + 1}_high"] = high[j]
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
        for key in ("fault_probability", "anomaly_score"):
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
