"""Which machines of an upload are engines the release learned from (the in-sample warning).

The release keeps the canonical hash (:mod:`pipelines.core.rowhash`) of every row of its
training file, over the raw readings of the sensors the models use, in the release's order
(a file may leave the others out; machine ids and cycles are left out too, so a renumbered
copy still matches). Every engine of the file counts:
the fitted ones and the validation ones whose healthy windows set the thresholds, since both
make that engine's scores look better than new data would.

``python -m pipelines.timeseries.fingerprint [--data DIR] [--artifacts DIR]`` writes the file
into an existing release (checked against the training file's sha256 in the manifest);
training writes it too.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipelines.core.rowhash import row_hashes, write_row_hashes
from pipelines.timeseries.ingest import Series

TRAINING_ROWS_FILE = "training_rows.npy"
TRAINING_ROWS_ROLE = ("canonical hashes of every row of the training file (all its engines), "
                      "for the in-sample warning")
IN_SAMPLE_SHARE = 0.5  # a machine is in-sample when at least this share of its rows match


def _readings(series: Series, sensors: list[str]) -> np.ndarray:
    index = {s: j for j, s in enumerate(series.sensors)}
    return series.values[:, [index[s] for s in sensors]]


def training_row_hashes(series: Series, sensors: list[str]) -> np.ndarray:
    """One canonical hash per row of ``series``, over ``sensors`` in that order."""
    return row_hashes(_readings(series, sensors))


def in_sample_machines(series: Series, sensors: list[str], hashes: np.ndarray,
                       share: float = IN_SAMPLE_SHARE) -> list[str]:
    """The machines of ``series`` (first-seen order) at least ``share`` of whose rows are
    training rows."""
    found = np.isin(training_row_hashes(series, sensors), hashes)
    return [machine for machine, rows in series.groups() if found[rows].mean() >= share]


def write_fingerprint(release: Path, series: Series, sensors: list[str]) -> Path:
    """Write the training rows' hashes into ``release`` (not yet listed in its manifest)."""
    path = Path(release) / TRAINING_ROWS_FILE
    write_row_hashes(path, training_row_hashes(series, sensors))
    return path


def release_series(data: Path, release: Path, manifest: dict) -> tuple[Series, list[str]]:
    """The release's training history, checked against its manifest, and its model sensors."""
    from pipelines.core.backfill import check_training_file
    from pipelines.timeseries.ingest import find_data, read_cmapss
    from pipelines.timeseries.transform import SCALER_FILE

    file = find_data(data)
    check_training_file(file, manifest)
    return read_cmapss(file), json.loads((release / SCALER_FILE).read_text())["sensors"]


def _add(data: Path, release: Path, manifest: dict) -> tuple[dict[str, str], str]:
    series, sensors = release_series(data, release, manifest)
    path = write_fingerprint(release, series, sensors)
    return ({TRAINING_ROWS_FILE: TRAINING_ROWS_ROLE},
            f"{path}: {len(series):,} rows of {len(series.machine_ids())} engines")


def main(argv: list[str] | None = None) -> int:
    from pipelines.core.backfill import backfill_main
    from pipelines.timeseries import MODULE

    return backfill_main(argv, description=__doc__.split("\n\n")[0], module=MODULE.name,
                         data_help="a folder holding cmapss/train_FD001.txt.gz (or the file)",
                         add=_add)


if __name__ == "__main__":
    raise SystemExit(main())
