"""A sixth module, defined and registered here only (never shipped), gets the platform's
prediction service with no edit to platform code: its runs in History, its results CSV
stored and re-decided at another threshold, its input errors as located 400s recorded as
failed runs, its prediction counted in the shared vocabulary, and access control (its
endpoints get the module rule: a viewer may predict, nobody anonymous may).

The module is one pipeline entry and one web entry, as the README's "Adding a module" says:
a :class:`PipelineModule`, and a :class:`ModuleSpec` whose predict endpoint is
``prediction_view`` over its ``serve``.
"""
from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
import pytest
from flask import Blueprint

from pipelines.core import modules as pipeline_modules
from pipelines.core.modules import PipelineModule
from pipelines.core.problems import Problem, SchemaError
from tests.conftest import sqlite_url
from webapp import db
from webapp import modules as web_modules
from webapp.db import upgrade
from webapp.downloads import csv_bytes
from webapp.modules import ModuleSpec, ResultsDecision
from webapp.prediction import CsvBytes, Prediction, prediction_view

THRESHOLD = 0.5


class TinyModel:
    name = "level"
    threshold = THRESHOLD
    score_range = (0.0, 1.0)


class TinyPredictor:
    """Scores a reading by itself: flagged at or above 0.5."""

    def __init__(self, directory, n_jobs=1):
        self.models = {"level": TinyModel()}
        self.default_model = "level"


def serve(predictor, request) -> Prediction:
    """Score readings: a CSV with a ``value`` column."""
    upload = request.files["file"]
    frame = pd.read_csv(upload.stream, dtype=str)
    values = pd.to_numeric(frame["value"], errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy())
    if bad.size:
        raise SchemaError([Problem(f"'{frame['value'][k]}' is not a number", file=upload.filename,
                                   row=int(k) + 1, column="value") for k in bad])
    flagged = values >= THRESHOLD
    results = pd.DataFrame({"id": frame["id"], "score": values, "is_high": flagged.map(str),
                            "threshold": THRESHOLD})
    records = [{"id": i, "score": float(v), "is_high": bool(f)}
               for i, v, f in zip(frame["id"], values, flagged)]
    return Prediction(model="level", model_version="level-1", threshold=THRESHOLD,
                      default_threshold=THRESHOLD, n_items=len(frame),
                      n_flagged=int(flagged.sum()),
                      csv=CsvBytes(csv_bytes(results, float_decimals=None)),
                      score_column="score", source=upload.filename, pages=[records])


api = Blueprint("tiny_api", __name__, url_prefix="/api/v1/tiny")
api.add_url_rule("/predict", methods=["POST"], view_func=prediction_view("tiny", serve, "tiny.csv"))
pages = Blueprint("tiny", __name__, url_prefix="/tiny")
pages.add_url_rule("/", "page", lambda: "the tiny page")

TINY = ModuleSpec(name="tiny", title="Tiny", blurb="Readings at or above 0.5.",
                  blueprints=(pages, api), predictor=TinyPredictor, page="tiny.page",
                  predict="tiny_api.predict", decision=ResultsDecision(flag="is_high"))


@pytest.fixture
def registered_tiny(monkeypatch):
    real = pipeline_modules.discover
    monkeypatch.setattr(pipeline_modules, "discover",
                        lambda: real() | {"tiny": PipelineModule(name="tiny")})
    monkeypatch.setattr(web_modules, "REGISTRY", web_modules.REGISTRY + (TINY,))


@pytest.fixture
def client(tmp_path, registered_tiny):
    from webapp import create_app

    upgrade(sqlite_url(tmp_path))
    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url(tmp_path)})
    with app.app_context():
        yield app.test_client()


def post(client, text: str, name: str = "readings.csv"):
    return client.post("/api/v1/tiny/predict", data={"file": (io.BytesIO(text.encode()), name)},
                       content_type="multipart/form-data")


def test_a_sixth_module_is_recorded_stored_and_redecided(client):
    body = post(client, "id,value\na,0.2\nb,0.7\nc,0.5\n").get_json()
    assert (body["n_items"], body["n_flagged"], body["threshold"]) == (3, 2, THRESHOLD)
    assert [p["flagged"] for p in body["predictions"]] == [False, True, True]
    run = db.recent_runs()[0]
    assert (run["module"], run["source"], run["rows"], run["flagged"]) == (
        "tiny", "readings.csv", 3, 2)
    assert "tiny" in client.get("/history").get_data(as_text=True)
    again = list(csv.DictReader(io.StringIO(client.get(body["results_url"] + "?threshold=0.6")
                                            .get_data(as_text=True))))
    assert [r["is_high"] for r in again] == ["False", "True", "False"]  # re-decided at 0.6
    assert client.get(body["results_url"] + "?threshold=2").status_code == 400  # out of range
    csv_answer = client.post("/api/v1/tiny/predict?format=csv", data={
        "file": (io.BytesIO(b"id,value\na,0.9\n"), "one.csv")}, content_type="multipart/form-data")
    assert csv_answer.mimetype == "text/csv" and "tiny.csv" in csv_answer.headers[
        "Content-Disposition"]


def test_a_sixth_modules_bad_input_is_a_located_400_and_a_failed_run(client):
    response = post(client, "id,value\na,0.2\nb,oops\n", "typo.csv")
    assert response.status_code == 400
    body = response.get_json()
    assert "'oops' is not a number" in body["message"]
    assert body["problems"] == [{"message": "'oops' is not a number", "file": "typo.csv",
                                 "row": 2, "column": "value"}]
    run = db.recent_runs()[0]
    assert run["status"] == "failed" and run["error"].startswith("HTTP 400: ")


def test_a_sixth_module_gets_access_control(tmp_path, registered_tiny):
    from webapp import accounts, create_app

    upgrade(sqlite_url(tmp_path))
    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url(tmp_path), "AUTH": "on"})
    with app.app_context():
        accounts.create_user("vera", "viewer", "a-long-password")
        token = accounts.create_token("vera")[1]
        client = app.test_client()
        assert post(client, "id,value\na,0.9\n").status_code == 401
        assert client.get("/tiny/").status_code in (302, 401)  # pages: to the sign-in
        answer = client.post("/api/v1/tiny/predict", headers={"Authorization": f"Bearer {token}"},
                             data={"file": (io.BytesIO(b"id,value\na,0.9\n"), "r.csv")},
                             content_type="multipart/form-data")
        assert answer.status_code == 200 and answer.get_json()["n_flagged"] == 1
        assert db.recent_runs()[0]["user"].startswith("vera")


def tiny_batch(predictor, path, name: str, options: dict):
    """The sixth module's batch scorer: its CSV two rows at a time (``ModuleSpec.batch``)."""
    from webapp.registry import BatchChunk, BatchScoring

    level = THRESHOLD if options.get("threshold") is None else float(options["threshold"])

    def chunks():
        for part in pd.read_csv(path, dtype=str, chunksize=2):
            values = pd.to_numeric(part["value"])
            flagged = values >= level
            frame = pd.DataFrame({"id": part["id"], "score": values, "is_high": flagged.map(str),
                                  "threshold": level})
            yield BatchChunk(frame, len(part), int(flagged.sum()))

    return BatchScoring(model="level", model_version="level-1", threshold=level,
                        default_threshold=THRESHOLD, unit="readings", chunks=chunks())


def test_a_sixth_module_with_a_batch_scorer_gets_scoring_jobs(tmp_path, registered_tiny,
                                                             monkeypatch):
    """Its ModuleSpec names a batch scorer: the jobs API, the worker, the results download and
    History take it with no edit to the platform."""
    from dataclasses import replace

    from tests.webapp.test_jobs import jobs_config, submit, upload, wait_for
    from webapp import create_app, jobs

    monkeypatch.setattr(web_modules, "REGISTRY", web_modules.REGISTRY[:-1]
                        + (replace(TINY, batch=tiny_batch),))
    app = create_app(jobs_config(tmp_path))
    client = app.test_client()
    data = b"id,value\na,0.2\nb,0.7\nc,0.5\nd,0.1\n=e,0.9\n"
    job_id = submit(client, kind="score", module="tiny", upload=upload(client, "r.csv", data, 9))
    jobs.start_worker(app)
    try:
        job = wait_for(client, job_id, ("done", "failed"))
    finally:
        jobs.stop_worker(app)
    assert job["state"] == "done", job
    assert job["progress"]["done"] == 5 and job["progress"]["unit"] == "readings"
    rows = list(csv.DictReader(io.StringIO(client.get(job["results_url"]).get_data(
        as_text=True))))
    assert [r["is_high"] for r in rows] == ["False", "True", "True", "False", "True"]
    assert rows[4]["id"] == "'=e"  # the one formula-safe writer
    with app.app_context():
        run = db.recent_runs()[0]
    assert (run["module"], run["rows"], run["flagged"]) == ("tiny", 5, 3)
    assert f"job {job_id}: r.csv" == run["source"]
