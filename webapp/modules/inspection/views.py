"""The inspection page: bring photos, review them as the model sees them, score, read heatmaps."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from flask import Blueprint, Response, current_app, jsonify, request, url_for

from pipelines.inspection.examples import synthetic_parts
from pipelines.inspection.ingest import image_files, read_image_file
from pipelines.inspection.synthetic import make_defects
from pipelines.inspection.transform import random_angles, rotate_image
from pipelines.inspection.predict import HEATMAP_SPAN, HEATMAP_STOPS, png_bytes
from pipelines.inspection.schema import IMAGE_SIZE
from webapp.limits import heavy_slot
from webapp.modules import get_module
from webapp.modules.inspection.parsing import EXTENSIONS, inspection_request
from webapp.modules.inspection.service import preview_jpeg
from webapp.pagekit import page_config, render_module_page
from webapp.predictors import get_predictor

bp = Blueprint("inspection", __name__, url_prefix="/inspection")

SAMPLE_GOOD = 4  # good training photos the sample is made from
SAMPLE_SEED = 11


@bp.get("/")
def page():
    """The inspection page."""
    spec = get_module("inspection")
    predictor = get_predictor("inspection")
    config = page_config(
        spec, predictor, image_size=IMAGE_SIZE,
        max_images=current_app.config["INSPECTION_MAX_IMAGES"],
        max_heatmaps=current_app.config["INSPECTION_MAX_HEATMAPS"],
        image_extensions=list(EXTENSIONS), check_url=url_for("inspection.check"),
        sample_url=url_for("inspection.sample"), models_url=url_for("pages.models"),
        heatmap={"span": HEATMAP_SPAN, "stops": HEATMAP_STOPS.tolist()})
    return render_module_page(spec, "inspection.html", config, item_label="Images")


@bp.post("/check")
def check():
    """Read uploaded images without scoring: each one as the model will see it, what was
    converted, and the files left out with their reason; a 4xx when none can be read."""
    with heavy_slot():
        req = inspection_request(request)
    images = [{"name": im.name, "original_size": list(im.original_size),
               "mode": im.original_mode, "notes": im.notes,
               "image_jpeg_base64": preview_jpeg(im.pixels)} for im in req.images]
    return jsonify(n_images=len(req.images), read=req.kinds, rejected=req.rejected.to_list(),
                   images=images)


def _sample_images() -> list[tuple[str, bytes]]:
    """Sample photos the project makes: good training photos (``INSPECTION_SAMPLE_DIR``, MVTec
    AD ``train/good``) turned to random angles, some with a synthetic defect (pasted patch,
    spot or chip), so no test photo is ever handed out; without that folder, generated parts
    (which the bottle model will find odd). The photos sit in ``good/`` and ``defective/``
    folders, so a run of the sample is labelled (``ingest.folder_labels``)."""
    folder = current_app.config.get("INSPECTION_SAMPLE_DIR")
    paths = image_files(Path(folder))[:SAMPLE_GOOD] if folder and Path(folder).is_dir() else []
    if not paths:
        parts = synthetic_parts(4, IMAGE_SIZE, seed=3).astype(np.uint8)
        return [(f"generated_{k + 1}.png", png_bytes(p)) for k, p in enumerate(parts)]
    good = np.stack([read_image_file(p).pixels for p in paths])
    defective, _, kinds = make_defects(good[1:], seed=SAMPLE_SEED)
    angles = random_angles(len(good) + len(defective), seed=SAMPLE_SEED)
    out = [(f"good/good_turned_{k + 1}.png", png_bytes(rotate_image(im, angles[k])))
           for k, im in enumerate(good[:1])]
    out += [(f"defective/synthetic_{kind}_{k + 1}.png",
             png_bytes(rotate_image(im, angles[len(good) + k])))
            for k, (im, kind) in enumerate(zip(defective, kinds))]
    return out


@bp.get("/sample.zip")
def sample():
    """A zip of sample photos (see :func:`_sample_images`)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in _sample_images():
            archive.writestr(name, data)
    return Response(buffer.getvalue(), mimetype="application/zip", headers={
        "Content-Disposition": "attachment; filename=fablens_inspection_sample.zip"})
