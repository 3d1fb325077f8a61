"""Inspection prediction: anomaly score, threshold, verdict and, when asked, the heatmap.

Serving runs the ONNX graphs through onnxruntime only; torch is never imported here.
"""
from __future__ import annotations

import io
import logging
from typing import ClassVar, Sequence

import numpy as np

from pipelines.core.cards import protocol_columns
from pipelines.core.drift import REFERENCE_FILE
from pipelines.core.predictor import LoadedModel, Predictor
from pipelines.inspection.ingest import LoadedImage
from pipelines.inspection.reference import photo_drift
from pipelines.inspection.schema import IMAGE_SIZE

TEST_EVALUATION_FILE = "test_evaluation.json"  # written by pipelines.inspection.evaluate

logger = logging.getLogger(__name__)

# colour stops of the heatmap (0 = normal, 1 = twice the threshold and beyond): dark blue,
# cyan, yellow, red; transparency rises with the value so the part shows through low areas
HEATMAP_STOPS = np.array([[0.0, 20, 40, 160, 0], [0.35, 0, 190, 220, 90],
                          [0.5, 255, 230, 0, 170], [1.0, 230, 20, 20, 230]])
HEATMAP_SPAN = 2.0  # the colour scale reaches its top at this many times the threshold


def heatmap_rgba(anomaly_map: np.ndarray, threshold: float) -> np.ndarray:
    """An (H, W, 4) uint8 colour overlay: ``map / (HEATMAP_SPAN * threshold)`` on the stops,
    so the threshold sits at the yellow stop (0.5) for every image and model."""
    scale = max(float(threshold) * HEATMAP_SPAN, 1e-12)
    v = np.clip(np.asarray(anomaly_map, dtype=float) / scale, 0.0, 1.0)
    stops = HEATMAP_STOPS
    out = np.stack([np.interp(v, stops[:, 0], stops[:, k]) for k in range(1, 5)], axis=-1)
    return np.round(out).astype(np.uint8)


def png_bytes(pixels: np.ndarray) -> bytes:
    """An (H, W, 3|4) uint8 array as PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)  # speed over size
    return buffer.getvalue()


def test_columns(document: dict, model: str) -> list[dict]:
    """The Models page columns of a recorded test evaluation: the photos as they are and,
    when recorded, each turned by a random angle (``pipelines.inspection.evaluate``)."""
    data = document.get("data") or {}
    name = data.get("name", "test")
    counts = [f"{data[k]:,} {w}" for k, w in (("images", "photos"), ("good", "good"),
                                              ("defective", "defective")) if k in data]
    blocks = [("test", f"Test photos ({name}), aligned", document.get("models", {}))]
    rotated = document.get("rotated") or {}
    if rotated:
        blocks.append(("test_rotated", f"Test photos ({name}), rotated (seed {rotated.get('seed')})",
                       rotated.get("models", {})))
    columns = []
    for key, label, models in blocks:
        if model in models:
            block = {"label": label, **models[model], "protocol": document.get("protocol")}
            columns += [c | {"counts": list(counts)} for c in protocol_columns({key: block},
                                                                                "photos")]
    return columns


class InspectionPredictor(Predictor):
    """Scores part photos with the released models (default: the release's choice)."""

    module: ClassVar[str] = "inspection"
    item_noun: ClassVar[str] = "photos"
    normal_items: ClassVar[str] = "held-out good photos (as taken and turned)"

    def describe(self) -> list[dict]:
        """Every model with its threshold, false-alarm curve and validation metrics."""
        return [d | {"image_size": IMAGE_SIZE} for d in super().describe()]

    def card(self, name: str) -> dict:
        """The Models page card: the photos are all good parts; the synthetic-defect columns
        get their counts from ``evaluation.json``, and the test photos' figures
        (``test_evaluation.json``, from ``pipelines.evaluate inspection --record``) stand
        beside them, aligned and rotated."""
        card = super().card(name)
        data = card["data"]
        images = (self.models[name].manifest.get("training_data") or {}).get("images")
        if images and not data["class_counts"]:
            data["class_counts"] = [{"split": None, "counts": [["good", images]]}]
        files = self.release.get("files", {})
        if "evaluation.json" in files:
            synthetic = self.module_json("evaluation.json").get("models", {}).get(name, {}) \
                .get("synthetic_validation", {})
            counts = [f"{synthetic[k]:,} {w}" for k, w in
                      (("good", "good"), ("defects", "with a synthetic defect")) if k in synthetic]
            for column in card["columns"]:
                if column["key"].startswith("synthetic defects"):
                    column["counts"] = column["counts"] or counts
        if TEST_EVALUATION_FILE in files:
            card["columns"] += test_columns(self.module_json(TEST_EVALUATION_FILE), name)
        return card

    def drift(self, images: Sequence[LoadedImage | np.ndarray] = (), *,
              statistics: dict[str, np.ndarray] | None = None) -> dict | None:
        """The drift record of a batch of photos at model size, or of their
        ``statistics`` (:func:`pipelines.inspection.reference.photo_statistics`)
        (:func:`pipelines.inspection.reference.photo_drift`: the larger PSI of mean intensity
        and contrast against the good training photos); None for a release without the
        reference."""
        if REFERENCE_FILE not in self.release.get("files", {}):  # a release from before it
            return None
        return photo_drift(self.module_json(REFERENCE_FILE),
                           [im.pixels if isinstance(im, LoadedImage) else im for im in images],
                           statistics=statistics)

    def model_input(self, images: Sequence[LoadedImage | np.ndarray]) -> np.ndarray:
        """(N, IMAGE_SIZE, IMAGE_SIZE, 3) float32 from loaded images or RGB arrays."""
        arrays = [im.pixels if isinstance(im, LoadedImage) else np.asarray(im) for im in images]
        return np.stack(arrays).astype(np.float32)

    def predict(self, images: Sequence[LoadedImage | np.ndarray], *, model: str | None = None,
                threshold: float | None = None, maps: bool = False) -> list[dict]:
        """One record per image: ``anomaly_score``, ``threshold``, ``is_anomaly`` (score at or
        above the threshold), ``notes`` (conversions); with ``maps`` also ``map``: the
        anomaly map (IMAGE_SIZE x IMAGE_SIZE float32)."""
        chosen: LoadedModel = self.get(model)
        level = chosen.threshold if threshold is None else float(threshold)
        X = self.model_input(images)
        if maps:
            explanation = chosen.detector.explain(X)
            scores, anomaly_maps = explanation.scores, explanation.maps
        else:
            scores, anomaly_maps = chosen.detector.score(X), None
        records = []
        for i, score in enumerate(scores):
            record = {"anomaly_score": float(score), "threshold": level,
                      "is_anomaly": bool(score >= level)}
            image = images[i]
            if isinstance(image, LoadedImage):
                record = {"name": image.name} | record | {"notes": list(image.notes)}
            if maps:
                record["map"] = anomaly_maps[i]
            records.append(record)
        return records
