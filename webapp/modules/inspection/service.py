"""Scoring an inspection request, and what the page, the API and the results CSV receive."""
from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np
import pandas as pd
from flask import current_app

from pipelines.inspection.predict import InspectionPredictor, heatmap_rgba, png_bytes
from pipelines.inspection.results import VERDICT_WORDS, verdict  # noqa: F401 (the module spec's)
from pipelines.inspection.results import results_frame as image_results
from webapp.errors import InputError
from webapp.modules.inspection.parsing import InspectionRequest
from webapp.params import check_threshold_range

SCORE_DECIMALS = 6
# images handed to the model at a time: bounds the maps held in memory at once
SCORE_CHUNK = 16


@dataclass
class ScoredImages:
    """A request's images scored: one record per image and what the run record needs."""

    records: list[dict]
    model: str
    model_version: str
    threshold: float
    default_threshold: float

    @property
    def n_anomalies(self) -> int:
        return sum(r["is_anomaly"] for r in self.records)


def b64_png(pixels: np.ndarray) -> str:
    return base64.b64encode(png_bytes(pixels)).decode()


def preview_jpeg(pixels: np.ndarray, quality: int = 85) -> str:
    """The image as the model sees it, as a base64 JPEG (the page's review and overlay)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return base64.b64encode(buffer.getvalue()).decode()


def score_images(predictor: InspectionPredictor, req: InspectionRequest) -> ScoredImages:
    """Score every image of ``req`` at the request's threshold (or the model's)."""
    model = predictor.get(req.model)  # an unknown model: a 400 (webapp.errors)
    check_threshold_range(req.threshold, model.score_range, model.name)
    limit = int(current_app.config["INSPECTION_MAX_HEATMAPS"])
    if req.heatmap and len(req.images) > limit:
        raise InputError(f"heatmaps are returned for at most {limit} images per request, and "
                         f"this one holds {len(req.images)}; ask without heatmap, or send fewer "
                         f"images", code=413)
    level = model.threshold if req.threshold is None else req.threshold
    records = []
    for start in range(0, len(req.images), SCORE_CHUNK):
        part = req.images[start:start + SCORE_CHUNK]
        for image, record in zip(part, predictor.predict(part, model=model.name, threshold=level,
                                                         maps=req.heatmap)):
            record["anomaly_score"] = round(record["anomaly_score"], SCORE_DECIMALS)
            record["verdict"] = verdict(record["is_anomaly"])
            record["converted"] = bool(image.notes)
            record["original_size"] = list(image.original_size)
            if req.heatmap:
                anomaly_map = record.pop("map")
                record["heatmap_png_base64"] = b64_png(heatmap_rgba(anomaly_map, level))
                record["map_max"] = round(float(anomaly_map.max()), SCORE_DECIMALS)
            if req.include_images:
                record["image_jpeg_base64"] = preview_jpeg(image.pixels)
            records.append(record)
    return ScoredImages(records, model.name, model.version, float(level),
                        float(model.threshold))


def results_frame(run: ScoredImages, first: int = 1) -> pd.DataFrame:
    """The results CSV: every image, numbered from ``first``, its score, the threshold, the
    verdict, conversions (``pipelines.inspection.results``)."""
    return image_results(run.records, run.threshold, run.model_version, first=first)


def converted_warning(n_converted: int, names: list[str]) -> list[str]:
    """The run's warning about the ``n_converted`` images converted or resized to the model's
    input (the first of their ``names`` shown), or none."""
    if not n_converted:
        return []
    return [f"{n_converted} image(s) converted or resized to the model's input: "
            f"{', '.join(names[:5])}{' ...' if n_converted > 5 else ''}"]
