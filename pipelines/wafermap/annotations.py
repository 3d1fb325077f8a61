"""Wafer maps labelled by people, read from a FabLens COCO export, for training.

``python -m pipelines.train wafermap --data <dir> --annotations <coco json>`` adds these maps to
the train split (``pipelines.wafermap.train``). Each image of the document carries its map as
packed die codes (``fablens.die_codes``, :mod:`pipelines.wafermap.codes`) and one image-level
annotation naming its class (``attributes.scope`` ``"image"``; :mod:`pipelines.core.coco`).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from pipelines.core.coco import check_document
from pipelines.core.problems import Problem, SchemaError
from pipelines.wafermap.codes import unpack_grid
from pipelines.wafermap.ingest import WaferMaps
from pipelines.wafermap.schema import CLASSES


def map_sha256(grid: np.ndarray) -> str:
    """The content hash of a map: its shape and its die codes (the review queue's key too)."""
    grid = np.ascontiguousarray(np.asarray(grid, dtype=np.uint8))
    return hashlib.sha256(f"{grid.shape[0]}x{grid.shape[1]}:".encode() + grid.tobytes()
                          ).hexdigest()


def read_coco_maps(source, file: str | None = None) -> WaferMaps:
    """The labelled maps of a COCO document (a path, bytes, or the parsed object): one per
    image that has an image-level annotation; a :class:`SchemaError` listing what is wrong."""
    if isinstance(source, (str, Path)):
        file = file or Path(source).name
        source = Path(source).read_bytes()
    if isinstance(source, (bytes, bytearray)):
        try:
            source = json.loads(source)
        except ValueError as exc:
            raise SchemaError([Problem(f"not a JSON document: {exc}", file=file)]) from None
    doc = check_document(source, file)
    names = {c["id"]: c["name"] for c in doc["categories"]}
    problems: list[Problem] = []
    labels: dict[int, str] = {}
    for k, annotation in enumerate(doc["annotations"]):
        if (annotation.get("attributes") or {}).get("scope", "image") != "image":
            continue
        name = names[annotation["category_id"]]
        if name not in CLASSES:
            problems.append(Problem(f"category '{name[:40]}' is not a wafer-map class "
                                    f"({', '.join(CLASSES)})", file=file,
                                    path=f"annotations[{k}].category_id"))
            continue
        image_id = annotation["image_id"]
        if labels.get(image_id, name) != name:
            problems.append(Problem(f"image {image_id} has two classes, {labels[image_id]} and "
                                    f"{name}", file=file, path=f"annotations[{k}]"))
        labels[image_id] = name
    maps, map_names, map_labels = [], [], []
    for k, image in enumerate(doc["images"]):
        if image["id"] not in labels:
            continue
        packed = (image.get("fablens") or {}).get("die_codes")
        try:
            grid = unpack_grid(packed)
        except ValueError as exc:
            problems.append(Problem(f"fablens.die_codes: {exc}", file=file, path=f"images[{k}]"))
            continue
        if grid.shape != (image["height"], image["width"]):
            problems.append(Problem(f"the map is {grid.shape[0]} x {grid.shape[1]} dies, the "
                                    f"image says {image['height']} x {image['width']}",
                                    file=file, path=f"images[{k}]"))
            continue
        maps.append(grid)
        map_names.append(str(image["file_name"]))
        map_labels.append(labels[image["id"]])
    if problems:
        raise SchemaError(problems[:50])
    return WaferMaps(maps, map_names, np.array(map_labels, dtype="<U9"),
                     layout="FabLens COCO annotations")
