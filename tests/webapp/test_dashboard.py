"""The dashboard API (``GET /api/v1/dashboard``, webapp/dashboard.py) and the home page that
draws it: per-day counts of successful runs, the days range, drift points in time order,
registry events, versions and the headline metric as the Models page card holds them."""
from __future__ import annotations

import json
from datetime import datetime, time, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from pipelines.core.versions import version_id
from tests.conftest import sqlite_url
from webapp import create_app, db
from webapp.db import upgrade
from webapp.pages import recalibration_check
from webapp.predictors import get_predictor

MODULE, MODEL = "sensor", "xgboost"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    url = sqlite_url(tmp_path_factory.mktemp("dashboard"))
    upgrade(url)
    return create_app({"TESTING": True, "DATABASE_URL": url})


@pytest.fixture
def client(app):
    with app.app_context():  # every test starts with no runs and no registry changes
        with db.engine().begin() as conn:
            for table in (db.shadow_scores, db.run_downloads, db.run_results, db.runs,
                          db.registry_events):
                conn.execute(delete(table))
    return app.test_client()


def today() -> datetime:
    return datetime.combine(datetime.now(timezone.utc).date(), time.min, tzinfo=timezone.utc)


def seed(app, created: datetime, rows: int, flagged: int, *, status: str = "ok",
         drift: dict | None = None, module: str = MODULE, threshold: float | None = None,
         default_threshold: float | None = None) -> int:
    """One run recorded the way the app records it, then moved to ``created``."""
    with app.test_request_context():
        run_id = db.record_run(module, MODEL, "v1", "seed.csv", rows, flagged, threshold,
                               default_threshold=default_threshold, status=status,
                               error="boom" if status != "ok" else None, user="tester",
                               drift=drift)
        with db.engine().begin() as conn:
            conn.execute(update(db.runs).where(db.runs.c.id == run_id).values(created=created))
    return run_id


def psi(value: float) -> dict:
    return {"statistic": "psi", "value": value, "level": 0.25, "alert": value >= 0.25,
            "summary": f"PSI {value}", "detail": {}}


def module_part(body: dict, name: str = MODULE) -> dict:
    return next(m for m in body["modules"] if m["name"] == name)


def test_runs_per_day_counts_and_flagged_share_exactly(app, client):
    day0 = today()
    seed(app, day0 + timedelta(hours=1), 100, 5)
    seed(app, day0 + timedelta(hours=23, minutes=59), 50, 10)
    seed(app, day0 - timedelta(days=2) + timedelta(hours=12), 40, 4)
    seed(app, day0 - timedelta(days=4), 10, 1)  # midnight of the first day: inside
    seed(app, day0 - timedelta(days=4, seconds=1), 999, 999)  # a second before: outside
    seed(app, day0 - timedelta(days=2, hours=-3), 30, 30, status="failed")  # never counted
    seed(app, day0 + timedelta(hours=2), 7, 7, module="wafermap")  # another module's

    body = client.get("/api/v1/dashboard?days=5").get_json()
    assert body["days"] == 5
    assert body["first"] == (day0 - timedelta(days=4)).date().isoformat()
    assert body["last"] == day0.date().isoformat()
    daily = module_part(body)["daily"]
    assert [d["date"] for d in daily] == [(day0 - timedelta(days=4 - i)).date().isoformat()
                                          for i in range(5)]
    assert [(d["runs"], d["items"], d["flagged"]) for d in daily] == [
        (1, 10, 1), (0, 0, 0), (1, 40, 4), (0, 0, 0), (2, 150, 15)]
    assert [d["flagged_share"] for d in daily] == [0.1, None, 0.1, None, 0.1]
    assert module_part(body)["totals"] == {"runs": 4, "items": 200, "flagged": 20,
                                           "flagged_share": 0.1}
    assert [(d["runs"], d["items"]) for d in module_part(body, "wafermap")["daily"]][-1] == (1, 7)


def test_failed_runs_are_not_counted(app, client):
    seed(app, today() + timedelta(hours=1), 20, 3)
    seed(app, today() + timedelta(hours=2), 80, 80, status="failed", drift=psi(0.9))
    part = module_part(client.get("/api/v1/dashboard?days=1").get_json())
    assert part["daily"] == [{"date": today().date().isoformat(), "runs": 1, "items": 20,
                              "flagged": 3, "flagged_share": 0.15}]
    assert part["drift"]["points"] == []


def test_default_is_thirty_days(app, client):
    seed(app, today() - timedelta(days=29), 4, 1)
    seed(app, today() - timedelta(days=30), 4, 1)
    body = client.get("/api/v1/dashboard").get_json()
    assert body["days"] == 30 and len(module_part(body)["daily"]) == 30
    assert module_part(body)["totals"]["runs"] == 1


@pytest.mark.parametrize("days", ["0", "366", "abc", "", "-3", "2.5", "1e2"])
def test_days_outside_one_to_365_is_a_400_naming_days(client, days):
    response = client.get(f"/api/v1/dashboard?days={days}")
    assert response.status_code == 400
    message = response.get_json()["message"]
    assert message.startswith("days ") and "1 to 365" in message


@pytest.mark.parametrize("days", ["1", "365"])
def test_the_range_ends_are_allowed(client, days):
    response = client.get(f"/api/v1/dashboard?days={days}")
    assert response.status_code == 200
    assert len(module_part(response.get_json())["daily"]) == int(days)


def test_drift_points_come_back_in_time_order(app, client):
    day0 = today()
    late = seed(app, day0 + timedelta(hours=3), 10, 1, drift=psi(0.3))  # recorded first
    early = seed(app, day0 - timedelta(days=1), 10, 1, drift=psi(0.1))
    middle = seed(app, day0 + timedelta(hours=1), 10, 1, drift=psi(0.2))
    seed(app, day0 + timedelta(hours=2), 10, 1)  # no drift stored: no point
    seed(app, day0 - timedelta(days=9), 10, 1, drift=psi(0.05))  # before the days asked
    drift = module_part(client.get("/api/v1/dashboard?days=3").get_json())["drift"]
    assert drift["statistic"] == "psi" and drift["level"] == 0.25
    assert [(p["run"], p["value"], p["alert"]) for p in drift["points"]] == [
        (early, 0.1, False), (middle, 0.2, False), (late, 0.3, True)]
    created = [datetime.fromisoformat(p["created"]) for p in drift["points"]]
    assert created == sorted(created) and all(c.tzinfo is not None for c in created)
    assert created[0] == day0 - timedelta(days=1)


def test_registry_events_versions_and_headline(app, client):
    committed = version_id(Path(app.config["ARTIFACTS_DIR"]) / MODULE)
    part = module_part(client.get("/api/v1/dashboard").get_json())
    assert part["version"] == {"live": committed, "live_source": "committed",
                               "serving": committed}
    assert part["events"] == []
    with app.test_request_context():
        db.set_live(MODULE, committed, reason="back to the release")
        db.record_registry_event(MODULE, "threshold", "abcdef123456", model=MODEL,
                                 base_version=committed, value=0.5, previous=0.41,
                                 reason="fewer alarms")
    part = module_part(client.get("/api/v1/dashboard").get_json())
    assert part["version"]["live"] == committed and part["version"]["live_source"] == "registry"
    assert [(e["kind"], e["version"], e["reason"]) for e in part["events"]] == [
        ("threshold", "abcdef123456", "fewer alarms"), ("live", committed, "back to the release")]
    assert all(datetime.fromisoformat(e["created"]).tzinfo for e in part["events"])
    assert "module" not in part["events"][0] and part["events"][0]["user"]

    with app.app_context():
        card = next(c for c in get_predictor(MODULE).cards() if c["default"])
    column = next(c for c in card["columns"] if not c["optimistic"])
    head = part["headline"]
    assert head["model"] == card["name"] and head["protocol"] == column["label"]
    assert head["value"] == column["metrics"][head["metric"]]["value"]
    assert head["label"] == column["metrics"][head["metric"]]["label"]
    assert part["models_url"].endswith(f"#model-{MODULE}-{card['name']}")


def test_flag_rate_is_the_models_page_check(app, client):
    with app.app_context():
        predictor = get_predictor(MODULE)
        card = next(c for c in predictor.cards() if c["default"])
    t = card["threshold"]["value"]
    seed(app, today() + timedelta(hours=1), 200, 30, threshold=t, default_threshold=t)
    seed(app, today() + timedelta(hours=2), 100, 90, threshold=0.9, default_threshold=t)
    part = module_part(client.get("/api/v1/dashboard").get_json())
    with app.app_context():
        expected = recalibration_check(MODULE, card, predictor.recalibrate_command)
    assert part["flag_rate"] == json.loads(json.dumps(expected)) | {"model": card["name"]}
    assert (part["flag_rate"]["rows"], part["flag_rate"]["flagged"]) == (200, 30)
    assert part["flag_rate"]["check"]["verdict"] == "higher"  # 15% against a 5% target


def test_no_runs_gives_empty_series_not_an_error(client):
    body = client.get("/api/v1/dashboard?days=7").get_json()
    for part in body["modules"]:
        assert [d["runs"] for d in part["daily"]] == [0] * 7
        assert part["flag_rate"] is None and part["drift"]["points"] == []


def test_the_api_is_described_in_openapi(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    operation = doc["paths"]["/api/v1/dashboard"]["get"]
    days = next(p for p in operation["parameters"] if p["name"] == "days")
    assert days["in"] == "query"
    assert "400" in operation["responses"]


def test_home_page_renders_the_dashboard_containers(app, client):
    page = client.get("/?days=7").get_data(as_text=True)
    assert 'id="dashboard"' in page and 'data-api="/api/v1/dashboard"' in page
    assert 'data-days="7"' in page and '<option value="7" selected>' in page
    assert 'src="/static/js/dashboard.js"' in page and "plotly.min.js" in page
    from webapp.registry import registered

    for spec in registered():
        assert spec.title in page  # every module card stays, soon ones too
        ready = f'id="dash-{spec.name}"' in page
        assert ready == spec.ready
        if spec.ready:
            for part in ("runs", "drift"):
                assert f'id="dash-{spec.name}-{part}"' in page
    assert "<script>" not in page  # the CSP allows no inline script


def test_home_page_with_a_wrong_days_shows_the_default_and_why(client):
    response = client.get("/?days=abc")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'data-days="30"' in page and "days must be a whole number from 1 to 365" in page
