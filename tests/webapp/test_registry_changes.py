"""The registry's changes beyond the live switch (webapp/versions.py, webapp/shadow.py):
threshold changes make versions, shadow candidates score live requests beside the live
version without changing its answer, promotion and rollback are one step each, the server
refuses a candidate it has no room for, releases are added from a zip or the command line,
and every change is in the audit log with who and why; on SQLite and on PostgreSQL."""
from __future__ import annotations

import html
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipelines.core import locations
from pipelines.core.artifacts import read_manifest
from pipelines.core.versions import version_id
from tests.conftest import make_batch_frame, sqlite_url, to_csv_bytes
from webapp import create_app, db, shadow
from webapp.db import upgrade
from webapp.registry import ResultsDecision

ARTIFACTS = locations.artifacts_dir({})
COMMITTED = version_id(ARTIFACTS / "sensor")


@pytest.fixture
def app(tmp_path, database_url):
    """Every test here runs on SQLite and on the PostgreSQL server."""
    upgrade(database_url)
    app = create_app({"TESTING": True, "DATABASE_URL": database_url,
                      "MODEL_STORE": str(tmp_path / "store"), "LIVE_CHECK_SECONDS": 0.0})
    yield app
    shadow.shutdown(app)


def labelled_csv(n: int = 12) -> bytes:
    return to_csv_bytes(make_batch_frame(n, seed=3, labels=True))


def predict(client, data: bytes | None = None) -> dict:
    response = client.post("/api/v1/sensor/predict", data={
        "file": (io.BytesIO(data or labelled_csv()), "lot.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def threshold(client, value: float, **more) -> dict:
    response = client.post("/api/v1/registry/sensor/threshold",
                           json={"value": value, "reason": "fewer alarms on lot 7"} | more)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def sensor_threshold() -> float:
    return read_manifest(ARTIFACTS / "sensor" / "xgboost")["threshold"]["value"]


# -- thresholds ------------------------------------------------------------------------------------
def test_a_threshold_change_makes_a_live_version_recorded_in_the_audit_log(app):
    client = app.test_client()
    old = sensor_threshold()
    body = threshold(client, 0.8)
    new = body["created"]
    assert new != COMMITTED and body["live"] == new
    listed = {v["id"]: v for v in body["versions"]}
    assert listed[new]["models_detail"]["xgboost"]["threshold"] == 0.8
    assert listed[COMMITTED]["models_detail"]["xgboost"]["threshold"] == old
    section = read_manifest(Path(app.config["MODEL_STORE"]) / "sensor" / new / "xgboost")[
        "threshold"]
    assert section["changed"]["previous"] == old and section["changed"]["from_version"] == COMMITTED
    assert 0 <= section["target_false_alarm_rate"] <= 1
    answer = predict(client)
    assert answer["release"] == new and answer["default_threshold"] == 0.8
    events = client.get("/api/v1/registry/audit?module=sensor").get_json()["events"]
    assert [e["kind"] for e in events] == ["live", "threshold"]
    assert (events[1]["version"], events[1]["base_version"], events[1]["previous"],
            events[1]["value"], events[1]["reason"]) == (new, COMMITTED, old, 0.8,
                                                         "fewer alarms on lot 7")
    assert events[0]["user"] and "0.8" in events[0]["reason"]
    page = client.get("/registry/audit").get_data(as_text=True)
    assert f"<code>{new}</code>" in page and "fewer alarms on lot 7" in page
    # the same change again finds the same version
    assert threshold(client, 0.8, version=COMMITTED)["created"] == new


def test_a_threshold_change_of_a_version_that_is_not_live_stays_off(app):
    client = app.test_client()
    first = threshold(client, 0.7)["created"]
    second = threshold(client, 0.9, version=COMMITTED)  # the committed one is no longer live
    assert second["live"] == first and second["created"] != first
    assert threshold(client, 0.95, live=False)["live"] == first


@pytest.mark.parametrize("body, needle", [
    ({"value": 7.0}, "outside the scores"),
    ({"value": "nan"}, "finite"),
    ({"value": 0.5, "model": "nosuch"}, "has no model 'nosuch'"),
    ({"value": 0.5, "version": "abc"}, "has no version 'abc'"),
    ({"value": 0.5, "reason": ""}, "reason"),
])
def test_a_wrong_threshold_change_is_a_400_naming_it(app, body, needle):
    response = app.test_client().post("/api/v1/registry/sensor/threshold",
                                      json={"reason": "r"} | body)
    assert response.status_code == 400
    assert needle in response.get_json()["message"]
    with app.app_context():
        assert db.registry_log("sensor") == []


# -- shadow scoring ---------------------------------------------------------------------------------
def attach(client, version: str, module: str = "sensor"):
    return client.post(f"/api/v1/registry/{module}/shadow",
                       json={"version": version, "reason": "try the stricter one"})


def test_shadow_scores_are_stored_beside_the_live_ones_and_never_change_its_answer(app):
    client = app.test_client()
    candidate = threshold(client, 0.9, live=False)["created"]
    before = predict(client)
    assert attach(client, candidate).status_code == 200
    during = predict(client)
    shadow.drain(app)
    for key in ("run_id", "results_url"):
        before.pop(key), during.pop(key)
    assert during == before  # the live answer is the live version's, byte for byte
    with app.app_context():
        rows = db.shadow_runs("sensor", candidate)
    assert len(rows) == 1 and rows[0]["status"] == "ok"
    row = rows[0]
    assert row["n_items"] == before["n_items"] and row["threshold"] == 0.9
    assert row["n_flagged"] <= before["n_flagged"]  # stricter
    assert row["n_agree"] == before["n_items"] - (before["n_flagged"] - row["n_flagged"])
    assert row["labelled"]["n"] == 12 and row["labelled"]["classes"] == ["normal", "flagged"]
    assert np.asarray(row["labelled"]["live"]).sum() == 12
    listing = client.get("/api/v1/registry/sensor").get_json()
    assert listing["shadow"] == candidate
    assert [v["shadow"] for v in listing["versions"] if v["id"] == candidate] == [True]
    comparison = listing["comparison"]
    assert comparison["runs"] == 1 and comparison["items"] == 12
    assert comparison["live_flag_rate"] == before["n_flagged"] / 12
    assert comparison["labelled"]["items"] == 12 and "f1" in comparison["labelled"]["shadow"]
    assert comparison["lag_median_seconds"] >= 0
    csv = client.get(f"/api/v1/registry/shadow/{row['id']}/results.csv")
    assert csv.status_code == 200 and csv.data.count(b"\n") == 13
    page = client.get("/registry").get_data(as_text=True)
    assert 'id="comparison-sensor"' in page and f"Promote {candidate} to live" in page


def test_promote_is_one_step_and_rollback_another(app):
    client = app.test_client()
    candidate = threshold(client, 0.9, live=False)["created"]
    attach(client, candidate)
    promoted = client.post("/api/v1/registry/sensor/promote", json={"reason": "agrees"})
    body = promoted.get_json()
    assert body["live"] == candidate and body["shadow"] is None
    assert body["rollback_to"] == COMMITTED
    assert predict(client)["release"] == candidate
    with app.app_context():
        assert db.shadow_runs("sensor", candidate) == []  # live now: never scored twice
    page = client.post("/registry/sensor/live", data={"version": COMMITTED, "reason": "undo"},
                       follow_redirects=True).get_data(as_text=True)
    assert f"version {COMMITTED} is live" in page
    assert predict(client)["release"] == COMMITTED
    kinds = [e["kind"] for e in client.get("/api/v1/registry/audit").get_json()["events"]]
    assert kinds == ["live", "detach", "live", "shadow", "threshold"]


def test_a_second_candidate_is_refused_when_the_server_has_no_room(app):
    client = app.test_client()
    candidate = threshold(client, 0.9, live=False)["created"]
    assert attach(client, candidate).status_code == 200
    wafer = client.post("/api/v1/registry/wafermap/threshold",
                        json={"value": 0.5, "reason": "r", "live": False}).get_json()["created"]
    refused = attach(client, wafer, "wafermap")
    assert refused.status_code == 409
    message = refused.get_json()["message"]
    assert "holds 1 shadow candidate at once" in message and f"sensor ({candidate})" in message
    assert "detach" in message
    # the module's own candidate is replaced, not refused
    other = threshold(client, 0.95, live=False)["created"]
    assert attach(client, other).get_json()["shadow"] == other
    kinds = [e["kind"] for e in client.get("/api/v1/registry/audit").get_json()["events"]][:2]
    assert kinds == ["shadow", "detach"]
    assert client.post("/api/v1/registry/sensor/shadow/detach",
                       json={"reason": "done"}).get_json()["shadow"] is None
    assert attach(client, wafer, "wafermap").status_code == 200  # room again


def test_the_live_version_cannot_be_its_own_shadow_and_detach_needs_a_candidate(app):
    client = app.test_client()
    assert attach(client, COMMITTED).status_code == 409
    assert client.post("/api/v1/registry/sensor/shadow/detach",
                       json={"reason": "x"}).status_code == 409
    assert client.post("/api/v1/registry/sensor/promote", json={"reason": "x"}).status_code == 409


def test_a_request_too_large_to_copy_is_skipped_and_says_so(app):
    app.config["SHADOW_MAX_BYTES"] = 1000
    client = app.test_client()
    candidate = threshold(client, 0.9, live=False)["created"]
    attach(client, candidate)
    predict(client)
    with app.app_context():
        rows = db.shadow_runs("sensor", candidate)
    assert [r["status"] for r in rows] == ["skipped"]
    assert "larger than the 1,000 bytes" in rows[0]["error"]
    comparison = client.get("/api/v1/registry/sensor").get_json()["comparison"]
    assert comparison["skipped"] == 1 and comparison["runs"] == 0


def test_the_candidate_scores_only_when_the_worker_is_quiet(app):
    """A request still in flight holds the shadow thread back; past SHADOW_MAX_WAIT_SECONDS
    the copy is skipped, saying why; once the worker is quiet the candidate scores."""
    app.config["SHADOW_MAX_WAIT_SECONDS"] = 0.5
    client = app.test_client()
    candidate = threshold(client, 0.9, live=False)["created"]
    attach(client, candidate)
    quiet = app.extensions[shadow.QUIET]
    quiet.started()  # another client's long request
    try:
        predict(client)
        shadow.drain(app)
    finally:
        quiet.finished()
    predict(client)
    shadow.drain(app)
    with app.app_context():
        rows = db.shadow_runs("sensor", candidate)
    assert [r["status"] for r in rows] == ["ok", "skipped"]
    assert rows[1]["error"] == "the server was never idle within 0.5 s of the live answer"


def test_shadow_scoring_moves_the_metrics(app):
    client = app.test_client()
    candidate = threshold(client, 0.9, live=False)["created"]
    attach(client, candidate)

    def shadow_count() -> float:
        text = client.get("/metrics").get_data(as_text=True)
        for family in text_string_to_metric_families(text):
            if family.name == "fablens_shadow_runs":
                return sum(s.value for s in family.samples if s.name.endswith("_total")
                           and s.labels.get("version") == candidate
                           and s.labels.get("status") == "ok")
        return 0.0

    start = shadow_count()
    predict(client)
    shadow.drain(app)
    assert shadow_count() == start + 1


@pytest.mark.parametrize("module", ["wafermap", "timeseries", "inspection"])
def test_every_module_is_shadow_scored(app, module):
    """Each module's example request, scored by a threshold-changed copy of its release."""
    from webapp.registry import get_module
    from webapp.predictors import get_predictor

    client = app.test_client()
    with app.app_context():
        spec = get_module(module)
        example = spec.examples(get_predictor(module)).good
        live = get_predictor(module)
        model = read_manifest(ARTIFACTS / module)["default_model"]
    value = read_manifest(ARTIFACTS / module / model)["threshold"]["value"]
    created = client.post(f"/api/v1/registry/{module}/threshold", json={
        "value": value * 0.999, "reason": "r", "live": False}).get_json()["created"]
    assert attach(client, created, module).status_code == 200
    with app.test_request_context():
        from flask import url_for
        path = url_for(spec.predict)
    answer = client.post(path, data={"file": (io.BytesIO(example.data), example.filename)},
                         content_type="multipart/form-data")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    shadow.drain(app)
    with app.app_context():
        rows = db.shadow_runs(module, created)
    assert [r["status"] for r in rows] == ["ok"], rows
    assert rows[0]["n_items"] == answer.get_json()["n_items"]
    assert live.release_version != created


# -- comparing -------------------------------------------------------------------------------------
def frame_csv(**columns) -> bytes:
    import pandas as pd

    return pd.DataFrame(columns).to_csv(index=False).encode()


def test_compare_counts_agreement_and_both_sides_on_labelled_items():
    decision = ResultsDecision(flag="is_fault")
    live = frame_csv(is_fault=["True", "False", "True", "False"], label=["1", "0", "0", ""])
    cand = frame_csv(is_fault=["False", "False", "False", "False"], label=["1", "0", "0", ""])
    found = shadow.compare(live, cand, decision)
    assert found["agree"] == 2
    # labelled rows (truth, live, candidate): (1, 1, 0), (0, 0, 0), (0, 1, 0); the 4th has none
    assert found["labelled"] == {"n": 3, "classes": ["normal", "flagged"],
                                 "live": [[1, 1], [0, 1]], "shadow": [[2, 0], [1, 0]]}
    rows = [{"status": "ok", "n_items": 4, "n_agree": 2, "n_flagged": 0, "live_flagged": 2,
             "lag_seconds": 0.1, "error": None, "labelled": found["labelled"]},
            {"status": "skipped", "n_items": None, "n_agree": None, "n_flagged": None,
             "live_flagged": 9, "lag_seconds": None, "error": "busy", "labelled": None}]
    summary = shadow.summary(rows, decision)
    assert (summary["runs"], summary["skipped"], summary["items"]) == (1, 1, 4)
    assert summary["reasons"] == ["busy"]
    assert (summary["live_flag_rate"], summary["shadow_flag_rate"]) == (0.5, 0.0)
    assert summary["labelled"]["live"] == {"accuracy": 2 / 3, "precision": 0.5, "recall": 1.0,
                                           "f1": 2 / 3}
    assert summary["labelled"]["shadow"]["recall"] == 0.0
    assert summary["labelled"]["shadow"]["precision"] is None


def test_compare_a_multiclass_module_on_its_class_column():
    decision = ResultsDecision(flag="needs_review", below=True, predicted="class")
    live = frame_csv(needs_review=["False", "True", "False"], **{"class": ["Edge", "Loc", "none"]},
                     label=["Edge", "Loc", "Loc"])
    cand = frame_csv(needs_review=["False", "False", "False"], **{"class": ["Edge", "Loc", "Loc"]},
                     label=["Edge", "Loc", "Loc"])
    found = shadow.compare(live, cand, decision)
    assert found["agree"] == 2 and found["labelled"]["classes"] == ["Edge", "Loc", "none"]
    summary = shadow.summary([{"status": "ok", "n_items": 3, "n_agree": 2, "n_flagged": 0,
                               "live_flagged": 1, "lag_seconds": 0.5, "error": None,
                               "labelled": found["labelled"]}], decision)
    assert summary["labelled"]["live"]["accuracy"] == pytest.approx(2 / 3)
    assert summary["labelled"]["shadow"]["accuracy"] == 1.0
    assert summary["labelled"]["shadow"]["macro_f1"] == 1.0
    assert summary["agreement"] == pytest.approx(2 / 3)


def test_compare_refuses_answers_of_different_lengths():
    decision = ResultsDecision(flag="is_fault")
    with pytest.raises(ValueError, match="scored 1 items where the live version scored 2"):
        shadow.compare(frame_csv(is_fault=["True", "False"]), frame_csv(is_fault=["True"]),
                       decision)


# -- adding releases ---------------------------------------------------------------------------------
def release_zip(folder: Path, top: str = "sensor", change=None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                if change:
                    data = change(path, data)
                archive.writestr(f"{top}/{path.relative_to(folder)}", data)
    return buffer.getvalue()


def trained_copy(tmp_path: Path, value: float = 0.77) -> Path:
    out = tmp_path / "trained" / "sensor"
    shutil.copytree(ARTIFACTS / "sensor", out)
    manifest = json.loads((out / "xgboost" / "manifest.json").read_text())
    manifest["threshold"]["value"] = value
    (out / "xgboost" / "manifest.json").write_text(json.dumps(manifest))
    return out


@pytest.fixture
def admin(tmp_path):
    """A client acting as an admin (by token) on an app with accounts on, and an engineer's
    headers on the same app."""
    from webapp import accounts

    url = sqlite_url(tmp_path / "accounts")
    upgrade(url)
    app = create_app({"TESTING": True, "DATABASE_URL": url, "AUTH": "on",
                      "MODEL_STORE": str(tmp_path / "store")})
    with app.app_context():
        accounts.create_user("ada", "admin", "password-ada")
        accounts.create_user("eve", "engineer", "password-eve")
        tokens = {name: accounts.create_token(name)[1] for name in ("ada", "eve")}
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {tokens['ada']}"
    client.app_ref = app
    client.engineer = {"Authorization": f"Bearer {tokens['eve']}"}
    return client


def upload(client, data: bytes, name: str = "release.zip", headers=None):
    return client.post("/registry/sensor/upload", data={"release": (io.BytesIO(data), name)},
                       content_type="multipart/form-data", follow_redirects=True,
                       headers=headers)


def test_an_uploaded_release_becomes_a_version_that_is_not_live(admin, tmp_path):
    client = admin
    folder = trained_copy(tmp_path)
    page = upload(client, release_zip(folder)).get_data(as_text=True)
    new = version_id(folder)
    assert f"version {new} added" in page
    listing = client.get("/api/v1/registry/sensor").get_json()
    assert listing["live"] == COMMITTED
    added = next(v for v in listing["versions"] if v["id"] == new)
    assert added["source"] == "uploaded by ada (token 1)"
    # an engineer may not add releases (the access table: admin only)
    refused = client.post("/registry/sensor/upload", headers=client.engineer,
                          data={"release": (io.BytesIO(b"x"), "r.zip")})
    assert refused.status_code == 403


@pytest.mark.parametrize("case, needle", [
    ("hash", "does not match the sha256"),
    ("module", "a release of 'wafermap', not of 'sensor'"),
    ("traversal", "climbs out"),
    ("nomanifest", "no manifest.json"),
])
def test_a_bad_release_archive_is_refused_naming_why(admin, tmp_path, case, needle):
    client, app = admin, admin.app_ref
    folder = trained_copy(tmp_path)
    if case == "hash":
        data = release_zip(folder, change=lambda p, d: d + b"x" if p.name == "model.ubj" else d)
    elif case == "module":
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["module"] = "wafermap"
        (folder / "manifest.json").write_text(json.dumps(manifest))
        data = release_zip(folder)
    elif case == "traversal":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("../evil.json", "{}")
        data = buffer.getvalue()
    else:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("x/model.ubj", (folder / "xgboost" / "model.ubj").read_bytes())
        data = buffer.getvalue()
    page = html.unescape(upload(client, data).get_data(as_text=True))
    assert needle in page, page[-2000:]
    assert "/tmp" not in page
    store = Path(app.config["MODEL_STORE"]) / "sensor"
    assert not store.exists() or not [p for p in store.iterdir() if not p.name.startswith(".")]


def test_the_command_line_adds_a_training_output_folder(app, tmp_path):
    folder = trained_copy(tmp_path, 0.66)
    result = app.test_cli_runner().invoke(args=["registry", "add", "sensor", str(folder)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == version_id(folder)
    bad = app.test_cli_runner().invoke(args=["registry", "add", "wafermap", str(folder)])
    assert bad.exit_code != 0 and "not of 'wafermap'" in bad.output
