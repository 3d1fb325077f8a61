"""Drift of a batch of photos: simple image statistics against the good training photos.

Per photo, at model size (:func:`photo_statistics`): ``mean_intensity`` (the mean grey level,
0-255, grey = mean of R, G, B) and ``contrast`` (the standard deviation of the grey levels).
The release keeps, in ``drift_reference.json`` (:mod:`pipelines.core.drift`), the bins and
shares of both over every good training photo. A scored batch's drift (:func:`photo_drift`) is
the statistic ``psi``: the larger of the two population stability indexes of the batch's
statistics against the training photos', alerting at ``pipelines.core.drift.PSI_ALERT``; the
detail holds both and the batch's and training's means. A brightened, darkened or washed-out
batch moves them; a few new defects on otherwise normal parts hardly do.

``python -m pipelines.inspection.reference [--data DIR] [--artifacts DIR]`` adds the file to
an existing release (checked against the hash of the training photos in the manifest) without
retraining; training writes it too.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from pipelines.core.drift import (PSI_ALERT, REFERENCE_FILE, drift_record, psi_against,
                                  reference_bins, write_reference)

REFERENCE_ROLE = "bins of the good training photos' mean intensity and contrast, for drift"
STATISTICS = ("mean_intensity", "contrast")


def photo_statistics(images: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """``{"mean_intensity", "contrast"}``, one value per photo of ``images`` ((H, W, 3) arrays,
    0-255, or one (N, H, W, 3) array): the mean and the standard deviation of each photo's grey
    levels. One photo at a time is converted, so memory stays one photo's."""
    grey = [np.asarray(image, dtype=np.float32).mean(axis=-1) for image in images]
    return {"mean_intensity": np.array([float(g.mean()) for g in grey]),
            "contrast": np.array([float(g.std()) for g in grey])}


def training_reference(images: np.ndarray) -> dict:
    """``{"statistic": "psi", "photos", <statistic>: bins}`` of the good training photos
    (:func:`pipelines.core.drift.reference_bins` of each of ``STATISTICS``)."""
    stats = photo_statistics(images)
    return {"statistic": "psi", "photos": len(images)} | {
        name: reference_bins(stats[name]) | {"mean": float(stats[name].mean())}
        for name in STATISTICS}


def photo_drift(reference: dict, images: Sequence[np.ndarray] = (), *,
                statistics: dict[str, np.ndarray] | None = None) -> dict:
    """The drift record of a batch of photos (:func:`pipelines.core.drift.drift_record`): the
    larger PSI of its mean intensity and contrast against the training photos'.
    ``statistics`` (the photos' :func:`photo_statistics`) stand for the photos when a batch
    job has scored them a chunk at a time and kept only these.

    Detail: per statistic ``{"psi", "batch_mean", "training_mean"}``.
    """
    stats = photo_statistics(images) if statistics is None else statistics
    detail = {name: {"psi": psi_against(reference[name], stats[name]),
                     "batch_mean": float(stats[name].mean()),
                     "training_mean": reference[name]["mean"]} for name in STATISTICS}
    value = max(d["psi"] for d in detail.values())
    return drift_record(
        "psi", value, PSI_ALERT,
        f"photos vs the good training photos: mean intensity PSI "
        f"{detail['mean_intensity']['psi']:.2f}, contrast PSI {detail['contrast']['psi']:.2f} "
        f"(alert at {PSI_ALERT:g})", detail)


def write_photo_reference(release: Path, images: np.ndarray) -> Path:
    """Write the good training photos' drift reference into ``release`` (not yet listed in
    its manifest)."""
    return write_reference(release, training_reference(images))


def _add(data: Path, release: Path, manifest: dict) -> tuple[dict[str, str], str]:
    from pipelines.core.backfill import NotTrainingData
    from pipelines.inspection.ingest import data_reference, find_category, good_folder, read_folder
    from pipelines.inspection.schema import IMAGE_SIZE

    folder = good_folder(find_category(data))
    images, names = read_folder(folder, IMAGE_SIZE)
    recorded = manifest["training_data"]["sha256_of_file_hashes"]
    if data_reference(folder, names)["sha256_of_file_hashes"] != recorded:
        raise NotTrainingData(f"{folder} holds other photos than the release was trained on "
                              "(hash differs)")
    path = write_photo_reference(release, images)
    return ({REFERENCE_FILE: REFERENCE_ROLE},
            f"{path}: mean intensity and contrast of {len(images)} good training photos")


def main(argv: list[str] | None = None) -> int:
    from pipelines.core.backfill import backfill_main

    return backfill_main(argv, description=__doc__.split("\n\n")[0], module="inspection",
                         data_help="a folder holding the category (mvtec/bottle), "
                                   "or the category", add=_add)


if __name__ == "__main__":
    raise SystemExit(main())
