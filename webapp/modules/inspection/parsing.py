"""Reading an inspection predict request: uploaded images (or a zip of them) and the options.

Files (form field ``file``, repeated for several): PNG or JPEG, or zip archives of them, read
in memory by ``webapp.uploads`` (zip paths and sizes, image signatures and pixel counts
checked before anything is decoded; decompression bombs refused with 413) and decoded by
``pipelines.inspection.ingest`` (converted to RGB and resized to the model size, which each
result then says). The image count is checked against ``INSPECTION_MAX_IMAGES`` before any
image is decoded. Options, from the form or the query string: ``model``, ``threshold``,
``heatmap`` (true: each result carries its heatmap as a base64 PNG), ``include_images`` (the
page: each image back as the model sees it).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import Request, current_app

from pipelines.core.problems import SchemaError
from pipelines.inspection.ingest import LoadedImage, decode_image
from webapp.errors import InputError
from webapp.params import parse_flag, parse_model, parse_threshold
from webapp.uploads import (MAX_IMAGE_PIXELS, MAX_PROBLEMS, UploadedBytes, check_image,
                            is_zip_archive, read_uploads, schema_error, uploaded_files,
                            zip_members)

ACCEPTED = "PNG or JPEG images, or a zip of them"
EXTENSIONS = (".png", ".jpg", ".jpeg", ".zip")


@dataclass
class InspectionRequest:
    """A parsed predict request: the images at model size, their names, the options."""

    source: str
    images: list[LoadedImage]
    sha256: str
    model: str | None = None
    threshold: float | None = None
    heatmap: bool = False
    include_images: bool = False
    kinds: dict[str, int] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [im.name for im in self.images]


def max_images() -> int:
    return int(current_app.config["INSPECTION_MAX_IMAGES"])


def _option(request: Request, name: str):
    return request.form.get(name, request.args.get(name))


def _decode(item: UploadedBytes, name: str) -> LoadedImage:
    """One image: signature and size checked from its header first, then decoded."""
    check_image(item)
    return decode_image(item.data, name, max_pixels=MAX_IMAGE_PIXELS)


def inspection_request(request: Request) -> InspectionRequest:
    """Read the uploaded images and the options; 4xx with a short message otherwise."""
    limit = max_images()
    files = uploaded_files(request, what=f"part photos ({ACCEPTED})")
    items, sha256 = read_uploads(files, max_files=limit)
    max_total = int(current_app.config["MAX_CONTENT_LENGTH"])
    members: list[tuple[UploadedBytes, str]] = []
    kinds: dict[str, int] = {}
    for item in items:
        if is_zip_archive(item):
            inner = zip_members(item, max_members=limit, max_total=max_total)
            kinds["zip"] = kinds.get("zip", 0) + 1
            members += [(m, m.name[len(item.name) + 1:]) for m in inner]
        else:
            members.append((item, item.name))
        if len(members) > limit:
            raise InputError(f"the upload holds more than {limit} images; at most {limit} are "
                             f"accepted in one call; split it into several requests", code=413)
    images, problems = [], []
    for member, name in members:
        if is_zip_archive(member):
            raise InputError(f"{member.name}: a zip inside a zip is not read; put the images "
                             f"in one archive")
        try:
            images.append(_decode(member, name))
        except SchemaError as exc:
            problems += exc.problems
            if len(problems) >= MAX_PROBLEMS:
                break
            continue
        kind = "jpeg" if member.data.startswith(b"\xff\xd8") else "png"
        kinds[kind] = kinds.get(kind, 0) + 1
    if problems:
        raise schema_error(SchemaError(problems[:MAX_PROBLEMS]))
    if not images:
        raise InputError("the upload holds no images")
    source = items[0].name if len(items) == 1 else f"{items[0].name} and {len(items) - 1} more"
    given = (request.form.get("source_name") or "").strip()
    return InspectionRequest(
        given[:200] or source, images, sha256,
        model=parse_model(_option(request, "model")),
        threshold=parse_threshold(_option(request, "threshold")),
        heatmap=bool(parse_flag(_option(request, "heatmap"), "heatmap")),
        include_images=bool(parse_flag(_option(request, "include_images"), "include_images")),
        kinds=kinds)
