"""Batch scoring of part photos on disk (a job: ``webapp/jobs``), as the predict API scores an
upload: the same checks and decoding per photo, the same scoring (:func:`score_images`),
results table and CSV columns, drift and warnings, ``CHUNK_PHOTOS`` photos at a time.

The data is one photo or a folder of them (an input folder, or a zip the job unpacked, so a
zip of thousands of photos is never in memory), in path order and named by their path under
the folder, as a zip's members are in an upload (MVTec AD's ``good/`` and ``<defect>/``
folders label them). A photo that cannot be read is left out with its reason, as in an
upload. Only one chunk's photos are alive at a time; what is kept for the whole job is each
photo's name and its two drift statistics.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from flask import current_app

from pipelines.core.problems import Problem, SchemaError
from pipelines.inspection.ingest import labelled_defective
from pipelines.inspection.reference import STATISTICS, photo_statistics
from webapp.modules.inspection.parsing import EXTENSIONS, InspectionRequest, _member_image
from webapp.modules.inspection.service import converted_warning, results_frame, score_images
from webapp.params import check_threshold_range
from webapp.registry import BatchChunk, BatchScoring
from webapp.uploads import Rejections, UploadedBytes, files_on_disk

CHUNK_PHOTOS = 64  # photos decoded and scored at a time (the model takes them 16 at a time)
PHOTOS = tuple(e for e in EXTENSIONS if e != ".zip")


def _photo(path: Path, name: str, limit: int):
    """One photo as an upload's is read (at most the request limit)."""
    size = path.stat().st_size
    if size > limit:
        raise SchemaError([Problem(f"{size:,} bytes, more than the request limit of "
                                   f"{limit:,}", file=name)])
    return _member_image(UploadedBytes(name, path.read_bytes()), name)


def score_file(predictor, path: Path, name: str, options: dict) -> BatchScoring:
    """The photos of ``path`` (called ``name``) scored chunk by chunk at ``options``' model
    and threshold (the module's defaults when None)."""
    model = predictor.get(options.get("model"))  # an unknown model: a 400
    check_threshold_range(options.get("threshold"), model.score_range, model.name)
    level = model.threshold if options.get("threshold") is None else float(options["threshold"])
    limit = int(current_app.config["MAX_CONTENT_LENGTH"])
    rejections = Rejections()
    kept: dict = {"names": [], "converted": [], "n_converted": 0,
                  "stats": {k: [] for k in STATISTICS}}

    def scored(images) -> BatchChunk:
        req = InspectionRequest(name, images, "", model=model.name, threshold=level)
        run = score_images(predictor, req)
        frame = results_frame(run, first=len(kept["names"]) + 1)
        kept["names"] += [im.name for im in images]
        converted = [r["name"] for r in run.records if r["converted"]]
        kept["n_converted"] += len(converted)
        kept["converted"] = (kept["converted"] + converted)[:5]
        for key, values in photo_statistics([im.pixels for im in images]).items():
            kept["stats"][key].append(values)
        return BatchChunk(frame, len(images), run.n_anomalies)

    def chunks():
        sources = files_on_disk(path, name, PHOTOS)
        scoring.total = len(sources)
        images = []
        for file, shown in sources:
            image = rejections.attempt(shown, _photo, file, shown, limit)
            if image is not None:
                images.append(image)
            if len(images) == CHUNK_PHOTOS:
                yield scored(images)
                images = []
        if images:
            yield scored(images)
        rejections.raise_if_all_rejected(len(kept["names"]), f"{name} holds no images")

    def finish() -> dict:
        stats = {k: np.concatenate(v) if v else np.zeros(0) for k, v in kept["stats"].items()}
        return {"drift": predictor.drift(statistics=stats),
                "warnings": converted_warning(kept["n_converted"], kept["converted"])
                + rejections.warnings(),
                "labelled_faulty": labelled_defective(kept["names"])}

    scoring = BatchScoring(model=model.name, model_version=model.version, threshold=level,
                           default_threshold=float(model.threshold), unit="photos",
                           chunks=iter(()), finish=finish)
    scoring.chunks = chunks()
    return scoring
