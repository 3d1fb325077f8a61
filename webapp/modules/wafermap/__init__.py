"""Wafer-map module, web side: the page, its checks and samples, and the predict API."""
from __future__ import annotations

import io
import zipfile

import numpy as np

from pipelines.wafermap.examples import PATTERNS, synthetic_map
from pipelines.wafermap.predict import WafermapPredictor
from webapp.modules import ModuleExamples, ModuleSpec, ResultsDecision, UploadExample
from webapp.modules.wafermap import api, batch, views

FORMULA_NAMES = ["=1+1", "+SUM(A1:A2)", "-2+3", "@cmd", "W-5", "-7", "8"]


def examples(predictor: WafermapPredictor) -> ModuleExamples:
    """A zip of CSV-grid maps named like formulas (and numbers); a PNG that is not one."""
    rng = np.random.default_rng(7)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i, name in enumerate(FORMULA_NAMES):
            grid = synthetic_map(PATTERNS[i % len(PATTERNS)], 30 + 4 * i, rng)
            archive.writestr(f"{name}.csv", views.grid_csv([grid]))
    good = UploadExample("formula_names.zip", buffer.getvalue(), n_rows=len(FORMULA_NAMES))
    bad = UploadExample("scan.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 32,
                        needle="not a readable PNG or JPEG image")
    return ModuleExamples(good=good, bad=bad)


MODULE = ModuleSpec(
    name="wafermap",
    title="Wafer map",
    blurb="Die pass/fail grids per wafer: classify the defect pattern and show the region "
          "behind it.",
    blueprints=(views.bp, api.bp),
    predictor=WafermapPredictor,
    page="wafermap.page",
    predict="wafermap_api.predict",
    examples=examples,
    decision=ResultsDecision(flag="needs_review", threshold="review_level", below=True,
                             predicted="class"),
    batch=batch.score_file,
)
