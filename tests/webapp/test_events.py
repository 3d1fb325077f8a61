"""Events as episodes: stored once per stretch, linked to their run, acknowledged one by one or
many at once (API and page), on SQLite and on PostgreSQL."""
from __future__ import annotations

import pytest

from webapp import create_app, db
from webapp.db import upgrade
from webapp.events import record_events


@pytest.fixture
def db_app(database_url):
    upgrade(database_url)
    return create_app({"TESTING": True, "DATABASE_URL": database_url})


def episode(machine, first, last, score=0.9, **extra):
    return {"machine_id": machine, "first_cycle": first, "last_cycle": last,
            "peak_cycle": last, "n_cycles": int(last - first + 1), "score": score,
            "threshold": 0.5, "rul": 12.0, "model": "xgboost_eol", "model_version": "v1",
            **extra}


def stored(app, machines=("A", "B", "C", "D")):
    with app.app_context():
        run = db.record_run("timeseries", "xgboost_eol", "v1", "f.txt", 100, 10, 0.5)
        counts = record_events("timeseries", [episode(m, 10 + k, 20 + k)
                                              for k, m in enumerate(machines)], run_id=run)
    assert counts == {"events": len(machines), "new": len(machines), "extended": 0}
    return run


def test_the_same_episodes_again_are_not_stored_twice(db_app):
    run = stored(db_app)
    with db_app.app_context():
        again = record_events("timeseries", [episode("A", 10, 20), episode("B", 11, 25),
                                             episode("A", 10, 20, model_version="v2")])
    # A: already stored; B: the same start, more cycles: carried on; v2: another model version
    assert again == {"events": 3, "new": 1, "extended": 1}
    events = db_app.test_client().get("/api/v1/events").get_json()["events"]
    assert len(events) == 5
    b = next(e for e in events if e["machine_id"] == "B")
    assert (b["last_cycle"], b["n_cycles"], b["run_id"]) == (25, 15, run) and b["updated"]


def test_many_events_are_acknowledged_at_once_by_the_api(db_app):
    stored(db_app)
    client = db_app.test_client()
    ids = [e["id"] for e in client.get("/api/v1/events").get_json()["events"]]
    body = client.post("/api/v1/events/acknowledge", json={"ids": ids[:2]}).get_json()
    assert body["acknowledged"] == 2 and [e["id"] for e in body["events"]] == sorted(ids[:2])
    assert all(e["acknowledged"] and e["acknowledged_at"] for e in body["events"])
    first_time = {e["id"]: e["acknowledged_at"] for e in body["events"]}
    # one already acknowledged: counted once, its first time kept
    again = client.post("/api/v1/events/acknowledge", json={"ids": ids[1:3]}).get_json()
    assert again["acknowledged"] == 1
    assert {e["id"]: e["acknowledged_at"] for e in again["events"]}[ids[1]] == first_time[ids[1]]
    # an id that names no event: 404 naming it, nothing changed
    missing = client.post("/api/v1/events/acknowledge", json={"ids": [ids[3], 999999]})
    assert missing.status_code == 404 and "999999" in missing.get_json()["message"]
    assert client.get("/api/v1/events?acknowledged=false").get_json()["total"] == 1
    for bad in [{}, {"ids": []}, {"ids": "1,2"}, {"ids": [True]}, {"ids": ["1"]}, {"ids": [0]},
                {"ids": [1], "also": 2}, {"ids": list(range(1, 1002))}]:
        response = client.post("/api/v1/events/acknowledge", json=bad)
        assert response.status_code == 400, bad
        assert response.get_json()["message"].startswith(("ids", "also")), bad
    assert client.post("/api/v1/events/acknowledge", data=b"{").status_code == 400


def test_the_page_acknowledges_the_ticked_events_and_links_each_to_its_run(db_app):
    run = stored(db_app)
    client = db_app.test_client()
    events = client.get("/api/v1/events").get_json()["events"]
    html = client.get("/history/events").get_data(as_text=True)
    assert html.count('class="ev-select"') == 4 and "Acknowledge selected" in html
    assert f'href="/history?run={run}#run-{run}">run {run}</a>' in html
    assert "11 cycles" in html and "at cycle 20" in html
    assert 'href="/history/events" aria-current="page">Events</a>' in html  # in the navigation
    ticked = [events[0]["id"], events[1]["id"]]
    response = client.post("/history/events/acknowledge",
                           data={"ids": [str(i) for i in ticked], "model": "xgboost_eol"})
    assert response.status_code == 302
    assert "model=xgboost_eol" in response.headers["Location"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "2 events acknowledged." in page and page.count('class="ev-select"') == 2
    once_more = client.post("/history/events/acknowledge", data={"ids": [str(ticked[0])]},
                            follow_redirects=True).get_data(as_text=True)
    assert "0 events acknowledged (1 already was)." in once_more
    nothing = client.post("/history/events/acknowledge", data={},
                          follow_redirects=True).get_data(as_text=True)
    assert "No events were selected" in nothing
    assert client.post("/history/events/acknowledge", data={"ids": ["x"]}).status_code == 400
    assert client.post("/history/events/acknowledge",
                       data={"ids": ["999999"]}).status_code == 404
    assert client.get("/api/v1/events?acknowledged=true").get_json()["total"] == 2


def test_one_event_and_one_cycle_read_in_the_singular(db_app):
    with db_app.app_context():
        record_events("timeseries", [episode("A", 7, 7)])
    html = db_app.test_client().get("/history/events").get_data(as_text=True)
    assert ">1 event<" in html and "1 cycle<" in html and "1 cycles" not in html
    assert "detect API" in html  # no run: said so, no link
