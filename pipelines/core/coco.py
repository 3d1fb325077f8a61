"""COCO annotation documents: the layout FabLens exports and imports, checked; masks as RLE.

A document is ``{"info", "licenses", "images", "categories", "annotations"}`` as in the COCO
data format (https://cocodataset.org/#format-data). FabLens writes two kinds of annotation,
named by ``attributes.scope``:

- ``"image"``: the item's class (a wafer map's pattern, a photo's good or defective), with the
  whole image as its ``bbox`` and an empty ``segmentation``;
- ``"region"``: a defect on a photo: ``bbox`` ``[x, y, width, height]`` in pixels and its
  ``segmentation``, a polygon (a box's four corners) or, for a brush mask, an uncompressed RLE
  (``{"counts", "size"}``, column by column, starting with a run of zeros; ``iscrowd`` 1 as
  COCO marks RLE masks).

Each image carries what FabLens knows of it under ``fablens`` (its content hash, where it came
from, and the map's die codes or the photo itself), so a document can be imported elsewhere.
"""
from __future__ import annotations

import numpy as np

from pipelines.core.problems import Problem, SchemaError

SCOPES = ("image", "region")
MAX_PROBLEMS = 50


def rle_encode(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE of a 2-D mask: run lengths, column by column, zeros first."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError("a mask is a 2-D array")
    flat = mask.ravel(order="F").astype(np.int8)
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    if flat.size and flat[0]:
        runs = [0] + runs
    return {"counts": [int(r) for r in runs], "size": [int(mask.shape[0]), int(mask.shape[1])]}


def rle_decode(rle: dict) -> np.ndarray:
    """The (height, width) bool mask of an uncompressed RLE; ValueError when it does not fit."""
    if not isinstance(rle, dict) or not isinstance(rle.get("counts"), list) \
            or not isinstance(rle.get("size"), list) or len(rle["size"]) != 2:
        raise ValueError("an RLE is {\"counts\": [run lengths], \"size\": [height, width]} "
                         "(compressed RLE strings are not read)")
    h, w = rle["size"]
    counts = rle["counts"]
    if type(h) is not int or type(w) is not int or h < 1 or w < 1 or h * w > 16_777_216:
        raise ValueError("the RLE's size must be two whole numbers, at most 16.7 million cells")
    if not all(type(c) is int and c >= 0 for c in counts) or sum(counts) != h * w:
        raise ValueError(f"the RLE's counts must be whole numbers adding up to {h} x {w} = "
                         f"{h * w}")
    values = np.arange(len(counts)) % 2 == 1
    flat = np.repeat(values, counts)
    return flat.reshape((h, w), order="F")


def mask_bbox(mask: np.ndarray) -> list[int] | None:
    """``[x, y, width, height]`` around a mask's set cells, or None for an empty mask."""
    rows = np.flatnonzero(np.asarray(mask).any(axis=1))
    cols = np.flatnonzero(np.asarray(mask).any(axis=0))
    if not rows.size:
        return None
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


def box_polygon(bbox) -> list[list[float]]:
    """The COCO polygon (one ring of x, y pairs) of a box ``[x, y, width, height]``."""
    x, y, w, h = (float(v) for v in bbox)
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def _number(value) -> bool:
    return type(value) in (int, float) and np.isfinite(value)


def check_document(doc, file: str | None = None) -> dict:
    """``doc`` itself when it is a COCO document FabLens can read, else a :class:`SchemaError`
    listing each problem by its JSON path (``annotations[3].bbox``)."""
    problems: list[Problem] = []

    def bad(message: str, path: str) -> None:
        problems.append(Problem(message, file=file, path=path))

    if not isinstance(doc, dict):
        raise SchemaError([Problem("a COCO document is a JSON object with images, categories "
                                   "and annotations", file=file)])
    for key in ("images", "categories", "annotations"):
        if not isinstance(doc.get(key), list):
            bad(f"'{key}' must be a list", key)
    if problems:
        raise SchemaError(problems)
    images, categories = {}, {}
    for k, image in enumerate(doc["images"]):
        path = f"images[{k}]"
        if not isinstance(image, dict):
            bad("an image must be an object", path)
            continue
        if type(image.get("id")) is not int:
            bad("'id' must be a whole number", f"{path}.id")
        elif image["id"] in images:
            bad(f"id {image['id']} is used by another image", f"{path}.id")
        else:
            images[image["id"]] = image
        for key in ("width", "height"):
            if type(image.get(key)) is not int or image[key] < 1:
                bad(f"'{key}' must be a positive whole number", f"{path}.{key}")
        if not isinstance(image.get("file_name"), str):
            bad("'file_name' must be text", f"{path}.file_name")
    for k, category in enumerate(doc["categories"]):
        path = f"categories[{k}]"
        if not isinstance(category, dict) or type(category.get("id")) is not int \
                or not isinstance(category.get("name"), str):
            bad("a category is {\"id\": a whole number, \"name\": text}", path)
        elif category["id"] in categories:
            bad(f"id {category['id']} is used by another category", f"{path}.id")
        else:
            categories[category["id"]] = category
    for k, annotation in enumerate(doc["annotations"]):
        path = f"annotations[{k}]"
        if len(problems) >= MAX_PROBLEMS:
            break
        if not isinstance(annotation, dict):
            bad("an annotation must be an object", path)
            continue
        if type(annotation.get("id")) is not int:
            bad("'id' must be a whole number", f"{path}.id")
        if annotation.get("image_id") not in images:
            bad(f"image_id {str(annotation.get('image_id'))[:20]} names no image",
                f"{path}.image_id")
        if annotation.get("category_id") not in categories:
            bad(f"category_id {str(annotation.get('category_id'))[:20]} names no category",
                f"{path}.category_id")
        bbox = annotation.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_number(v) for v in bbox)
                and bbox[2] >= 0 and bbox[3] >= 0):
            bad("'bbox' must be [x, y, width, height], four numbers", f"{path}.bbox")
        segmentation = annotation.get("segmentation", [])
        if isinstance(segmentation, dict):
            try:
                rle_decode(segmentation)
            except ValueError as exc:
                bad(str(exc), f"{path}.segmentation")
        elif not (isinstance(segmentation, list) and all(
                isinstance(ring, list) and len(ring) >= 6 and len(ring) % 2 == 0
                and all(_number(v) for v in ring) for ring in segmentation)):
            bad("'segmentation' must be polygons (lists of x, y pairs) or an RLE",
                f"{path}.segmentation")
        if annotation.get("iscrowd", 0) not in (0, 1):
            bad("'iscrowd' must be 0 or 1", f"{path}.iscrowd")
        attributes = annotation.get("attributes", {})
        if not isinstance(attributes, dict) or attributes.get("scope", "image") not in SCOPES:
            bad(f"'attributes.scope' must be one of {', '.join(SCOPES)}", f"{path}.attributes")
    if problems:
        raise SchemaError(problems[:MAX_PROBLEMS])
    return doc
