"""The audit trail: what each run used, failed runs, and results downloaded again from History."""
from __future__ import annotations

import csv
import hashlib
import io

import pytest

from tests.conftest import make_batch_frame, to_csv_bytes
from tests.sensor.test_api import upload
from webapp import create_app, db
from webapp.db import upgrade


def rows_of(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


@pytest.fixture
def db_app(database_url):
    """The app on SQLite and on PostgreSQL (the audit tables come through the migrations)."""
    upgrade(database_url)
    return create_app({"TESTING": True, "DATABASE_URL": database_url, "RESULTS_KEEP": 2})


def test_a_run_records_what_it_used_and_its_results_download_again(db_app):
    client = db_app.test_client()
    data = to_csv_bytes(make_batch_frame(6))
    body = upload(client, data, "edited.csv", edited_cells="3", removed_rows="1",
                  threshold="0.25").get_json()
    with db_app.app_context():
        run = db.recent_runs()[0]
    assert run["input_sha256"] == hashlib.sha256(data).hexdigest()
    assert (run["edited_cells"], run["removed_rows"], run["threshold"]) == (3, 1, 0.25)
    assert run["default_threshold"] == body["default_threshold"] and run["status"] == "ok"

    again = rows_of(client.get(body["results_url"]))
    assert [r["id"] for r in again] == [p["id"] for p in body["predictions"]]
    assert [r["is_fault"] == "True" for r in again] == [p["is_fault"] for p in body["predictions"]]

    everything = rows_of(client.get(body["results_url"] + "?threshold=0"))
    assert all(r["is_fault"] == "True" and float(r["threshold"]) == 0.0 for r in everything)
    flagged = rows_of(client.get(body["results_url"] + "?threshold=0&flagged=1"))
    assert len(flagged) == 6
    assert client.get(body["results_url"] + "?threshold=2").status_code == 400
    with db_app.app_context():
        downloads = db.recent_runs()[0]["downloads"]
    assert [(d["threshold"], d["flagged_only"]) for d in downloads] == [
        (0.25, False), (0.0, False), (0.0, True)]
    html = client.get("/history").get_data(as_text=True)
    assert "3 cells edited, 1 row removed" in html and "downloaded at 0.0000" in html
    assert "default " in html  # the default threshold beside the one used


def test_a_failed_run_is_recorded_with_its_reason(db_app):
    client = db_app.test_client()
    frame = make_batch_frame(3).astype({"Sensor-4": object})
    frame.loc[1, "Sensor-4"] = "oops"
    assert upload(client, to_csv_bytes(frame), "typo.csv").status_code == 400
    with db_app.app_context():
        run = db.recent_runs()[0]
    assert run["status"] == "failed" and "typo.csv" in run["error"] and "Sensor-4" in run["error"]
    assert "failed" in client.get("/history").get_data(as_text=True)


def test_a_run_that_ends_in_a_500_is_recorded_with_its_reason(db_app, monkeypatch):
    from webapp.modules.sensor import api

    def broken(*args, **kwargs):
        raise KeyError("")

    monkeypatch.setattr(api, "score_request", broken)
    response = upload(db_app.test_client(), to_csv_bytes(make_batch_frame(3)), "blank.csv")
    assert response.status_code == 500 and "KeyError" not in response.get_data(as_text=True)
    with db_app.app_context():
        run = db.recent_runs()[0]
    assert run["status"] == "failed" and run["source"] == "blank.csv"
    assert run["error"].startswith("HTTP 500") and "KeyError" in run["error"]


def test_the_cores_input_errors_are_400s_wherever_raised_and_recorded(db_app, monkeypatch):
    """SchemaError and UnknownDetectorError are translated once (webapp.errors), not per view."""
    from pipelines.core.detectors import UnknownDetectorError
    from pipelines.core.problems import Problem, SchemaError
    from webapp.modules.sensor import api

    for raised, code, words in (
            (SchemaError([Problem("'x' is not a number", file="f.csv", row=3, column="7")]),
             400, "'x' is not a number"),
            (UnknownDetectorError("unknown model 'nope'"), 400, "unknown model 'nope'")):
        def broken(*args, exc=raised, **kwargs):
            raise exc

        monkeypatch.setattr(api, "score_request", broken)
        response = upload(db_app.test_client(), to_csv_bytes(make_batch_frame(2)), "f.csv")
        assert response.status_code == code, response.get_data(as_text=True)
        assert words in response.get_json()["message"]
        with db_app.app_context():
            run = db.recent_runs()[0]
        assert run["status"] == "failed" and run["error"].startswith(f"HTTP {code}: ")
        assert words in run["error"]


def test_an_upload_over_the_size_limit_is_recorded_as_refused(db_app):
    db_app.config["MAX_CONTENT_LENGTH"] = 1024
    response = upload(db_app.test_client(), to_csv_bytes(make_batch_frame(40)), "big.csv")
    assert response.status_code == 413
    with db_app.app_context():
        run = db.recent_runs()[0]
    assert run["status"] == "failed" and run["error"].startswith("HTTP 413")


def test_history_shows_one_run_however_old_by_its_link(db_app):
    with db_app.app_context():
        first = db.record_run("sensor", "xgboost", "v1", "old.csv", 3, 1, 0.5)
        for k in range(51):
            db.record_run("sensor", "xgboost", "v1", f"new{k}.csv", 3, 1, 0.5)
    client = db_app.test_client()
    assert f'id="run-{first}"' not in client.get("/history").get_data(as_text=True)
    alone = client.get(f"/history?run={first}").get_data(as_text=True)
    assert f'id="run-{first}"' in alone and "old.csv" in alone and "new0.csv" not in alone
    assert "There is no run 999999" in client.get("/history?run=999999").get_data(as_text=True)
    # an id no database row can have is a 404 from routing, never a 500 (OverflowError)
    assert client.get(f"/runs/{2**63}/results.csv").status_code == 404
    assert client.get("/runs/0/results.csv").status_code == 404


def test_only_the_latest_results_are_kept(db_app):
    client = db_app.test_client()
    urls = [upload(client, to_csv_bytes(make_batch_frame(2))).get_json()["results_url"]
            for _ in range(3)]
    assert client.get(urls[0]).status_code == 404  # RESULTS_KEEP = 2
    assert client.get(urls[2]).status_code == 200


def test_models_page_tracks_the_recent_flag_rate_against_the_target(db_app):
    client = db_app.test_client()
    assert "No runs of this model on this server yet" in client.get("/models").get_data(as_text=True)
    body = upload(client, to_csv_bytes(make_batch_frame(8))).get_json()
    upload(client, to_csv_bytes(make_batch_frame(8)), threshold="0")  # not at the default
    labelled = upload(client, to_csv_bytes(make_batch_frame(6, labels=True))).get_json()
    with db_app.app_context():
        recent = db.recent_flag_rate("sensor", body["model"])
    assert recent == {"runs": [body["run_id"]], "rows": 8, "flagged": body["n_flagged"],
                      "rate": body["n_flagged"] / 8, "left_out": [labelled["run_id"]],
                      "other_threshold": 1}
    html = client.get("/models").get_data(as_text=True)
    assert f"flagged <strong>{100 * recent['rate']:.1f}%</strong> of 8" in html
