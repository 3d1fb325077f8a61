"""Score an MVTec AD category folder with every committed inspection model.

``{"shipped": <default model>, "models": {<model>: {"image_auroc", "pixel_auroc", "f1",
"rotated": {...}}}}``: image AUROC from the test images' labels (good or not), pixel AUROC
from the ground-truth masks (good images count as all-normal), F1 of "defective" at each
model's committed threshold; ``rotated`` holds the same figures for the same images each
turned by a random angle about the centre (fixed seed, background filled with the border
colour, masks turned alike).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from pipelines.inspection.ingest import read_test_set
from pipelines.inspection.metrics import ROTATION_SEED, evaluate_maps
from pipelines.inspection.predict import InspectionPredictor
from pipelines.inspection.schema import IMAGE_SIZE


def _round(document: dict) -> dict:
    return {k: (_round(v) if isinstance(v, dict) else
                round(v, 4) if isinstance(v, float) else v) for k, v in document.items()}


def evaluate_category(data: Path, module_dir: Path, *, seed: int = ROTATION_SEED,
                      rotated: bool = True,
                      progress: Callable[[str], None] = lambda s: None) -> dict:
    """Metrics of every model in the release on ``data/test`` (see the module doc)."""
    from pipelines.inspection.train import find_category

    category = find_category(data)
    test = read_test_set(category, IMAGE_SIZE)
    counts = {t: test.defect_types.count(t) for t in sorted(set(test.defect_types))}
    progress(f"read {len(test.names)} test images ({counts}) and "
             f"{int(test.labels.sum())} masks from {category.name}")
    predictor = InspectionPredictor(module_dir)
    models = {}
    for name, model in predictor.models.items():
        def explain(images: np.ndarray, detector=model.detector):
            e = detector.explain(images.astype(np.float32))
            return e.scores, e.maps

        if rotated:
            result = evaluate_maps(explain, test.images, test.labels, test.masks,
                                   model.threshold, seed)
        else:
            from pipelines.inspection.metrics import map_metrics

            result = map_metrics(*explain(test.images), test.labels, test.masks,
                                 model.threshold)
        models[name] = _round(result)
        progress(f"{name}: {models[name]}")
    return {"shipped": predictor.default_model, "models": models}
