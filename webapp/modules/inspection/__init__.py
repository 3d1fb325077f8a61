"""Inspection module, web side: the page, its checks and sample, and the predict API."""
from __future__ import annotations

import io
import zipfile

import numpy as np

from pipelines.inspection.examples import synthetic_parts
from pipelines.inspection.predict import InspectionPredictor, png_bytes
from webapp.modules import ModuleExamples, ModuleSpec, ResultsDecision, UploadExample
from webapp.modules.inspection import api, batch, views
from webapp.modules.inspection.service import VERDICT_WORDS

FORMULA_NAMES = ["=1+1", "+SUM(A1:A2)", "-2+3", "@cmd", "part-5", "-7"]


def examples(predictor: InspectionPredictor) -> ModuleExamples:
    """A zip of small generated photos named like formulas (and numbers); a PNG that is not."""
    parts = synthetic_parts(len(FORMULA_NAMES), 64, seed=5).astype(np.uint8)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, part in zip(FORMULA_NAMES, parts):
            archive.writestr(f"{name}.png", png_bytes(part))
    good = UploadExample("formula_names.zip", buffer.getvalue(), n_rows=len(FORMULA_NAMES))
    bad = UploadExample("scan.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 32,
                        needle="not a readable PNG or JPEG image")
    return ModuleExamples(good=good, bad=bad)


MODULE = ModuleSpec(
    name="inspection",
    title="Inspection",
    blurb="Product photos: find and localise visual defects, trained on good parts only.",
    blueprints=(views.bp, api.bp),
    predictor=InspectionPredictor,
    page="inspection.page",
    predict="inspection_api.predict",
    examples=examples,
    decision=ResultsDecision(flag="is_anomaly", threshold="threshold", verdict="verdict",
                             verdict_words=VERDICT_WORDS),
    batch=batch.score_file,
)
