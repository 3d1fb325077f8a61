"""Score an MVTec AD category folder with every committed inspection model.

``{"shipped": <default model>, "models": {<model>: {"image_auroc", "pixel_auroc", "f1"}},
"rotated": {"seed": <seed>, "models": {<model>: {the same three}}}}``: image AUROC from the
test images' labels (good or not), pixel AUROC from the ground-truth masks (good images count
as all-normal), F1 of "defective" at each model's committed threshold; the ``rotated`` block,
beside the required keys, holds the same figures for the same images each turned by a random
angle about the centre (fixed seed, background filled with the border colour, masks turned
alike); ``--no-rotated`` leaves it out.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from pipelines.inspection.ingest import read_test_set
from pipelines.inspection.metrics import ROTATION_SEED, evaluate_maps, map_metrics
from pipelines.inspection.predict import InspectionPredictor
from pipelines.inspection.schema import IMAGE_SIZE


def _round(document: dict) -> dict:
    return {k: (_round(v) if isinstance(v, dict) else
                round(v, 4) if isinstance(v, float) else v) for k, v in document.items()}


def find_test_category(path: Path) -> Path:
    """The folder holding ``test/``: ``path`` itself or ``path/mvtec/bottle`` (the project's
    data directory). ``train/`` need not be there (a held-out part may hold only the test)."""
    path = Path(path)
    for candidate in (path, path / "mvtec" / "bottle"):
        if (candidate / "test").is_dir():
            return candidate
    raise FileNotFoundError(f"no test/ folder in {path} or {path / 'mvtec' / 'bottle'} "
                            f"(expected the MVTec AD layout: test/<type>/, "
                            f"ground_truth/<type>/<n>_mask.png)")


def evaluate_category(data: Path, module_dir: Path, *, seed: int = ROTATION_SEED,
                      rotated: bool = True,
                      progress: Callable[[str], None] = lambda s: None) -> dict:
    """Metrics of every model in the release on ``data/test`` (see the module doc)."""
    category = find_test_category(data)
    test = read_test_set(category, IMAGE_SIZE)
    counts = {t: test.defect_types.count(t) for t in sorted(set(test.defect_types))}
    progress(f"read {len(test.names)} test images ({counts}) and "
             f"{int(test.labels.sum())} masks from {category.name}")
    predictor = InspectionPredictor(module_dir)
    models, turned = {}, {}
    for name, model in predictor.models.items():
        def explain(images: np.ndarray, detector=model.detector):
            e = detector.explain(images.astype(np.float32))
            return e.scores, e.maps

        if rotated:
            result = evaluate_maps(explain, test.images, test.labels, test.masks,
                                   model.threshold, seed)
            turned[name] = _round({k: v for k, v in result.pop("rotated").items()
                                   if k != "seed"})
        else:
            result = map_metrics(*explain(test.images), test.labels, test.masks,
                                 model.threshold)
        models[name] = _round(result)
        progress(f"{name}: {models[name]}" + (f"; rotated {turned[name]}" if rotated else ""))
    document = {"shipped": predictor.default_model, "models": models}
    if rotated:
        document["rotated"] = {"seed": seed, "models": turned}
    return document
