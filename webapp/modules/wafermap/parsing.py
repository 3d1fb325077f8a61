"""Reading a wafer-map predict request: JSON grids or uploaded files, and the options.

JSON: ``{"maps": [grid, ...], "names": [...], "saliency": false, "review_level": 0.6}``,
each grid a list of rows of die codes 0 (off-wafer), 1 (pass), 2 (fail). Problems are
located by JSON path (``maps[3][17][5]``). Files (form field ``file``, repeated for several):
PNG/JPEG images, CSV grids, JSON arrays, npz files and zip archives of those, read in memory
by ``webapp.uploads`` (zip paths, sizes and image headers checked before anything is
decoded) and by ``pipelines.wafermap.ingest``. A file that is refused is left out with its
reason (``rejected``) and the others are scored; only an upload where no file can be read is
refused, with every reason. The map count is checked against ``WAFERMAP_MAX_MAPS`` before any
grid is built (413 for the whole request beyond).
"""
from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
from flask import Request, current_app
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from pipelines.core.problems import Problem, SchemaError
from pipelines.wafermap.ingest import (IMAGE_EXTENSIONS, check_grid, read_maps)
from pipelines.wafermap.schema import MAX_SIDE
from webapp.errors import MAX_PROBLEMS, InputError
from webapp.params import (json_depth_problem, parse_flag, parse_model, parse_threshold,
                           read_json, validate_envelope)
from webapp.uploads import (Rejections, RequestLimitError, UploadedBytes,
                            check_archive_size, check_image, is_zip_archive, read_uploads,
                            uploaded_files, zip_members)

ACCEPTED = ("PNG, JPEG, CSV grid, JSON, npz, or a zip of them")
_TOO_MANY_IN_FILE = re.compile(r"^(\d+) maps in one file; at most \d+ are accepted")


class WafermapPredictBody(BaseModel):
    """The JSON body of ``POST /api/v1/wafermap/predict``."""

    model_config = ConfigDict(extra="forbid", strict=True)
    maps: Annotated[list[Any], Field(min_length=1)]
    names: list[Annotated[StrictStr, Field(max_length=200)] | StrictInt] | None = None
    saliency: StrictBool = False
    review_level: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None
    model: Annotated[StrictStr, Field(max_length=100)] | None = None


class WafermapPredictForm(BaseModel):
    """The multipart form of ``POST /api/v1/wafermap/predict`` (read by
    :func:`wafermap_request`); ``file`` may be repeated."""

    file: bytes = Field(description=f"a wafer map file: {ACCEPTED}")
    model: str | None = Field(None, description="a model name; the module's default if absent")
    review_level: str | None = Field(None, description="a number from 0 to 1: maps whose "
                                     "confidence is below it need review")
    saliency: str | None = Field(None, description="true: each map's saliency (region) too")
    include_maps: str | None = Field(None, description="true: each map back, packed")
    source_name: str | None = Field(None, description="the original file name, for History")


@dataclass
class WafermapRequest:
    """A parsed predict request: the maps (2-D uint8 die codes), their names, the options."""

    source: str  # file name(s), or "json"
    maps: list[np.ndarray]
    names: list[str]
    sha256: str
    saliency: bool = False
    review_level: float | None = None
    model: str | None = None
    include_maps: bool = False  # the page asks for each map back, to draw it
    kinds: dict[str, int] = field(default_factory=dict)  # what was read: {"png": 3, "npz": 1}
    # each map's true class from a labelled file ("" where its file has none); None: no labels
    labels: list[str] | None = None
    rejected: Rejections = field(default_factory=Rejections)  # files left out, with why


def max_maps() -> int:
    return int(current_app.config["WAFERMAP_MAX_MAPS"])


def too_many(n: int, what: str = "the request") -> RequestLimitError:
    limit = max_maps()
    return RequestLimitError(f"{what} holds {n} maps; at most {limit} are accepted in one "
                             f"call; split it into several requests")


# -- JSON ---------------------------------------------------------------------------------------
def _show(cell) -> str:
    if isinstance(cell, bool):
        return str(cell).lower()
    if cell is None:
        return "null"
    if isinstance(cell, str):
        return f"'{cell[:20]}'"
    if isinstance(cell, (list, dict)):
        return "a list" if isinstance(cell, list) else "an object"
    return repr(cell)[:30]


def json_grid(item, path: str) -> np.ndarray | list[Problem]:
    """The map at JSON ``path`` as a uint8 grid, or its problems located by JSON path."""
    if not isinstance(item, list) or not item:
        return [Problem("a map must be a non-empty list of rows (lists of 0, 1, 2)", path=path)]
    if len(item) > MAX_SIDE:
        return [Problem(f"the map has {len(item)} rows; at most {MAX_SIDE} are accepted",
                        path=path)]
    if not isinstance(item[0], list):
        return [Problem(f"a row must be a list of die codes, got {_show(item[0])}",
                        path=f"{path}[0]")]
    width = len(item[0])
    if width == 0:
        return [Problem("the map is empty (its rows hold no cells)", path=path)]
    if width > MAX_SIDE:
        return [Problem(f"the map has {width} columns; at most {MAX_SIDE} are accepted",
                        path=path)]
    for r, row in enumerate(item):
        if not isinstance(row, list):
            return [Problem(f"a row must be a list of die codes, got {_show(row)}",
                            path=f"{path}[{r}]")]
        if len(row) != width:
            return [Problem(f"{len(row)} cells in this row, but row 0 has {width} (rows must "
                            f"all be the same length)", path=f"{path}[{r}]")]
    types = set(map(type, itertools.chain.from_iterable(item)))
    if types <= {int}:
        grid = np.array(item)
        if grid.dtype.kind in "iu":
            return [Problem(p.message, path=f"{path}[{p.row - 1}][{int(p.column) - 1}]"
                            if p.row else path) for p in check_grid(grid)] or \
                grid.astype(np.uint8)
    problems = []
    for r, row in enumerate(item):
        for c, cell in enumerate(row):
            if type(cell) is not int or cell not in (0, 1, 2):
                problems.append(Problem(f"{_show(cell)} is not a die code (0 off-wafer, 1 pass, "
                                        f"2 fail)", path=f"{path}[{r}][{c}]"))
                if len(problems) == 3:
                    return problems
    return problems


def _json_request(request: Request) -> WafermapRequest:
    body = read_json(request)
    if isinstance(body, list):
        body = {"maps": body}
    if not isinstance(body, dict):
        raise InputError("the JSON body must be an object with 'maps': a list of maps, each a "
                         "list of rows of die codes 0, 1, 2")
    if isinstance(body.get("maps"), list) and len(body["maps"]) > max_maps():
        raise too_many(len(body["maps"]), "maps")
    envelope = validate_envelope(WafermapPredictBody, body)
    n = len(envelope.maps)
    if envelope.names is not None and len(envelope.names) != n:
        raise InputError(f"names: {len(envelope.names)} names for {n} maps; give one name per "
                         f"map, or none")
    grids, problems = [], []
    for k, item in enumerate(envelope.maps):
        found = json_grid(item, f"maps[{k}]")
        if isinstance(found, list):
            problems += found
            if len(problems) >= MAX_PROBLEMS:
                break
        else:
            grids.append(found)
    if problems:
        raise SchemaError(problems[:MAX_PROBLEMS])
    names = [str(x) for x in envelope.names] if envelope.names else \
        [str(k + 1) for k in range(n)]
    return WafermapRequest("json", grids, names,
                           hashlib.sha256(request.get_data(cache=True)).hexdigest(),
                           saliency=envelope.saliency,
                           review_level=envelope.review_level if envelope.review_level is not None
                           else parse_threshold(request.args.get("review_level"), "review_level"),
                           model=parse_model(envelope.model or request.args.get("model")),
                           kinds={"json": 1})


# -- files --------------------------------------------------------------------------------------
def _kind(item: UploadedBytes) -> str:
    lower = item.name.lower()
    for ext in (".npz", ".csv", ".json", ".png", ".jpg", ".jpeg"):
        if lower.endswith(ext):
            return "jpeg" if ext in (".jpg", ".jpeg") else ext[1:]
    head = item.data[:8]
    if head.startswith(b"\x89PNG"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    return "other"


def _read_file(item: UploadedBytes, remaining: int, max_total: int):
    """Maps of one file (not a zip); InputError for refused bytes, SchemaError for problems."""
    kind = _kind(item)
    if f".{kind}" in IMAGE_EXTENSIONS or kind == "jpeg":
        check_image(item)
    elif kind == "json":
        deep = json_depth_problem(item.data)
        if deep:
            raise InputError(f"{item.name}: {deep.replace('the JSON body', 'the file')}; a map "
                             f"is a list of rows")
    elif kind == "npz" or item.data.startswith(b"PK"):
        if item.name.lower().endswith(".zip"):
            raise InputError(f"{item.name}: a zip inside a zip is not read; put the files in "
                             f"one archive")
        check_archive_size(item, max_total)
    try:
        return read_maps(item.data, item.name, max_maps=remaining), kind
    except SchemaError as exc:
        match = _TOO_MANY_IN_FILE.match(exc.problems[0].message) if exc.problems else None
        if match:
            raise RequestLimitError(f"{item.name}: {match.group(1)} maps, more than the "
                                    f"{max_maps()} maps one request may hold (with the files "
                                    f"before it); split it") from None
        raise


def _files_request(request: Request) -> WafermapRequest:
    """Every readable file's maps; a file that is refused is left out with its reason
    (``rejected``), and the request is refused only when no file could be read or when it
    is over the map limit as a whole."""
    limit = max_maps()
    files = uploaded_files(request, what=f"wafer maps ({ACCEPTED})")
    items, sha256 = read_uploads(files, max_files=limit)
    max_total = int(current_app.config["MAX_CONTENT_LENGTH"])
    maps, names, kinds, labels = [], [], {}, []
    rejections = Rejections()
    for item in items:
        if is_zip_archive(item):
            members = rejections.attempt(item.name, zip_members, item, max_members=limit,
                                         max_total=max_total)
            if members is None:
                continue
            kinds["zip"] = kinds.get("zip", 0) + 1
        else:
            members = [item]
        prefix = f"{item.name}/"
        for member in members:
            if len(maps) >= limit:
                raise too_many(len(maps) + 1, "the upload")
            found = rejections.attempt(member.name, _read_file, member, limit - len(maps),
                                       max_total)
            if found is None:
                continue
            read, kind = found
            kinds[kind] = kinds.get(kind, 0) + 1
            labels += [""] * len(read.maps) if read.labels is None else read.labels.tolist()
            maps += read.maps
            names += [n[len(prefix):] if n.startswith(prefix) else n for n in read.names]
    rejections.raise_if_all_rejected(len(maps), "the upload holds no maps")
    source = items[0].name if len(items) == 1 else f"{items[0].name} and {len(items) - 1} more"
    form = request.form
    return WafermapRequest(source, maps, names, sha256, kinds=kinds,
                           labels=labels if any(labels) else None, rejected=rejections,
                           saliency=bool(parse_flag(form.get("saliency",
                                                             request.args.get("saliency")),
                                                    "saliency")),
                           review_level=parse_threshold(form.get(
                               "review_level", request.args.get("review_level")), "review_level"),
                           model=parse_model(form.get("model") or request.args.get("model")),
                           include_maps=bool(parse_flag(form.get("include_maps"),
                                                        "include_maps")))


def wafermap_request(request: Request) -> WafermapRequest:
    """Read a wafer-map request: uploaded files or a JSON body; options from either."""
    if request.files or (request.mimetype or "").startswith("multipart/"):
        req = _files_request(request)
        name = request.form.get("source_name", "").strip()
        if name:
            req.source = name[:200]
    else:
        req = _json_request(request)
    check_review_level(req.review_level)
    return req


def check_review_level(level: float | None) -> None:
    """A review level is a confidence from 0 to 1 (None: the model's); a 400 otherwise."""
    if level is not None and not 0 <= level <= 1:
        raise InputError(f"review_level must be a confidence from 0 to 1, got {level:g}")
