"""Wafer-map prediction: class, calibrated confidence, top 3, "needs review", saliency.

Serving runs the ONNX model through onnxruntime only; torch is never imported here.
"""
from __future__ import annotations

import logging
from typing import ClassVar, Sequence

import numpy as np

from pipelines.core import budget
from pipelines.core.drift import REFERENCE_FILE
from pipelines.core.problems import SchemaError
from pipelines.core.predictor import Predictor
from pipelines.core.thresholds import flagged
from pipelines.wafermap.ingest import check_grid
from pipelines.wafermap.reference import map_drift
from pipelines.wafermap.schema import MODEL_SIZE
from pipelines.wafermap.transform import resize_map, to_source_grid

logger = logging.getLogger(__name__)

TOP_K = 3
CHUNK = 4096  # maps resized and scored at a time (bounded memory for large batches)


class WafermapPredictor(Predictor):
    """Classifies wafer maps of any size with the released CNN."""

    module: ClassVar[str] = "wafermap"
    item_noun: ClassVar[str] = "maps"

    def __init__(self, module_dir, **overrides):
        super().__init__(module_dir, **overrides)
        self.model = self.get(None)
        self.classes: list[str] = list(self.model.detector.classes)

    @property
    def review_level(self) -> float:
        """Predictions with a confidence below this are flagged ``needs_review``."""
        return self.model.threshold

    def describe(self) -> list[dict]:
        """The model, its classes, the review level and its validation metrics."""
        m = self.model
        return [{"name": m.name, "model": m.manifest.get("model"), "role": m.role,
                 "version": m.version, "default": True, "classes": self.classes,
                 "review_level": self.review_level, "review": m.manifest.get("threshold", {}),
                 "temperature": m.manifest.get("calibration", {}).get("temperature"),
                 "map_size": MODEL_SIZE, "metrics": m.manifest.get("metrics", {})}]

    def card(self, name: str) -> dict:
        """The Models page card: a classifier has no false-alarm threshold; the class is the
        most probable one, and the review level says which predictions a person should check."""
        card = super().card(name)
        manifest = self.models[name].manifest
        review = manifest.get("threshold") or {}
        card["threshold"] = {
            "kind": "review", "value": review.get("value"), "rule": review.get("rule"),
            "source": review.get("source"), "target_accuracy": review.get("target_accuracy"),
            "val_flagged_share": review.get("val_flagged_share"),
            "val_accuracy_flagged": review.get("val_accuracy_flagged"),
            "val_accuracy_not_flagged": review.get("val_accuracy_not_flagged")}
        calibration = manifest.get("calibration") or {}
        if calibration.get("temperature") is not None:
            card["notes"].append(
                f"Confidence is calibrated by temperature scaling (T = "
                f"{calibration['temperature']:g}, fitted on validation log-loss); expected "
                f"calibration error on validation {calibration.get('val_ece_before', float('nan')):.4f} "
                f"before, {calibration.get('val_ece_after', float('nan')):.4f} after.")
        return card

    def drift(self, predicted: Sequence[str], maps: Sequence[np.ndarray] = (), *,
              densities: Sequence[float] | None = None) -> dict | None:
        """The drift record of a scored batch, its predicted classes and maps (or the maps'
        fail-die ``densities``) (:func:`pipelines.wafermap.reference.map_drift`: the larger of
        the class-mix and the fail-die density PSI); None for a release without the training
        reference."""
        if REFERENCE_FILE not in self.release.get("files", {}):  # a release from before it
            return None
        return map_drift(self.module_json(REFERENCE_FILE), predicted, maps, densities=densities)

    def model_input(self, maps: Sequence[np.ndarray], names: Sequence[str] | None = None
                    ) -> np.ndarray:
        """Check every map (0/1/2, not empty, not all off-wafer) and resize to the model grid."""
        problems = []
        for i, grid in enumerate(maps):
            problems += check_grid(np.asarray(grid), names[i] if names else None,
                                   None if names else i + 1)
        if problems:
            raise SchemaError(problems)
        return np.stack([resize_map(np.asarray(g), MODEL_SIZE) for g in maps])

    def probabilities(self, maps: Sequence[np.ndarray]) -> np.ndarray:
        """(maps, classes) calibrated probabilities, scored ``CHUNK`` maps at a time."""
        out = []
        for start in range(0, len(maps), CHUNK):
            budget.check()
            out.append(self.model.detector.score(self.model_input(maps[start:start + CHUNK])))
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)))

    def predict(self, maps: Sequence[np.ndarray], *, saliency: bool = False,
                names: Sequence[str] | None = None) -> list[dict]:
        """One record per map: class, confidence, probabilities, top 3, needs_review.

        With ``saliency``, each record also has ``saliency``: an occlusion map at the map's
        own size (how much each die drove the predicted class, 0 = not at all).
        """
        records: list[dict] = []
        level = self.review_level
        for start in range(0, len(maps), CHUNK):
            budget.check()
            part = list(maps[start:start + CHUNK])
            X = self.model_input(part, names[start:start + CHUNK] if names else None)
            if saliency:
                explanation = self.model.detector.explain(X)
                probabilities, regions = explanation.scores, explanation.regions
            else:
                probabilities = self.model.detector.score(X)
            top = np.argsort(-probabilities, axis=1, kind="stable")[:, :TOP_K]
            for i, p in enumerate(probabilities):
                best = int(top[i, 0])
                record = {
                    "class": self.classes[best],
                    "confidence": float(p[best]),
                    "probabilities": {c: float(v) for c, v in zip(self.classes, p)},
                    "top3": [{"class": self.classes[k], "probability": float(p[k])}
                             for k in top[i]],
                    "needs_review": bool(flagged(p[best], level, below=True)),
                }
                if names:
                    record = {"name": names[start + i]} | record
                if saliency:
                    record["saliency"] = to_source_grid(regions[i], np.shape(part[i]))
                records.append(record)
        return records
