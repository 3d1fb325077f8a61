"""Scoring a wafer-map request, and what the page, the API and the results CSV receive."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from flask import current_app

from pipelines.core.confusion import multiclass_report
from pipelines.core.thresholds import flagged
from pipelines.wafermap.codes import pack_grid  # noqa: F401 (the page's packing, one source)
from pipelines.wafermap.predict import WafermapPredictor
from pipelines.wafermap.results import results_frame as map_results
from webapp.errors import InputError
from webapp.modules.wafermap.parsing import WafermapRequest

PROBABILITY_DECIMALS = 6
# maps handed to the predictor at a time: onnxruntime keeps its largest batch's activations
# in its arena, so smaller calls bound the worker's memory (a 64 x 64 map costs the network
# channels x 16 kB per layer) at no cost in throughput
SCORE_CHUNK = 128


@dataclass
class ScoredMaps:
    """A request's maps scored: one record per map and what the run record needs."""

    records: list[dict]
    model: str
    model_version: str
    review_level: float
    default_review_level: float
    classes: list[str]

    @property
    def n_review(self) -> int:
        return sum(r["needs_review"] for r in self.records)


def score_maps(predictor: WafermapPredictor, req: WafermapRequest) -> ScoredMaps:
    """Score every map of ``req``; "needs review" decided at the request's level."""
    model = predictor.get(req.model)  # an unknown model: a 400 (webapp.errors)
    limit = int(current_app.config["WAFERMAP_MAX_SALIENCY"])
    if req.saliency and len(req.maps) > limit:
        raise InputError(f"saliency is computed for at most {limit} maps per request, and this "
                         f"one holds {len(req.maps)}; ask without saliency, or send fewer maps",
                         code=413)
    records = [record for start in range(0, len(req.maps), SCORE_CHUNK)
               for record in predictor.predict(req.maps[start:start + SCORE_CHUNK],
                                               saliency=req.saliency)]
    level = predictor.review_level if req.review_level is None else req.review_level
    for k, record in enumerate(records):
        record["needs_review"] = bool(flagged(record["confidence"], level, below=True))
        record["probabilities"] = {c: round(p, PROBABILITY_DECIMALS)
                                   for c, p in record["probabilities"].items()}
        for entry in record["top3"]:
            entry["probability"] = round(entry["probability"], PROBABILITY_DECIMALS)
        if req.saliency:
            record["saliency"] = np.round(record["saliency"], 4).tolist()
    return ScoredMaps(records, model.name, model.version, float(level),
                      float(predictor.review_level), list(predictor.classes))


def label_report(run: ScoredMaps, labels: list[str] | None) -> dict | None:
    """Against the file's labels (maps without one left out): accuracy, macro-F1 over the
    ``macro_classes`` classes labelled or predicted, per class and the confusion matrix (rows
    true, columns predicted, in ``classes`` order)."""
    if not labels:
        return None
    known = [k for k, label in enumerate(labels) if label]
    y = np.array([run.classes.index(labels[k]) for k in known])
    predicted = np.array([run.classes.index(run.records[k]["class"]) for k in known])
    report = multiclass_report(y, predicted, run.classes, macro_over_present=True)
    return {"n_labelled": len(known), "n_unlabelled": len(labels) - len(known),
            "classes": run.classes} | {k: report[k] for k in (
                "accuracy", "macro_f1", "macro_classes", "per_class", "confusion_matrix")}


def results_frame(run: ScoredMaps, names: list[str], labels: list[str] | None = None,
                  first: int = 1) -> pd.DataFrame:
    """The results CSV: every map, numbered from ``first``, its class (and true label, when
    the file has them), confidence, review flag and all probabilities
    (``pipelines.wafermap.results``)."""
    return map_results(run.records, names, run.classes, run.review_level, run.model_version,
                       labels, first=first)
