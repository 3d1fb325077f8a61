"""The jobs API and pages, and uploads sent in parts.

- ``POST /api/v1/jobs`` ``{"kind": "train" | "score", "module", ...}`` answers ``{"id"}``
  (202): training reads the shared data (default), an upload (``"upload": <id>``) or a file
  or folder of ``JOBS_INPUT_DIR`` (``"input": "<name>"``), with the training command's
  ``"options"``; scoring (every module with a ``ModuleSpec.batch``) reads an upload or an
  input file or folder (a zip is unpacked), with ``"model"`` and ``"threshold"`` as the
  predict API takes them, in the job worker or, with ``DASK_SCHEDULER`` set, on Dask.
- ``GET /api/v1/jobs/<id>``: state, progress (done, total, unit), the log's tail, the result
  and where it is (the registry for a trained version, the results CSV and History's run for
  scoring); ``GET /api/v1/jobs``: the newest jobs.
- ``POST /api/v1/jobs/<id>/cancel``: a queued job is cancelled at once, a running one at its
  next step (409 once it has finished).
- ``GET /api/v1/jobs/<id>/results.csv``: a scoring job's results, every row, streamed.
- ``POST /api/v1/uploads`` ``{"name", "size"}`` opens an upload; ``POST
  /api/v1/uploads/<id>?offset=N`` appends one part (a raw body of at most the request limit,
  ``FABLENS_MAX_UPLOAD_MB``) at byte ``N`` (409 with the bytes received when ``N`` is not where
  the upload stands, so a client resumes from there); ``GET /api/v1/uploads/<id>``.
- ``/jobs`` and ``/jobs/<id>``: the pages (start, watch, cancel).
Engineers start and cancel jobs and upload; viewers read (``webapp/access.py``).
"""
from __future__ import annotations

import gzip
import math
import re
import shutil
from typing import Annotated, Any, Literal

from flask import (Blueprint, Response, abort, current_app, jsonify, render_template, request,
                   url_for)
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, \
    field_validator
from werkzeug.exceptions import Conflict

from webapp import db
from webapp.errors import InputError
from webapp.jobs import engine, jobs_of, store, tidy
from webapp.jobs.work import input_path, JobError, results_path, training_problem, upload_path
from webapp.openapi import COMMON_ERRORS, documented
from webapp.params import read_json, validate_envelope
from webapp.registry import ready_modules

bp = Blueprint("jobs", __name__)

OPTION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
RESERVED = {"data", "artifacts", "help", "no_release"}
Scalar = StrictStr | StrictInt | float | StrictBool


class JobBody(BaseModel):
    """``POST /api/v1/jobs``: what to run, on which data."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["train", "score"] = Field(description="train a module, or score a file")
    module: str = Field(min_length=1, max_length=32)
    upload: int | None = Field(None, ge=1, description="an upload's id (POST /api/v1/uploads)")
    input: str | None = Field(None, min_length=1, max_length=256,
                              description="a file or folder in the input folder "
                                          "(FABLENS_JOBS_INPUT_DIR)")
    options: dict[str, Scalar | list[Scalar] | dict[str, Any]] = Field(
        default_factory=dict, description="training: the training command's options, e.g. "
                                          "{\"epochs\": 2} for --epochs 2")
    model: Annotated[str, Field(max_length=100)] | None = Field(
        None, description="scoring: a model name (default: the module's default)")
    threshold: float | None = Field(None, description="scoring: the level to flag at")

    @field_validator("options")
    @classmethod
    def option_names(cls, options: dict) -> dict:
        if len(options) > 20:
            raise ValueError("at most 20 options")
        for name in options:
            if not OPTION_NAME.match(name) or name in RESERVED:
                raise ValueError(f"'{name[:40]}' is not an option a job may set (lower-case "
                                 f"words joined by _, not {', '.join(sorted(RESERVED))})")
        return options

    @field_validator("threshold")
    @classmethod
    def finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("the threshold must be a finite number")
        return value


class UploadBody(BaseModel):
    """``POST /api/v1/uploads``: a file that will come in parts."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=256, description="the file's name (its type "
                                                                "is read from it)")
    size: int = Field(ge=1, description="the file's size in bytes")


def _tidy() -> None:
    """Close jobs dead workers left running, before answering about them (one indexed query
    over the running jobs)."""
    tidy(current_app._get_current_object())


def _job(job_id: int) -> dict:
    _tidy()
    job = store.get(engine(current_app), job_id)
    if job is None:
        abort(404, description=f"no job {job_id}")
    return job


def described(job: dict, log_lines: int | None = 40) -> dict:
    """A job as the API answers it, with the links to its result."""
    out = store.public(job, log_lines)
    out["url"] = url_for("jobs.job_page", job_id=job["id"])
    result = job.get("result") or {}
    if job["kind"] == "score" and job["state"] == "done" and results_path(job["id"]).is_file():
        out["results_url"] = url_for("jobs.results", job_id=job["id"])
    if job.get("run_id"):
        from webapp.runs import run_url

        out["run_url"] = run_url(job["run_id"])
    if result.get("version"):
        out["registry_url"] = url_for("versions.page", _anchor=f"registry-{job['module']}")
    return out


def _check_module(module: str) -> object:
    for spec in ready_modules():
        if spec.name == module:
            return spec
    raise InputError(f"module: no module '{module[:32]}'; choose one of "
                     f"{', '.join(s.name for s in ready_modules())}")


def _data(body: JobBody) -> str:
    """What the job reads, in words; a 400 when it is not there."""
    if body.upload is not None and body.input is not None:
        raise InputError("give either 'upload' or 'input', not both")
    if body.upload is not None:
        found = store.get_upload(engine(current_app), body.upload)
        if found is None:
            raise InputError(f"upload: no upload {body.upload}")
        if found["received"] < found["size"]:
            raise InputError(f"upload: upload {body.upload} has {found['received']:,} of its "
                             f"{found['size']:,} bytes; send the rest first")
        return f"upload {found['id']}: {found['name']}"
    if body.input is not None:
        try:
            input_path(body.input)
        except JobError as exc:
            raise InputError(str(exc)) from None
        return f"input {body.input}"
    if body.kind == "score":
        raise InputError("a scoring job needs a file: 'upload' (POST /api/v1/uploads) or "
                         "'input' (a file in the input folder)")
    return "the shared data"


def submit(body: JobBody) -> dict:
    """Check, record and queue a job; the job as recorded."""
    spec = _check_module(body.module)
    if body.kind == "train":
        if body.model is not None or body.threshold is not None:
            raise InputError("'model' and 'threshold' are for scoring jobs; training takes "
                             "'options'")
        problem = training_problem()
        if problem:
            raise InputError(problem)
    else:
        if body.options:
            raise InputError("'options' are for training jobs; scoring takes 'model' and "
                             "'threshold'")
        if spec.batch is None:
            raise InputError(f"module: {body.module} has no batch scoring yet")
    data = _data(body)
    params = body.model_dump(exclude={"kind", "module"}, exclude_none=True)
    job_id = store.create(engine(current_app), body.kind, body.module, db.actor(), data, params)
    jobs_of().enqueue(job_id)
    return store.get(engine(current_app), job_id)


# -- the API -----------------------------------------------------------------------------------------
@bp.get("/api/v1/jobs")
@documented(tags=("jobs",))
def api_list():
    """The newest jobs (``?module=``, ``?before=<id>`` for older ones), without their logs."""
    _tidy()
    before = request.args.get("before")
    if before is not None and not before.isdigit():
        raise InputError("before: a job id (a whole number)")
    rows = store.listing(engine(current_app), 50, int(before) if before else None,
                         request.args.get("module") or None)
    return jsonify(jobs=[described(r, log_lines=0) for r in rows])


@bp.post("/api/v1/jobs")
@documented(body=JobBody, errors=COMMON_ERRORS, tags=("jobs",))
def api_create():
    """Start a training or batch-scoring job; answers its id (202) and where to watch it."""
    job = submit(validate_envelope(JobBody, read_json(request)))
    response = jsonify(described(job))
    response.status_code = 202
    response.headers["Location"] = url_for("jobs.api_get", job_id=job["id"])
    return response


@bp.get("/api/v1/jobs/<id:job_id>")
@documented(errors=(*COMMON_ERRORS, 404), tags=("jobs",))
def api_get(job_id: int):
    """A job's state, progress (done, total, unit), log tail (``?log=N`` lines) and result."""
    lines = request.args.get("log", "40")
    if not lines.isdigit():
        raise InputError("log: a number of lines")
    return jsonify(described(_job(job_id), min(int(lines), 5000) or None))


def cancel(job_id: int) -> dict:
    job = _job(job_id)
    state = store.cancel(engine(current_app), job_id)
    if state is None:
        raise Conflict(f"job {job_id} has finished ({job['state']}); there is nothing to cancel")
    return store.get(engine(current_app), job_id)


@bp.post("/api/v1/jobs/<id:job_id>/cancel")
@documented(errors=(*COMMON_ERRORS, 404, 409), tags=("jobs",))
def api_cancel(job_id: int):
    """Cancel a job: at once while queued, at its next step while running."""
    return jsonify(described(cancel(job_id)))


@bp.get("/api/v1/jobs/<id:job_id>/results.csv")
@documented(errors=(*COMMON_ERRORS, 404), tags=("jobs",))
def results(job_id: int):
    """A scoring job's results CSV, every row (streamed from the stored file)."""
    job = _job(job_id)
    path = results_path(job_id)
    if job["kind"] != "score" or job["state"] != "done" or not path.is_file():
        abort(404, description=f"job {job_id} has no results (only finished scoring jobs do)")

    def stream():
        with gzip.open(path, "rb") as source:
            while block := source.read(1 << 20):
                yield block

    return Response(stream(), mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename={job['module']}_job{job_id}_results.csv"})


# -- uploads -------------------------------------------------------------------------------------------
def _free_bytes() -> int:
    folder = current_app.config["JOBS_DIR"]
    from pathlib import Path

    Path(folder).mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(folder).free


def _upload_state(found: dict) -> dict:
    return {"id": found["id"], "name": found["name"], "size": found["size"],
            "received": found["received"], "complete": found["received"] >= found["size"],
            "part_bytes": int(current_app.config["MAX_CONTENT_LENGTH"])}


@bp.post("/api/v1/uploads")
@documented(body=UploadBody, errors=(*COMMON_ERRORS, 413), tags=("jobs",))
def upload_create():
    """Open an upload of ``size`` bytes, sent in parts; answers its id and the part size."""
    body = validate_envelope(UploadBody, read_json(request))
    limit = int(current_app.config["JOBS_MAX_UPLOAD_BYTES"])
    if body.size > limit:
        raise InputError(f"size: {body.size:,} bytes is more than a job's upload limit of "
                         f"{limit:,} (FABLENS_JOBS_MAX_UPLOAD_MB)", code=413)
    if body.size * 2 > _free_bytes():  # the file, and room for its results
        raise InputError(f"size: the server has not enough free disk space for "
                         f"{body.size:,} bytes; use the input folder, or free space", code=413)
    upload_id = store.create_upload(engine(current_app), db.actor(), body.name, body.size)
    path = upload_path(upload_id, body.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    response = jsonify(_upload_state(store.get_upload(engine(current_app), upload_id)))
    response.status_code = 201
    return response


def _upload(upload_id: int) -> dict:
    found = store.get_upload(engine(current_app), upload_id)
    if found is None:
        abort(404, description=f"no upload {upload_id}")
    return found


@bp.get("/api/v1/uploads/<id:upload_id>")
@documented(errors=(*COMMON_ERRORS, 404), tags=("jobs",))
def upload_get(upload_id: int):
    """How much of an upload has arrived (resume from ``received``)."""
    return jsonify(_upload_state(_upload(upload_id)))


@bp.post("/api/v1/uploads/<id:upload_id>")
@documented(errors=(*COMMON_ERRORS, 404, 409, 413), tags=("jobs",))
def upload_part(upload_id: int):
    """Append one part (the raw request body) at byte ``?offset=``."""
    found = _upload(upload_id)
    offset = request.args.get("offset", "")
    if not offset.isdigit():
        raise InputError("offset: the byte the part starts at (a whole number)")
    if int(offset) != found["received"]:
        raise Conflict(f"upload {upload_id} has {found['received']:,} bytes; send the part "
                       f"that starts at byte {found['received']:,}")
    if request.content_length is None:
        raise InputError("send the part as the request body, with its Content-Length")
    if found["received"] + request.content_length > found["size"]:
        raise InputError(f"the part would take the upload past its {found['size']:,} bytes")
    path = upload_path(upload_id, found["name"])
    written = 0
    with open(path, "r+b") as out:
        out.seek(found["received"])
        while block := request.stream.read(1 << 20):
            out.write(block)
            written += len(block)
        out.truncate()
    if written != request.content_length:
        raise InputError(f"the part ended after {written:,} of its {request.content_length:,} "
                         f"bytes; send it again")
    store.received(engine(current_app), upload_id, found["received"] + written)
    return jsonify(_upload_state(_upload(upload_id)))


# -- the pages ---------------------------------------------------------------------------------------
def _page_modules() -> list[dict]:
    return [{"name": s.name, "title": s.title, "batch": s.batch is not None}
            for s in ready_modules()]


@bp.get("/jobs")
def page():
    """Every job, newest first, and the form that starts one."""
    _tidy()
    rows = store.listing(engine(current_app), 100)
    return render_template("jobs.html", jobs=[described(r, 0) for r in rows],
                           job_modules=_page_modules(), training_problem=training_problem(),
                           input_dir=bool(current_app.config.get("JOBS_INPUT_DIR")),
                           part_bytes=int(current_app.config["MAX_CONTENT_LENGTH"]))


@bp.get("/jobs/<id:job_id>")
def job_page(job_id: int):
    """One job: its progress bar with the count, its log, Cancel, and where its result is."""
    return render_template("job.html", job=described(_job(job_id), 200))


def recent_jobs(limit: int = 5) -> list[dict]:
    """The newest jobs, for History's box (a template global)."""
    return [described(r, 0) for r in store.listing(engine(current_app), limit)]


def jobs_of_runs(run_ids) -> dict[int, int]:
    """run id -> the scoring job that recorded it (a template global for History)."""
    return store.by_run(engine(current_app), [int(i) for i in run_ids])
