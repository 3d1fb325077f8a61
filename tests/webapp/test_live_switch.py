"""The live switch: a version set live through one worker is served by another within
LIVE_CHECK_SECONDS, without a restart; a rollback likewise; every run records its version."""
from __future__ import annotations

import io
import json
import shutil
import time

import pytest

from pipelines.core import locations
from pipelines.core.versions import version_id
from tests.conftest import make_batch_frame, sqlite_url, to_csv_bytes
from webapp import create_app, db
from webapp.db import upgrade

ARTIFACTS = locations.artifacts_dir({})


@pytest.fixture
def two_workers(tmp_path):
    """Two apps on one database and one model store, as two gunicorn workers are."""
    store = tmp_path / "store"
    candidate = store / "sensor" / "candidate"
    shutil.copytree(ARTIFACTS / "sensor", candidate)
    manifest = candidate / "xgboost" / "manifest.json"
    bundle = json.loads(manifest.read_text())
    bundle["threshold"]["value"] = 0.9  # a stricter candidate: a different version
    manifest.write_text(json.dumps(bundle))
    (candidate / "source.json").write_text(json.dumps({"source": "test candidate"}))
    upgrade(sqlite_url(tmp_path))
    config = {"TESTING": True, "DATABASE_URL": sqlite_url(tmp_path), "MODEL_STORE": str(store),
              "LIVE_CHECK_SECONDS": 0.2}
    return create_app(config), create_app(config), version_id(candidate)


def predict(app) -> dict:
    return app.test_client().post("/api/v1/sensor/predict", data={
        "file": (io.BytesIO(to_csv_bytes(make_batch_frame(4))), "w.csv")},
        content_type="multipart/form-data").get_json()


def until(check, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not seen in time"
        time.sleep(0.1)


def test_a_switch_through_one_worker_is_served_by_the_other_and_rolled_back(two_workers):
    first, second, candidate = two_workers
    committed = version_id(ARTIFACTS / "sensor")
    listing = first.test_client().get("/api/v1/registry/sensor").get_json()
    assert [v["id"] for v in listing["versions"]] == [committed, candidate]
    assert listing["live"] == committed and listing["versions"][0]["live"]
    before = predict(second)
    assert before["release"] == committed and before["default_threshold"] != 0.9

    switched = first.test_client().post("/api/v1/registry/sensor/live", json={
        "version": candidate, "reason": "stricter threshold for lot 7"})
    assert switched.status_code == 200 and switched.get_json()["live"] == candidate
    until(lambda: predict(second)["release"] == candidate)
    answer = predict(second)
    assert answer["default_threshold"] == 0.9
    with second.app_context():
        run = db.recent_runs()[0]
        history = db.live_history("sensor")
    assert run["release"] == candidate and run["default_threshold"] == 0.9
    assert (history[0]["version"], history[0]["reason"]) == (candidate, "stricter threshold "
                                                                        "for lot 7")
    assert history[0]["user"]  # who

    first.test_client().post("/api/v1/registry/sensor/live", json={
        "version": committed, "reason": "rollback"})
    until(lambda: predict(second)["release"] == committed)


def test_an_unknown_version_or_module_is_refused(two_workers):
    first, _, _ = two_workers
    client = first.test_client()
    bad = client.post("/api/v1/registry/sensor/live", json={"version": "nope", "reason": "x"})
    assert bad.status_code == 400 and "has no version 'nope'" in bad.get_json()["message"]
    assert client.post("/api/v1/registry/sensor/live", json={"version": "x"}).status_code == 400
    assert client.get("/api/v1/registry/nosuch").status_code == 404


def test_the_registry_page_switches_and_rolls_back(two_workers):
    first, second, candidate = two_workers
    committed = version_id(ARTIFACTS / "sensor")
    client = first.test_client()
    html = client.get("/registry").get_data(as_text=True)
    assert f'id="version-sensor-{candidate}"' in html and "Never switched" in html
    assert f'value="{candidate}"' in html  # a Make live form for the candidate
    refused = client.post("/registry/sensor/live", data={"version": candidate, "reason": ""},
                          follow_redirects=True)
    assert "say why (a reason is required" in refused.get_data(as_text=True)
    done = client.post("/registry/sensor/live", data={"version": candidate,
                                                      "reason": "lot 7"}, follow_redirects=True)
    page = done.get_data(as_text=True)
    assert f"version {candidate} is live" in page and ": lot 7" in page
    until(lambda: predict(second)["release"] == candidate)
    client.post("/registry/sensor/live", data={"version": committed, "reason": "rollback"})
    until(lambda: predict(second)["release"] == committed)
