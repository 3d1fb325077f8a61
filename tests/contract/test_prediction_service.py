"""Every ready module is served by the one prediction service (``webapp.prediction``).

Its predict endpoint is the platform's view, and its answer carries the shared vocabulary
(``n_items``, ``n_flagged``, ``threshold``, ``default_threshold``, ``run_id``) that agrees with
the run History records and with the results CSV it stores.
"""
from __future__ import annotations

import csv
import io

import pytest
from flask import url_for

from tests.contract.test_modules import READY, examples_of, post_file, spec_of
from webapp import db
from webapp.db import upgrade
from tests.conftest import sqlite_url


@pytest.fixture
def db_app(tmp_path):
    from webapp import create_app

    upgrade(sqlite_url(tmp_path))
    return create_app({"TESTING": True, "DATABASE_URL": sqlite_url(tmp_path)})


@pytest.mark.parametrize("name", READY)
def test_the_predict_endpoint_is_the_platforms_view(db_app, name):
    spec = spec_of(name)
    view = db_app.view_functions[spec.predict]
    assert getattr(view, "prediction_service", None) == name, \
        f"{name}'s predict is its own view, not webapp.prediction.prediction_view"


@pytest.mark.parametrize("name", READY)
def test_every_answer_has_the_shared_vocabulary_and_matches_its_run(db_app, name):
    spec = spec_of(name)
    good = examples_of(db_app, name).good
    client = db_app.test_client()
    with db_app.test_request_context():
        url = url_for(spec.predict)
    body = post_file(client, url, good).get_json()
    for key in ("run_id", "results_url", "model", "model_version", "threshold",
                "default_threshold", "n_items", "n_flagged"):
        assert key in body, f"{name}: no {key!r} in the answer"
    assert body["n_items"] == len(body["predictions"])
    with db_app.app_context():
        run = db.recent_runs()[0]
    assert (run["id"], run["rows"], run["flagged"]) == (body["run_id"], body["n_items"],
                                                       body["n_flagged"])
    stored = list(csv.DictReader(io.StringIO(client.get(body["results_url"]).get_data(
        as_text=True))))
    flag = spec.decision.flag
    assert len(stored) == body["n_items"]
    assert sum(r[flag] == "True" for r in stored) == body["n_flagged"]
    assert [r["flagged"] for r in stored] == [r[flag] for r in stored]  # the shared word
    redecided = list(csv.DictReader(io.StringIO(client.get(
        body["results_url"] + f"?threshold={body['threshold']}").get_data(as_text=True))))
    assert [r["flagged"] for r in redecided] == [r[flag] for r in redecided]
    # each prediction says it in the shared word too, the same as the module's own
    assert all(p["flagged"] == p[flag] for p in body["predictions"])
    assert sum(p["flagged"] for p in body["predictions"]) == body["n_flagged"]
