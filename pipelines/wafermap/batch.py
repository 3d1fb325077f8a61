"""Wafer maps in batch (``python -m pipelines.score wafermap``): ``dask.bag`` partitions.

Inputs: every file the predict API accepts (npz in either WM-811K layout, CSV grids, JSON,
PNG/JPEG). A file of several maps (npz, CSV, JSON) is one partition (split a very large npz
with ``python -m pipelines.wafermap.split`` to spread it over workers); single-map images
are grouped ``partition_size`` files (default 500) to a partition. Each partition's files are
read by the same readers as uploads (``read_maps``, no map limit) and classified by
:meth:`WafermapPredictor.predict`; the results table is the predict API's (``name`` is the
file under the input folder, ``#k`` the map's number in it; the file's labels beside each
map when it has them). ``threshold`` is the review level: a map whose confidence is under it
needs review, as in the API.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipelines.core.batch import relative_name
from pipelines.core.thresholds import flagged
from pipelines.wafermap.ingest import EXTENSIONS as MAP_EXTENSIONS
from pipelines.wafermap.ingest import IMAGE_EXTENSIONS, read_maps
from pipelines.wafermap.results import results_frame

PREDICTOR = "pipelines.wafermap.predict:WafermapPredictor"
NOUN = "maps"
EXTENSIONS = MAP_EXTENSIONS
IMAGES_PER_PARTITION = 500


def partitions(files: list[Path], root: Path, *, partition_size: int | None = None,
               partitions: int | None = None):
    """A ``dask.bag`` of ``(path, name)`` per file: a file of maps alone in its partition,
    images ``partition_size`` to one."""
    import dask.bag as db

    items = [(str(f), relative_name(f, root)) for f in files]
    single = [i for i in items if i[0].lower().endswith(IMAGE_EXTENSIONS)]
    several = [i for i in items if not i[0].lower().endswith(IMAGE_EXTENSIONS)]
    bags = []
    if several:
        bags.append(db.from_sequence(several, npartitions=len(several)))
    if single:
        size = partition_size or IMAGES_PER_PARTITION
        bags.append(db.from_sequence(single, partition_size=size))
    return bags[0] if len(bags) == 1 else db.concat(bags)


def score_partition(predictor, part, *, model: str | None = None,
                    threshold: float | None = None) -> pd.DataFrame:
    """The predict API's results table of the maps of one partition's files."""
    read = [read_maps(path, name) for path, name in part]
    maps = [m for r in read for m in r.maps]
    if not maps:
        return pd.DataFrame()
    names = [n for r in read for n in r.names]
    labels = None
    if any(r.labels is not None for r in read):  # a label per map, None where a file has none
        labels = [label for r in read for label in (
            [str(v) for v in r.labels] if r.labels is not None else [None] * len(r.maps))]
    loaded = predictor.get(model)
    level = predictor.review_level if threshold is None else float(threshold)
    records = predictor.predict(maps)
    for record in records:  # the request's level, as the API decides it
        record["needs_review"] = bool(flagged(record["confidence"], level, below=True))
    return results_frame(records, names, predictor.classes, level, loaded.version, labels)
