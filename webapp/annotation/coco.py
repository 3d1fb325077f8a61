"""The labels people gave, out and back in: COCO JSON (and a CSV to read them in a spreadsheet).

Export (:func:`export_document`): every item of a module that holds a label (annotated or
settled; conflicts wait for their settlement and are counted under ``info.left_out``), one COCO
image each (``fablens``: its content hash, name, run, what the model said, and the map's die codes,
or the photo itself when asked), one image-level annotation with the item's label and, under
``attributes.history``, every label given to it (who, when, the regions, settlements); and
for a defective photo one region annotation per box (bbox and its polygon) and one for the brush
mask (bbox and an RLE). See :mod:`pipelines.core.coco` for the layout.

Import (:func:`import_document`) reads that document back: each image is matched to the stored
item with its content (or, for a map, or a photo exported with images, stored anew), each label
of its history recorded with its own annotator and time unless it is already there, so importing
an export gives the same annotations, and importing it twice adds nothing. A document made
elsewhere (no history) gives one label per image from its annotations, recorded as the importer.
Everything is checked before anything is written.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
from datetime import datetime

import numpy as np
import pandas as pd

from pipelines.core.coco import box_polygon, check_document, mask_bbox, rle_decode, rle_encode
from pipelines.core.problems import Problem, SchemaError
from webapp.annotation import store
from webapp.annotation.kinds import KINDS, MAX_BOXES, Kind
from webapp.db import aware, utcnow

COCO_VERSION = "1.0"


# -- labels, checked once for the API, the page and imports ---------------------------------------
def mask_png(mask: np.ndarray) -> bytes:
    """A bool mask as the PNG stored (8-bit grey, 255 = defect)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255, mode="L").save(buffer, "PNG")
    return buffer.getvalue()


def mask_of(png: bytes) -> np.ndarray:
    """The bool mask of a stored (or sent) PNG: any non-zero pixel (alpha if it has one)."""
    pixels = photo_pixels_any(png)
    return pixels > 0


def photo_pixels_any(png: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        if image.mode in ("RGBA", "LA", "PA"):
            return np.asarray(image.getchannel("A"))
        return np.asarray(image.convert("L"))


def check_label(kind: Kind, item: dict, label, boxes=None, mask_base64=None,
                path: str = "") -> tuple[str, dict | None, bytes | None]:
    """``(label, regions, mask PNG)`` checked against ``item``, or a :class:`SchemaError`
    naming each problem: the label must be one of the module's; only a photo's defective label
    outlines regions, and it must (one box or more, or a brush mask); boxes
    ``[x, y, width, height]`` lie inside the photo; a mask is a PNG of the photo's size."""
    problems = []
    prefix = f"{path}." if path else ""

    def bad(message: str, where: str) -> None:
        problems.append(Problem(message, path=prefix + where))

    if label not in kind.labels:
        bad(f"'{str(label)[:40]}' is not a label here; use one of {', '.join(kind.labels)}",
            "label")
    boxes = boxes or []
    if not isinstance(boxes, list) or len(boxes) > MAX_BOXES:
        bad(f"boxes must be a list of at most {MAX_BOXES} boxes [x, y, width, height]", "boxes")
        boxes = []
    regions, mask = None, None
    if (boxes or mask_base64) and not (kind.regions and label == kind.labels[-1]):
        bad(f"only a {kind.labels[-1]} {kind.noun} outlines regions" if kind.regions
            else f"a {kind.noun}'s label has no regions", "boxes" if boxes else "mask")
    width, height = item["cols"], item["rows"]
    for k, box in enumerate(boxes):
        if not (isinstance(box, list) and len(box) == 4
                and all(type(v) in (int, float) and np.isfinite(v) for v in box)):
            bad("a box is [x, y, width, height], four numbers", f"boxes[{k}]")
            continue
        x, y, w, h = box
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width + 1e-6 or y + h > height + 1e-6:
            bad(f"the box {[round(v, 1) for v in box]} is not inside the {width} x {height} "
                f"{kind.noun} (or has no area)", f"boxes[{k}]")
    if boxes and not problems:
        regions = {"boxes": [[round(float(v), 2) for v in box] for box in boxes]}
    if mask_base64 is not None and not problems:
        try:
            data = base64.b64decode(str(mask_base64).split(",", 1)[-1], validate=True)
            cells = mask_of(data)
        except (binascii.Error, ValueError, OSError):
            bad("the mask is not a base64 PNG", "mask")
        else:
            if cells.shape != (height, width):
                bad(f"the mask is {cells.shape[1]} x {cells.shape[0]} pixels; the {kind.noun} "
                    f"is {width} x {height}", "mask")
            elif cells.any():
                mask = mask_png(cells)
    if kind.regions and label == kind.labels[-1] and not problems and not regions \
            and mask is None:
        bad("mark the defect: draw one box or more, or paint it with the brush", "boxes")
    if problems:
        raise SchemaError(problems)
    return label, regions, mask


# -- export ---------------------------------------------------------------------------------------
def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


def _history_entry(row: dict) -> dict:
    entry = {"user": row["user"], "label": row["label"], "created": _iso(row["created"]),
             "settles": bool(row["settles"]), "source": row["source"]}
    regions = json.loads(row["regions"]) if row["regions"] else {}
    if regions.get("boxes"):
        entry["boxes"] = regions["boxes"]
    if row["mask"]:
        entry["mask"] = rle_encode(mask_of(row["mask"]))
    return entry


def export_document(module: str, *, images: bool = False) -> dict:
    """The COCO document of ``module``'s labelled items (see the module doc)."""
    kind = KINDS[module]
    categories = [{"id": k + 1, "name": name, "supercategory": module}
                  for k, name in enumerate(kind.labels)]
    category = {c["name"]: c["id"] for c in categories}
    out_images, out_annotations, left_out = [], [], 0
    for item in store.labelled_items(module):
        state = item["state"]
        if state["state"] not in store.LABELLED:
            left_out += 1
            continue
        w, h = item["cols"], item["rows"]
        out_images.append({
            "id": item["id"], "file_name": f"{module}/{item['sha256'][:16]}.png", "width": w,
            "height": h, "date_captured": _iso(item["created"]),
            "fablens": {"sha256": item["sha256"], "name": item["name"], "run_id": item["run_id"],
                        "position": item["position"], "predicted": item["predicted"],
                        "score": item["score"], "model_version": item["model_version"],
                        "upload_label": item["upload_label"]} | kind.coco_extra(item, images)})
        decider = state["by"]
        out_annotations.append({
            "id": len(out_annotations) + 1, "image_id": item["id"],
            "category_id": category[state["label"]], "bbox": [0, 0, w, h], "area": w * h,
            "iscrowd": 0, "segmentation": [],
            "attributes": {"scope": "image", "state": state["state"],
                           "annotated_by": decider["user"],
                           "annotated_at": _iso(decider["created"]),
                           "history": [_history_entry(r) for r in item["history"]]}})
        regions = json.loads(decider["regions"]) if decider["regions"] else {}
        for box in regions.get("boxes", []):
            out_annotations.append({
                "id": len(out_annotations) + 1, "image_id": item["id"],
                "category_id": category[state["label"]], "bbox": box,
                "area": round(box[2] * box[3], 2), "iscrowd": 0,
                "segmentation": box_polygon(box),
                "attributes": {"scope": "region", "shape": "box"}})
        if decider["mask"]:
            cells = mask_of(decider["mask"])
            out_annotations.append({
                "id": len(out_annotations) + 1, "image_id": item["id"],
                "category_id": category[state["label"]], "bbox": mask_bbox(cells),
                "area": int(cells.sum()), "iscrowd": 1, "segmentation": rle_encode(cells),
                "attributes": {"scope": "region", "shape": "mask"}})
    return {"info": {"description": f"FabLens review labels: {module}", "version": COCO_VERSION,
                     "contributor": "FabLens", "date_created": _iso(utcnow()),
                     "module": module, "with_images": bool(images or module == "wafermap"),
                     "left_out": {"conflicts": left_out}},
            "licenses": [], "images": out_images, "categories": categories,
            "annotations": out_annotations}


def export_frame(module: str) -> pd.DataFrame:
    """One row per item that holds a label, conflicts too (the CSV export)."""
    rows = []
    for item in store.labelled_items(module):
        state = item["state"]
        decider = state["by"] or {}
        regions = json.loads(decider["regions"]) if decider.get("regions") else {}
        rows.append({
            "item": item["id"], "name": item["name"], "sha256": item["sha256"],
            "run_id": item["run_id"], "state": state["state"], "label": state["label"] or "",
            "annotated_by": decider.get("user", ""),
            "annotated_at": _iso(decider.get("created")) or "",
            "annotators": "; ".join(f"{u}: {lab}" for u, lab in sorted(state["users"].items())),
            "n_annotations": len(item["history"]), "predicted": item["predicted"] or "",
            "score": item["score"], "model_version": item["model_version"] or "",
            "boxes": json.dumps(regions.get("boxes", [])), "mask": bool(decider.get("mask")),
            "upload_label": item["upload_label"] or ""})
    columns = ["item", "name", "sha256", "run_id", "state", "label", "annotated_by",
               "annotated_at", "annotators", "n_annotations", "predicted", "score",
               "model_version", "boxes", "mask", "upload_label"]
    return pd.DataFrame(rows, columns=columns)


# -- import ---------------------------------------------------------------------------------------
def _when(text, path: str) -> datetime:
    try:
        when = datetime.fromisoformat(str(text))
    except ValueError:
        raise SchemaError([Problem(f"'{str(text)[:40]}' is not an ISO date and time",
                                   path=path)]) from None
    return aware(when)


def _planned_labels(kind: Kind, item: dict, image_annotations: list[tuple[int, dict]],
                    names: dict[int, str], path: str) -> list[dict]:
    """The labels to record for one image: its history, or one label from its annotations."""
    image_level = [(k, a) for k, a in image_annotations
                   if (a.get("attributes") or {}).get("scope", "image") == "image"]
    region_level = [(k, a) for k, a in image_annotations
                    if (a.get("attributes") or {}).get("scope") == "region"]
    history = next(((k, a["attributes"]["history"]) for k, a in image_level
                    if isinstance((a.get("attributes") or {}).get("history"), list)), None)
    planned = []
    if history is not None:
        k, entries = history
        for j, entry in enumerate(entries):
            where = f"annotations[{k}].attributes.history[{j}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("user"), str) \
                    or not entry["user"]:
                raise SchemaError([Problem("an entry is {\"user\", \"label\", \"created\", ...}",
                                           path=where)])
            mask = None
            if entry.get("mask") is not None:
                try:
                    mask = base64.b64encode(mask_png(rle_decode(entry["mask"]))).decode()
                except ValueError as exc:
                    raise SchemaError([Problem(str(exc), path=f"{where}.mask")]) from None
            label, regions, mask_bytes = check_label(kind, item, entry.get("label"),
                                                     entry.get("boxes"), mask, where)
            planned.append({"label": label, "regions": regions, "mask": mask_bytes,
                            "user": entry["user"][:128], "settles": bool(entry.get("settles")),
                            "created": _when(entry.get("created"), f"{where}.created")})
        return planned
    if not image_level and not region_level:
        return []
    labels = {names[a["category_id"]] for _, a in image_level}
    if not image_level and kind.regions:
        labels = {kind.labels[-1]}
    if len(labels) != 1:
        raise SchemaError([Problem(f"the image has {len(labels)} different labels "
                                   f"({', '.join(sorted(labels))}); give one", path=path)])
    label = labels.pop()
    boxes = [a["bbox"] for _, a in region_level if not isinstance(a.get("segmentation"), dict)]
    masks = [rle_decode(a["segmentation"]) for _, a in region_level
             if isinstance(a.get("segmentation"), dict)]
    mask = None
    if masks:
        union = np.zeros_like(masks[0])
        for m in masks:
            if m.shape != union.shape:
                raise SchemaError([Problem("the masks of one image differ in size", path=path)])
            union |= m
        mask = base64.b64encode(mask_png(union)).decode()
    label, regions, mask_bytes = check_label(kind, item, label, boxes, mask, path)
    return [{"label": label, "regions": regions, "mask": mask_bytes, "user": None,
             "settles": False, "created": None}]


def import_document(module: str, doc, *, actor: str) -> dict:
    """Record the labels of a COCO document for ``module`` (see the module doc); what was done:
    ``{"images", "items_added", "annotations_added", "already_there", "unlabelled"}``."""
    kind = KINDS[module]
    check_document(doc)
    names = {c["id"]: c["name"] for c in doc["categories"]}
    by_image: dict[int, list[tuple[int, dict]]] = {}
    for k, annotation in enumerate(doc["annotations"]):
        by_image.setdefault(annotation["image_id"], []).append((k, annotation))
    plan, problems = [], []
    for k, image in enumerate(doc["images"]):
        path = f"images[{k}]"
        extra = image.get("fablens") or {}
        sha = extra.get("sha256") if isinstance(extra, dict) else None
        try:
            found = store.find_item(module, sha) if isinstance(sha, str) else None
            new_item = None
            if found is None:
                new_item = kind.from_coco(image, k)
                found = store.find_item(module, new_item["sha256"])
                if found is not None:
                    new_item = None
            item = store.get_item(found) if found is not None else {**new_item, "id": None}
            if (item["rows"], item["cols"]) != (image["height"], image["width"]):
                raise SchemaError([Problem(
                    f"the image says {image['width']} x {image['height']}, the {kind.noun} is "
                    f"{item['cols']} x {item['rows']}", path=path)])
            labels = _planned_labels(kind, item, by_image.get(image["id"], []), names, path)
            plan.append((item, new_item, labels))
        except SchemaError as exc:
            problems += exc.problems
        if len(problems) >= 50:
            break
    if problems:
        raise SchemaError(problems[:50])
    done = {"images": len(plan), "items_added": 0, "annotations_added": 0, "already_there": 0,
            "unlabelled": 0}
    for item, new_item, labels in plan:
        if not labels:
            done["unlabelled"] += 1
            continue
        item_id = item["id"]
        if new_item is not None:
            item_id = store.insert_item(module, {k: v for k, v in new_item.items() if k != "id"})
            done["items_added"] += 1
        existing = {(r["user"], r["label"], r["settles"], r["created"])
                    for r in (store.get_item(item_id) or {}).get("history", [])}
        for entry in labels:
            key = (entry["user"] or actor, entry["label"], entry["settles"], entry["created"])
            if entry["created"] is not None and key in existing:
                done["already_there"] += 1
                continue
            store.add_annotation(item_id, entry["label"], user=entry["user"] or actor,
                                 regions=entry["regions"], mask=entry["mask"],
                                 settles=entry["settles"], source="import", recorded_by=actor,
                                 created=entry["created"])
            done["annotations_added"] += 1
    return done
