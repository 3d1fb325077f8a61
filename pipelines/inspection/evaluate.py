"""Score an MVTec AD category folder with every committed inspection model.

``{"shipped": <default model>, "models": {<model>: {"image_auroc", "pixel_auroc", "f1"}},
"rotated": {"seed": <seed>, "models": {<model>: {the same three}}}}``: image AUROC from the
test images' labels (good or not), pixel AUROC from the ground-truth masks (good images count
as all-normal), F1 of "defective" at each model's committed threshold; the ``rotated`` block,
beside the required keys, holds the same figures for the same images each turned by a random
angle about the centre (fixed seed, background filled with the border colour, masks turned
alike); ``--no-rotated`` leaves it out.

``--record`` also stores the document in the release as ``test_evaluation.json`` (with the
test data's name, counts and content hash, and the protocol), hashed in the release manifest,
so the Models page shows the test figures beside the synthetic-defect ones
(:func:`record_test_evaluation`). Nothing else in the release changes.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from pipelines.core.artifacts import (atomic_directory, file_entries, read_manifest, sha256,
                                      write_manifest)
from pipelines.inspection.ingest import GOOD, read_test_set
from pipelines.inspection.metrics import ROTATION_SEED, evaluate_maps, map_metrics
from pipelines.inspection.predict import TEST_EVALUATION_FILE, InspectionPredictor
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


TEST_EVALUATION_ROLE = "figures on the category's test photos (python -m pipelines.evaluate " \
                       "inspection --record)"
TEST_PROTOCOL = ("every model of the release scores the test photos of the category (good and "
                 "defective, with their masks); image AUROC from good vs defective, pixel "
                 "AUROC from the masks (good photos all normal), F1 of 'defective' at each "
                 "model's threshold; 'rotated': the same photos each turned by a random angle "
                 "about the centre (fixed seed), corners filled with the border colour")


def test_data_reference(category: Path, names: list[str], types: list[str]) -> dict:
    """Name, counts and content hash of the test photos scored (no machine path)."""
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode())
        digest.update(sha256(category / "test" / name).encode())
    good = sum(t == GOOD for t in types)
    return {"name": f"{category.name}/test", "images": len(names), "good": good,
            "defective": len(names) - good,
            "types": {t: types.count(t) for t in sorted(set(types))},
            "sha256_of_file_hashes": digest.hexdigest()}


def evaluate_category(data: Path, module_dir: Path, *, seed: int = ROTATION_SEED,
                      rotated: bool = True,
                      progress: Callable[[str], None] = lambda s: None,
                      record: bool = False) -> dict:
    """Metrics of every model in the release on ``data/test`` (see the module doc); with
    ``record``, stored in the release too (:func:`record_test_evaluation`)."""
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
    if record:
        record_test_evaluation(module_dir, document,
                               test_data_reference(category, test.names, test.defect_types))
        progress(f"recorded as {TEST_EVALUATION_FILE} in the release")
    return document


def record_test_evaluation(module_dir: Path, document: dict, data: dict) -> None:
    """Store ``document`` in the release as ``test_evaluation.json`` (the data scored and the
    protocol beside it) and re-hash the release manifest: copy, write, swap in one step."""
    module_dir = Path(module_dir)
    with atomic_directory(module_dir) as tmp:
        shutil.copytree(module_dir, tmp, dirs_exist_ok=True)
        stored = {"protocol": TEST_PROTOCOL, "data": data} | document
        (tmp / TEST_EVALUATION_FILE).write_text(json.dumps(stored, indent=2) + "\n")
        release = read_manifest(tmp)
        roles = {n: e["role"] for n, e in release.get("files", {}).items()}
        release["files"] = file_entries(tmp, roles | {TEST_EVALUATION_FILE: TEST_EVALUATION_ROLE})
        write_manifest(tmp, release)
