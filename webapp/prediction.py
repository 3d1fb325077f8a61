"""The one prediction service: every module's ``POST /api/v1/<module>/predict`` is this view.

A module supplies one function, ``serve(predictor, request) -> Prediction``: it parses the
request into a batch and scores it, returning the results CSV, the decision (model, version,
threshold, how many items and how many flagged) and what its JSON answer adds. The platform
owns the rest, the same way for every module: the run record, written as ``running`` before
the work begins and closed as done with its stored results for History, or as failed with its
reason (:func:`webapp.runs.recorded_run`: a worker that dies mid-run leaves a run that says
so), the time budget of large requests (:func:`webapp.limits.heavy_slot`), error
translation, the CSV download (``?format=csv``) and the streamed JSON answer, and shadow
scoring: with a candidate attached in the registry, the request is copied before it is parsed
and scored again by the candidate on a background thread after the run is closed
(``webapp.shadow``).

Every answer carries the same flag vocabulary: ``n_items`` and ``n_flagged`` (and the module's
older names for them, ``n_rows``/``n_maps``/``n_images`` and ``n_review``/``n_anomalies``,
kept as documented aliases for one release), ``threshold`` and ``default_threshold``, and
each prediction ``flagged`` beside the module's own word for it (``is_fault``,
``is_anomaly``, ``needs_review``: the flag column of its results CSV, ``ResultsDecision``).
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol

from flask import Request, current_app, request, url_for
from pydantic import BaseModel, ConfigDict, Field

from webapp import db, metrics, shadow
from webapp.downloads import csv_download, json_stream, wants_csv
from webapp.limits import heavy_slot
from webapp.openapi import PREDICT_ERRORS, PredictQuery, documented
from webapp.predictors import get_predictor
from webapp.registry import get_module
from webapp.runs import recorded_run


class ResultsCsv(Protocol):
    """The results CSV of a run: its bytes, and gzipped for the run record."""

    def data(self) -> bytes: ...

    def gzipped(self) -> bytes: ...


@dataclass(frozen=True)
class CsvBytes:
    """A results CSV already written whole (:func:`webapp.downloads.csv_bytes`)."""

    content: bytes

    def data(self) -> bytes:
        return self.content

    def gzipped(self) -> bytes:
        return gzip.compress(self.content, compresslevel=1)


@dataclass
class Prediction:
    """What a module's ``serve`` returns: one scored batch, ready to record and answer."""

    model: str
    model_version: str | None
    threshold: float | None  # the level the batch was decided at
    default_threshold: float | None  # the model's own level (the manifest's)
    n_items: int
    n_flagged: int
    csv: ResultsCsv
    score_column: str  # the results CSV's score column (History re-decides on it)
    source: str | None
    pages: Iterable[list[dict]]  # the JSON answer's "predictions", page by page
    head: dict = field(default_factory=dict)  # what this module's JSON answer adds
    input_sha256: str | None = None
    warnings: list[str] = field(default_factory=list)
    edited_cells: int | None = None
    removed_rows: int | None = None
    labelled_faulty: int | None = None  # items the upload's own labels mark faulty
    # the batch against the training data: {"statistic", "value", "summary", ...} (JSON-able),
    # stored with the run and charted on the dashboard
    drift: dict | None = None
    # run once the run is recorded (its id): more head fields, e.g. the events it stored
    after_record: Callable[[int], dict] | None = None


Serve = Callable[[object, Request], Prediction]


class PredictedItem(BaseModel):
    """One prediction: the module's own fields, and ``flagged`` (its decision) in every one."""

    model_config = ConfigDict(extra="allow")
    flagged: bool = Field(description="the decision at the answer's threshold (the module's "
                                      "own word for it beside: is_fault, is_anomaly, "
                                      "needs_review)")


class PredictAnswer(BaseModel):
    """Every module's predict answer (JSON): the shared fields, then the module's own."""

    model_config = ConfigDict(extra="allow")
    run_id: int = Field(description="the run recorded in History")
    results_url: str = Field(description="every row of the results CSV again, re-decided at "
                                         "?threshold=")
    model: str
    model_version: str | None
    threshold: float | None = Field(description="the level the items were decided at")
    default_threshold: float | None = Field(description="the model's own level")
    n_items: int = Field(description="items scored (rows, maps, cycles, photos)")
    n_flagged: int = Field(description="items flagged at the threshold")
    predictions: list[PredictedItem]


def record(module: str, run_id: int | None, out: Prediction,
           release: str | None = None) -> int:
    """Close run ``run_id`` as done: what it used and found and its results for History, with
    the model version (``release``) that scored it; its id. A run whose start the database
    could not take (None) is recorded now, or the database's error is the answer (a 500)."""
    if run_id is None:
        run_id = db.start_run(module, out.source)
    db.finish_run(
        run_id, out.model, out.model_version, out.source, out.n_items, out.n_flagged,
        out.threshold, default_threshold=out.default_threshold, input_sha256=out.input_sha256,
        edited_cells=out.edited_cells, removed_rows=out.removed_rows, warnings=out.warnings,
        results=(out.score_column, out.csv.gzipped()), keep=current_app.config["RESULTS_KEEP"],
        labelled_faulty=out.labelled_faulty, release=release, drift=out.drift)
    return run_id


def with_flagged(pages: Iterable[list[dict]], flag: str) -> Iterable[list[dict]]:
    """Each prediction also under the shared name ``flagged`` (its module's ``flag`` word)."""
    for page in pages:
        for record in page:
            if flag in record:
                record["flagged"] = record[flag]
        yield page


def prediction_view(module: str, serve: Serve, csv_name: str, **doc) -> Callable:
    """The predict view of ``module``: JSON or files in; JSON out, or the results CSV named
    ``csv_name`` with ``?format=csv``. ``doc``: what the module's request takes, for the OpenAPI
    document (``body``, ``form``; :func:`webapp.openapi.documented`), which also gets the
    answer every module gives (:class:`PredictAnswer`)."""
    def predict():
        predictor = get_predictor(module)
        release = getattr(predictor, "release_version", None)
        candidate = shadow.wanted(module)
        if candidate == release:  # promoted: it is the live version now
            candidate = None
        with recorded_run(module) as run_id:
            copy = shadow.snapshot(request) if candidate else None
            with heavy_slot():
                out = serve(predictor, request)
            run_id = record(module, run_id, out, release)
        metrics.record_prediction(module, out.model_version, out.n_items, out.n_flagged)
        after = out.after_record(run_id) if out.after_record else {}
        if candidate:  # scored by the candidate on the shadow thread, after this answer
            shadow.submit(module, candidate, copy, out.csv.data(), run_id, serve)
        if wants_csv(request):
            return csv_download(out.csv.data(), csv_name)
        head = dict(run_id=run_id, results_url=url_for("runs.results", run_id=run_id),
                    model=out.model, model_version=out.model_version, threshold=out.threshold,
                    default_threshold=out.default_threshold, n_items=out.n_items,
                    n_flagged=out.n_flagged, release=release) | out.head | after
        return json_stream(head, "predictions",
                           with_flagged(out.pages, get_module(module).decision.flag))

    predict.__name__ = "predict"
    predict.__doc__ = serve.__doc__
    predict.prediction_service = module  # the contract tests check every module is served here
    return documented(response=PredictAnswer, query=PredictQuery, csv=True,
                      errors=PREDICT_ERRORS, tags=(module,), **doc)(predict)
