"""Score an npz of labelled maps (either layout) with the committed wafer-map release."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from pipelines.core.evaluation import multiclass_metrics
from pipelines.wafermap.ingest import read_npz
from pipelines.wafermap.predict import CHUNK, WafermapPredictor
from pipelines.wafermap.ingest import find_data


def evaluate_npz(data: Path, module_dir: Path, *, split: str | None = None,
                 progress: Callable[[str], None] = lambda s: None,
                 record: Path | None = None) -> dict:
    """``{"accuracy", "macro_f1", "per_class", "confusion_matrix"}`` for the file's maps.

    Every map is scored unless ``split`` names one part of the file's ``split`` array. The
    confusion matrix has true classes as rows and predicted ones as columns, both in the
    order of ``per_class``. With ``record`` the run is appended there
    (:mod:`pipelines.core.evaluation_log`) and the document's ``record`` says how many runs
    that file and split have had.
    """
    file = find_data(data)
    maps = read_npz(file, split=split)
    if maps.labels is None:
        raise ValueError(f"{file.name} has no labels ('y'): nothing to evaluate against")
    progress(f"read {len(maps)} maps from {file.name} ({maps.layout}"
             f"{', split ' + split if split else ''})")
    predictor = WafermapPredictor(module_dir)
    classes = predictor.classes
    parts = []
    for start in range(0, len(maps), CHUNK):
        parts.append(predictor.probabilities(maps.maps[start:start + CHUNK]))
        progress(f"scored {min(start + CHUNK, len(maps))}/{len(maps)}")
    y = np.array([classes.index(c) for c in maps.labels])
    metrics = multiclass_metrics(y, np.concatenate(parts), classes)
    progress(f"accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}")
    document = {k: metrics[k] for k in ("accuracy", "macro_f1", "per_class", "confusion_matrix")}
    if record is not None:
        from pipelines.core.artifacts import read_manifest
        from pipelines.core.evaluation_log import record_run

        document["record"] = record_run(
            record, {"data": file}, read_manifest(Path(module_dir)),
            {"maps": len(maps), "macro_f1": metrics["macro_f1"], "accuracy": metrics["accuracy"],
             "f1": {c: v["f1"] for c, v in metrics["per_class"].items()}}, part=split)
        progress(f"recorded in {record}: run {document['record']['runs_on_this_test_file']} "
                 f"on this file's {split or 'maps'}")
    return document
