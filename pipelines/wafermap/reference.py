"""Drift of a batch of wafer maps: its predicted class mix and fail-die density against training.

The release keeps, in ``drift_reference.json`` (:mod:`pipelines.core.drift`), the training
split's class shares (its labels) and the bins and shares of its fail-die density (fail dies
over on-wafer dies, per map, on the map as read: :func:`fail_density`). A scored batch's drift
(:func:`map_drift`) is the statistic ``psi``: the larger of two population stability indexes,
the predicted class mix against the training class mix and the batch's fail-die densities
against the training's, alerting at ``pipelines.core.drift.PSI_ALERT``; the detail holds both,
and the class shares side by side.

``python -m pipelines.wafermap.reference [--data DIR] [--artifacts DIR]`` adds the file to
an existing release (checked against the training file's sha256 in the manifest) without
retraining; training writes it too.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from pipelines.core.drift import (PSI_ALERT, REFERENCE_FILE, category_shares, drift_record,
                                  psi_against, psi_of_shares, reference_bins, write_reference)

REFERENCE_ROLE = "training class shares and fail-die density bins, for drift"


def fail_density(grid: np.ndarray) -> float:
    """Fail dies (2) over on-wafer dies (1 or 2) of one map; 0 for a map with none on wafer."""
    grid = np.asarray(grid)
    on_wafer = int((grid > 0).sum())
    return float((grid == 2).sum() / on_wafer) if on_wafer else 0.0


def training_reference(maps: Sequence[np.ndarray], labels: Sequence[str],
                       classes: Sequence[str]) -> dict:
    """``{"statistic": "psi", "classes", "class_shares", "fail_density": bins}`` of the
    training maps and their labels (``classes``: the model's class order)."""
    counts = {c: int(np.sum(np.asarray(labels) == c)) for c in classes}
    return {"statistic": "psi", "classes": list(classes),
            "class_shares": category_shares(counts, classes),
            "fail_density": reference_bins([fail_density(g) for g in maps])}


def map_drift(reference: dict, predicted: Sequence[str], maps: Sequence[np.ndarray] = (), *,
              densities: Sequence[float] | None = None) -> dict:
    """The drift record of a batch (:func:`pipelines.core.drift.drift_record`) from its
    predicted classes and its maps: the larger of the class-mix PSI and the fail-density PSI.
    ``densities`` (each map's :func:`fail_density`) stand for the maps when a batch job has
    scored them a chunk at a time and kept only these.

    Detail: ``class_mix_psi``, ``fail_density_psi``, ``class_shares`` (``{class: {"batch",
    "training"}}``), ``fail_density_mean`` (the batch's mean fail-die density).
    """
    classes = reference["classes"]
    counts = {c: 0 for c in classes}
    for name in predicted:
        counts[name] = counts.get(name, 0) + 1
    shares = category_shares(counts, classes)
    class_psi = psi_of_shares(reference["class_shares"], shares)
    densities = [fail_density(g) for g in maps] if densities is None else list(densities)
    density_psi = psi_against(reference["fail_density"], densities)
    value = max(class_psi, density_psi)
    detail = {"class_mix_psi": class_psi, "fail_density_psi": density_psi,
              "class_shares": {c: {"batch": b, "training": t} for c, b, t in
                               zip(classes, shares, reference["class_shares"])},
              "fail_density_mean": float(np.mean(densities)) if densities else 0.0}
    return drift_record(
        "psi", value, PSI_ALERT,
        f"predicted class mix vs training: PSI {class_psi:.2f}; fail-die density vs training: "
        f"PSI {density_psi:.2f} (alert at {PSI_ALERT:g})", detail)


def write_map_reference(release: Path, maps: Sequence[np.ndarray], labels: Sequence[str],
                        classes: Sequence[str]) -> Path:
    """Write the training maps' drift reference into ``release`` (not yet in its manifest)."""
    return write_reference(release, training_reference(maps, labels, classes))


def _add(data: Path, release: Path, manifest: dict) -> tuple[dict[str, str], str]:
    from pipelines.core.backfill import check_training_file
    from pipelines.wafermap.ingest import find_data, load_training_data
    from pipelines.wafermap.schema import CLASSES

    file = find_data(data)
    check_training_file(file, manifest)
    train, _, _ = load_training_data(file)
    path = write_map_reference(release, train.maps, train.labels, CLASSES)
    return ({REFERENCE_FILE: REFERENCE_ROLE},
            f"{path}: class shares and fail-die density of {len(train):,} training maps")


def main(argv: list[str] | None = None) -> int:
    from pipelines.core.backfill import backfill_main

    return backfill_main(argv, description=__doc__.split("\n\n")[0], module="wafermap",
                         data_help="a folder holding wm811k/wafer_maps_orig.npz (or the file)",
                         add=_add)


if __name__ == "__main__":
    raise SystemExit(main())
