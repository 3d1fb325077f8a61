"""Reading an inspection predict request: uploaded images (or a zip of them) and the options.

Files (form field ``file``, repeated for several): PNG or JPEG, or zip archives of them, read
in memory by ``webapp.uploads`` (zip paths and sizes, image signatures and pixel counts
checked before anything is decoded; decompression bombs refused with 413) and decoded by
``pipelines.inspection.ingest`` (converted to RGB and resized to the model size, which each
result then says). A file that is refused is left out with its reason (``rejected``) and the
others are scored; only an upload where no image can be read is refused, with every reason.
The image count is checked against ``INSPECTION_MAX_IMAGES`` before any image is decoded (413
for the whole request beyond). Options, from the form or the query string: ``model``, ``threshold``,
``heatmap`` (true: each result carries its heatmap as a base64 PNG), ``include_images`` (the
page: each image back as the model sees it).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import Request, current_app
from pydantic import BaseModel, Field

from pipelines.inspection.ingest import LoadedImage, decode_image
from webapp.errors import InputError
from webapp.params import parse_flag, parse_model, parse_threshold
from webapp.uploads import (MAX_IMAGE_PIXELS, Rejections, RequestLimitError, UploadedBytes,
                            check_image, is_zip_archive, read_uploads, uploaded_files,
                            zip_members)

ACCEPTED = "PNG or JPEG images, or a zip of them"
EXTENSIONS = (".png", ".jpg", ".jpeg", ".zip")


class InspectionPredictForm(BaseModel):
    """The multipart form of ``POST /api/v1/inspection/predict`` (read by
    :func:`inspection_request`); ``file`` may be repeated."""

    file: bytes = Field(description=f"part photos: {ACCEPTED}")
    model: str | None = Field(None, description="a model name; the module's default if absent")
    threshold: str | None = Field(None, description="a number: flag photos scoring at or above")
    heatmap: str | None = Field(None, description="true: each photo's anomaly map as a PNG")
    include_images: str | None = Field(None, description="true: each photo back, for the page")
    source_name: str | None = Field(None, description="the original file name, for History")


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
    rejected: Rejections = field(default_factory=Rejections)  # files left out, with why

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


def _member_image(member: UploadedBytes, name: str) -> LoadedImage:
    if is_zip_archive(member):
        raise InputError(f"{member.name}: a zip inside a zip is not read; put the images in one "
                         f"archive")
    return _decode(member, name)


def inspection_request(request: Request) -> InspectionRequest:
    """Read the uploaded images and the options. A file that is refused is left out with its
    reason (``rejected``); 4xx with a short message when no image can be read, or when the
    upload is over the image limit as a whole."""
    limit = max_images()
    files = uploaded_files(request, what=f"part photos ({ACCEPTED})")
    items, sha256 = read_uploads(files, max_files=limit)
    max_total = int(current_app.config["MAX_CONTENT_LENGTH"])
    members: list[tuple[UploadedBytes, str]] = []
    kinds: dict[str, int] = {}
    rejections = Rejections()
    for item in items:
        if is_zip_archive(item):
            inner = rejections.attempt(item.name, zip_members, item, max_members=limit,
                                       max_total=max_total)
            if inner is None:
                continue
            kinds["zip"] = kinds.get("zip", 0) + 1
            members += [(m, m.name[len(item.name) + 1:]) for m in inner]
        else:
            members.append((item, item.name))
        if len(members) > limit:
            raise RequestLimitError(f"the upload holds more than {limit} images; at most {limit} "
                                    f"are accepted in one call; split it into several requests")
    images = []
    for member, name in members:
        image = rejections.attempt(member.name, _member_image, member, name)
        if image is None:
            continue
        images.append(image)
        kind = "jpeg" if member.data.startswith(b"\xff\xd8") else "png"
        kinds[kind] = kinds.get(kind, 0) + 1
    rejections.raise_if_all_rejected(len(images), "the upload holds no images")
    source = items[0].name if len(items) == 1 else f"{items[0].name} and {len(items) - 1} more"
    given = (request.form.get("source_name") or "").strip()
    return InspectionRequest(
        given[:200] or source, images, sha256,
        model=parse_model(_option(request, "model")),
        threshold=parse_threshold(_option(request, "threshold")),
        heatmap=bool(parse_flag(_option(request, "heatmap"), "heatmap")),
        include_images=bool(parse_flag(_option(request, "include_images"), "include_images")),
        kinds=kinds, rejected=rejections)
