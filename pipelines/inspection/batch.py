"""Photos in batch (``python -m pipelines.score inspection``): ``dask.bag`` partitions.

Inputs: PNG and JPEG photos (a folder is searched recursively, so MVTec AD's ``test/<kind>/``
folders work as they are). ``partition_size`` photos (default 64) make a partition; each is
read by the upload reader (``decode_image``: resized to model size, conversions noted) and
scored by :meth:`InspectionPredictor.predict`; the results table is the predict API's, the
``file`` column the photo's path under the input folder.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipelines.core.batch import relative_name
from pipelines.inspection.ingest import decode_image
from pipelines.inspection.results import results_frame
from pipelines.inspection.schema import EXTENSIONS  # noqa: F401 (the photos accepted)

PREDICTOR = "pipelines.inspection.predict:InspectionPredictor"
NOUN = "photos"
PHOTOS_PER_PARTITION = 64
CHUNK = 16  # photos handed to the model at a time, as the web app does (bounded memory)


def partitions(files: list[Path], root: Path, *, partition_size: int | None = None,
               partitions: int | None = None):
    """A ``dask.bag`` of ``(path, name)`` per photo, ``partition_size`` to a partition."""
    import dask.bag as db

    return db.from_sequence([(str(f), relative_name(f, root)) for f in files],
                            partition_size=partition_size or PHOTOS_PER_PARTITION)


def score_partition(predictor, part, *, model: str | None = None,
                    threshold: float | None = None) -> pd.DataFrame:
    """The predict API's results table of one partition's photos."""
    if not part:
        return pd.DataFrame()
    chosen = predictor.get(model)
    level = chosen.threshold if threshold is None else float(threshold)
    records = []
    for start in range(0, len(part), CHUNK):
        images = [decode_image(Path(path).read_bytes(), name)
                  for path, name in part[start:start + CHUNK]]
        records += predictor.predict(images, model=chosen.name, threshold=level)
    return results_frame(records, level, chosen.version)
