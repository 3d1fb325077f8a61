"""What the review queue knows of each module whose items people label: wafer maps (a class out
of nine) and inspection photos (good or defective, with the defect outlined).

Per module, one place says: the labels and their keys, how a run's items become queue items
(:func:`wafermap_items`, :func:`inspection_items`: the least sure first, ``REVIEW_PER_RUN`` of
them), what the page receives of an item, the live model's explanation of it, and what a COCO
image carries of it (:mod:`webapp.annotation.coco`).

Capturing a run's items sits in the prediction's request, so it does only what is cheap: the
uncertainty of every item (from what the model said), the content hash of the kept ones, and
for an item not stored yet its bytes: a map's packed die codes, a photo's pixels packed by
:func:`pack_photo` (about 3 ms a 256 x 256 photo; a PNG takes ten times that, and is made only
when a page or an export asks, :func:`png_of`). The numbers the queue's diversity step compares
(:attr:`Kind.features`) are computed when the queue first needs them, for the few items it
clusters, and stored then.

Uncertainty (one source, :mod:`pipelines.core.active`): a map's margin between its two most
probable classes (``1 - (p1 - p2)``); a photo's score against the threshold it was decided at,
``1 / (1 + |score - threshold| / spread)``, the spread being the standard deviation of the good
validation photos' scores (the manifest's normal-score quantiles).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import zlib
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterator, Sequence

import numpy as np

from pipelines.core.active import margin_uncertainty, spread_of, threshold_uncertainty
from pipelines.core.problems import Problem, SchemaError
from pipelines.inspection.features import photo_features
from pipelines.inspection.results import VERDICT_WORDS
from pipelines.wafermap.annotations import map_sha256
from pipelines.wafermap.codes import pack_grid, packed_bytes, unpack_bytes, unpack_grid
from pipelines.wafermap.features import map_features
from pipelines.wafermap.schema import CLASSES

MAX_BOXES = 50
MAX_PHOTO_PIXELS = 4096 * 4096


@dataclass(frozen=True)
class Kind:
    """One module's review: its labels (keys 1.. in this order), whether a label outlines
    regions, the words for an item, and how its stored items are shown and exported."""

    module: str
    noun: str
    nouns: str
    labels: tuple[str, ...]
    regions: bool  # photos: a defective label outlines the defect (boxes or a brush mask)
    uncertainty: str  # what the queue's order means, in words
    payload: Callable[[dict], dict]
    coco_extra: Callable[[dict, bool], dict]
    from_coco: Callable[[dict, int], dict]
    # (items, d) float32 numbers of stored items (``data``, ``rows``, ``cols``) for the
    # diversity step: items whose numbers are close are near-copies
    features: Callable[[Sequence[dict]], np.ndarray]


# -- wafer maps -----------------------------------------------------------------------------------
def wafermap_items(maps: Sequence[np.ndarray], names: Sequence[str], records: Sequence[dict],
                   classes: Sequence[str], level: float, labels: Sequence[str] | None,
                   release: str | None, model_version: str | None, limit: int
                   ) -> Iterator[dict]:
    """The ``limit`` least sure maps of a run as queue items (the most uncertain first)."""
    if not records or limit <= 0:
        return
    probabilities = np.array([[r["probabilities"][c] for c in classes] for r in records])
    uncertainty = margin_uncertainty(probabilities)
    for i in np.argsort(-uncertainty, kind="stable")[:limit]:
        grid = np.asarray(maps[i], dtype=np.uint8)
        record = records[i]
        yield {"sha256": map_sha256(grid), "position": int(i) + 1,
               "name": str(names[i])[:256], "rows": int(grid.shape[0]),
               "cols": int(grid.shape[1]), "data": partial(packed_bytes, grid),
               "release": release, "model_version": model_version,
               "predicted": record["class"], "score": float(record["confidence"]),
               "threshold": float(level),
               "details": partial(json.dumps, {"top3": record["top3"],
                                               "probabilities": record["probabilities"]}),
               "uncertainty": float(uncertainty[i]),
               "upload_label": (labels[i] or None) if labels else None}


def _map_payload(item: dict) -> dict:
    return {"map": {"rows": item["rows"], "cols": item["cols"],
                    "codes": base64.b64encode(item["data"]).decode()}}


def _map_grid(item: dict) -> np.ndarray:
    return unpack_bytes(item["data"], item["rows"], item["cols"])


def _map_features(items: Sequence[dict]) -> np.ndarray:
    return map_features([_map_grid(item) for item in items])


def _map_coco(item: dict, images: bool) -> dict:
    return {"die_codes": pack_grid(_map_grid(item))}


def _map_from_coco(image: dict, k: int) -> dict:
    """A queue item from a COCO image holding its die codes (an import into another server)."""
    try:
        grid = unpack_grid((image.get("fablens") or {}).get("die_codes"))
    except ValueError as exc:
        raise SchemaError([Problem(f"fablens.die_codes: {exc}", path=f"images[{k}]")]) from None
    return {"sha256": map_sha256(grid), "name": str(image.get("file_name"))[:256],
            "rows": int(grid.shape[0]), "cols": int(grid.shape[1]), "data": packed_bytes(grid),
            "uncertainty": 0.0}


# -- photos ---------------------------------------------------------------------------------------
def photo_sha256(pixels: np.ndarray) -> str:
    pixels = np.ascontiguousarray(np.asarray(pixels, dtype=np.uint8))
    return hashlib.sha256("x".join(map(str, pixels.shape)).encode() + b":" + pixels.tobytes()
                          ).hexdigest()


def pack_photo(pixels: np.ndarray) -> bytes:
    """A photo as stored: (H, W, 3) uint8 pixels, each one's difference from its left
    neighbour (a smooth photo becomes mostly small numbers), deflated with zlib's run-length
    strategy: a 256 x 256 MVTec photo is ~79 KB in ~3 ms (PNG: ~70 KB in ~29 ms)."""
    pixels = np.ascontiguousarray(np.asarray(pixels, dtype=np.uint8))
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError("a photo is (height, width, 3) pixels")
    delta = pixels.copy()
    delta[:, 1:] -= pixels[:, :-1]
    packer = zlib.compressobj(1, zlib.DEFLATED, 15, 8, zlib.Z_RLE)
    return packer.compress(delta.tobytes()) + packer.flush()


def unpack_photo(data: bytes, rows: int, cols: int) -> np.ndarray:
    """The (rows, cols, 3) uint8 pixels of :func:`pack_photo`'s bytes; ValueError when they do
    not fit (never inflates more than the photo's size)."""
    size = int(rows) * int(cols) * 3
    if not 0 < size <= MAX_PHOTO_PIXELS * 3:
        raise ValueError(f"a photo of {rows} x {cols} pixels")
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(data, size)
    except zlib.error:
        raise ValueError("the stored photo is not readable") from None
    if len(raw) != size or not inflater.eof or inflater.unconsumed_tail:
        raise ValueError(f"the stored photo is not {rows} x {cols} pixels")
    return np.cumsum(np.frombuffer(raw, np.uint8).reshape(rows, cols, 3), axis=1,
                     dtype=np.uint8)


def stored_photo(item: dict) -> np.ndarray:
    """A stored photo item's pixels."""
    return unpack_photo(item["data"], item["rows"], item["cols"])


def png_of(pixels: np.ndarray) -> bytes:
    """A photo as PNG (the page's image, an export with images)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buffer, format="PNG",
                                                             compress_level=6)
    return buffer.getvalue()


def photo_pixels(data: bytes, what: str = "the photo") -> np.ndarray:
    """(H, W, 3) uint8 from PNG/JPEG bytes, the size checked before decoding; ValueError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PHOTO_PIXELS:
                raise ValueError(f"{what} has {image.width} x {image.height} pixels; at most "
                                 f"{MAX_PHOTO_PIXELS:,}")
            return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise ValueError(f"{what} is not a readable PNG or JPEG image") from None


def folder_label(label: str | None) -> str | None:
    """The review label an upload's folder gives a photo (MVTec's layout): good, or defective."""
    from pipelines.inspection.ingest import GOOD

    if not label:
        return None
    return VERDICT_WORDS[1] if label == GOOD else VERDICT_WORDS[0]


def inspection_items(pixels: Sequence[np.ndarray], names: Sequence[str],
                     records: Sequence[dict], threshold: float, quantiles,
                     labels: Sequence[str | None] | None, release: str | None,
                     model_version: str | None, limit: int) -> Iterator[dict]:
    """The ``limit`` photos of a run whose score lies nearest the threshold, as queue items."""
    if not records or limit <= 0:
        return
    scores = np.array([r["anomaly_score"] for r in records], dtype=float)
    spread = spread_of(quantiles or [])
    uncertainty = threshold_uncertainty(scores, threshold, spread)
    for i in np.argsort(-uncertainty, kind="stable")[:limit]:
        photo = np.asarray(pixels[i], dtype=np.uint8)
        distance = abs(scores[i] - threshold) / spread
        yield {"sha256": photo_sha256(photo), "position": int(i) + 1,
               "name": str(names[i])[:256], "rows": int(photo.shape[0]),
               "cols": int(photo.shape[1]), "data": partial(pack_photo, photo),
               "release": release, "model_version": model_version,
               "predicted": VERDICT_WORDS[0] if records[i]["is_anomaly"] else VERDICT_WORDS[1],
               "score": float(scores[i]), "threshold": float(threshold),
               "details": json.dumps({"distance": round(float(distance), 4), "spread": spread,
                                      "side": "above" if scores[i] >= threshold else "below"}),
               "uncertainty": float(uncertainty[i]),
               "upload_label": folder_label(labels[i]) if labels else None}


def _photo_payload(item: dict) -> dict:
    from flask import url_for

    return {"image_url": url_for("annotation.item_image", item_id=item["id"]),
            "width": item["cols"], "height": item["rows"]}


def _photo_features(items: Sequence[dict]) -> np.ndarray:
    return photo_features([stored_photo(item) for item in items])


def _photo_coco(item: dict, images: bool) -> dict:
    return {"png_base64": base64.b64encode(png_of(stored_photo(item))).decode()} \
        if images else {}


def _photo_from_coco(image: dict, k: int) -> dict:
    """A queue item from a COCO image holding the photo (an export made with images)."""
    encoded = (image.get("fablens") or {}).get("png_base64")
    if not isinstance(encoded, str):
        raise SchemaError([Problem("this photo is not stored here and the document does not "
                                   "carry it (export with images to move photos)",
                                   path=f"images[{k}]")])
    try:
        pixels = photo_pixels(base64.b64decode(encoded, validate=True), f"images[{k}]")
    except (ValueError, binascii.Error) as exc:
        raise SchemaError([Problem(str(exc), path=f"images[{k}].fablens.png_base64")]) from None
    return {"sha256": photo_sha256(pixels), "name": str(image.get("file_name"))[:256],
            "rows": int(pixels.shape[0]), "cols": int(pixels.shape[1]),
            "data": pack_photo(pixels), "uncertainty": 0.0}


KINDS: dict[str, Kind] = {
    "wafermap": Kind(
        "wafermap", "map", "maps", tuple(CLASSES), False,
        "the margin between the model's two most probable classes: the smaller, the sooner",
        _map_payload, _map_coco, _map_from_coco, _map_features),
    "inspection": Kind(
        "inspection", "photo", "photos", (VERDICT_WORDS[1], VERDICT_WORDS[0]), True,
        "how near the score lies to the threshold, in units of the good photos' spread: the "
        "nearer, the sooner", _photo_payload, _photo_coco, _photo_from_coco, _photo_features),
}


def map_grid(item: dict) -> np.ndarray:
    """A stored wafer-map item's die codes."""
    return _map_grid(item)
