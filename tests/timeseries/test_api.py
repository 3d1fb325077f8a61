"""The time-series API and events: a history file in (C-MAPSS text or CSV), per-cycle scores
out; detect and batch; bad input gets a 400 naming the problem; every flagged window becomes
an event, stored through the migrations on SQLite and on PostgreSQL, filtered, acknowledged
and downloaded."""
from __future__ import annotations

import csv
import gzip
import io
import json

import numpy as np
import pytest

from pipelines.timeseries.examples import history_csv, synthetic_history
from pipelines.timeseries.ingest import write_cmapss
from webapp import create_app, db
from webapp.db import upgrade
from webapp.predictors import get_predictor


@pytest.fixture
def db_app(database_url):
    """The app on SQLite and on PostgreSQL (the events table comes through the migrations)."""
    upgrade(database_url)
    return create_app({"TESTING": True, "DATABASE_URL": database_url})


@pytest.fixture
def scaler(app):
    with app.app_context():
        return get_predictor("timeseries").scaler


def upload(client, data: bytes, name: str, **fields):
    url = "/api/v1/timeseries/predict" + ("?format=csv" if fields.pop("csv", False) else "")
    return client.post(url, data={"file": (io.BytesIO(data), name), **fields},
                       content_type="multipart/form-data")


def rows_of(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def windows_of(scaler, n=2, seed=0):
    history = synthetic_history(scaler, n, seed=seed, min_cycles=60, max_cycles=60)
    return [history["values"][k * 60:(k + 1) * 60][-30:].tolist() for k in range(n)]


def test_a_cmapss_file_scores_every_cycle_and_stores_flagged_windows_as_events(db_app, scaler,
                                                                               tmp_path):
    history = synthetic_history(scaler, 3, seed=2)
    units = np.array([int(m.split("-")[1]) for m in history["machine"]])
    path = tmp_path / "test_FD001.txt"
    write_cmapss(path, units, history["cycle"], np.zeros((len(units), 3)), history["values"])
    client = db_app.test_client()
    body = upload(client, gzip.compress(path.read_bytes()), "test_FD001.txt.gz",
                  values="1").get_json()
    assert body["layout"] == "cmapss" and body["n_rows"] == len(units)
    assert len(body["predictions"]) == len(units) and len(body["machines"]) == 3
    machine = body["machines"][0]
    assert len(machine["scores"]) == machine["n_cycles"] and set(machine["values"]) == \
        set(body["sensors"])
    # generated machines run to failure: the end of each is flagged, the start is not
    assert all(m["n_flagged"] > 0 and m["last_rul"] < 60 for m in body["machines"])
    # one event per machine per unbroken stretch of flagged cycles, not one per cycle
    stretches = stretches_of(body["predictions"])
    assert body["n_events"] == body["n_events_new"] == len(stretches) < body["n_flagged"]
    with db_app.app_context():
        events = client.get("/api/v1/events?limit=1000").get_json()
        run = db.recent_runs()[0]
    assert events["total"] == len(stretches)
    assert sum(e["n_cycles"] for e in events["events"]) == body["n_flagged"]
    for e in events["events"]:
        cycles, scores = stretches[(e["machine_id"], e["first_cycle"])]
        assert (e["last_cycle"], e["n_cycles"]) == (cycles[-1], len(cycles))
        assert e["score"] == pytest.approx(max(scores), abs=1e-6)
        assert e["peak_cycle"] == cycles[int(np.argmax(scores))]
    assert {e["run_id"] for e in events["events"]} == {run["id"]}
    assert {e["run_url"] for e in events["events"]} == {f"/history?run={run['id']}#run-{run['id']}"}
    assert f'id="run-{run["id"]}"' in client.get("/history").get_data(as_text=True)
    # the event's time is the time the run was made
    assert {e["created"] for e in events["events"]} == {run["created"].isoformat()}
    assert {e["model"] for e in events["events"]} == {body["model"]}
    again = rows_of(client.get(body["results_url"]))
    assert len(again) == len(units)
    assert sum(r["is_anomaly"] == "True" for r in again) == body["n_flagged"]
    # scoring the same history again with the same model version stores nothing new
    second = upload(client, gzip.compress(path.read_bytes()), "test_FD001.txt.gz").get_json()
    assert second["run_id"] != body["run_id"] and second["n_events"] == len(stretches)
    assert second["n_events_new"] == second["n_events_extended"] == 0
    assert client.get("/api/v1/events").get_json()["total"] == len(stretches)


def stretches_of(predictions: list[dict]) -> dict:
    """``(machine, first cycle) -> (cycles, scores)`` of each unbroken run of flagged rows."""
    out, current = {}, None
    for k, p in enumerate(predictions):
        same = k and predictions[k - 1]["machine_id"] == p["machine_id"] and \
            predictions[k - 1]["is_anomaly"]
        if p["is_anomaly"]:
            if not same:
                current = out.setdefault((p["machine_id"], p["cycle"]), ([], []))
            current[0].append(p["cycle"])
            current[1].append(p["score"])
    return out


def test_a_longer_history_carries_its_stretch_on_and_dated_rows_name_their_times(db_app,
                                                                                 scaler):
    """The same machines scored again with more cycles: each stretch reaching the end of the
    shorter file is the same event, carried on (no new one); a dated file keys events by
    their first time, and the events page shows the times and the cycle counts."""
    history = synthetic_history(scaler, 2, seed=5, min_cycles=120, max_cycles=120)
    start = np.datetime64("2026-01-01T00:00")
    dates = [str(start + np.timedelta64(int(c), "h")) for c in history["cycle"]]
    text = history_csv(history, time_column="time")
    lines = text.splitlines()
    dated = [lines[0]] + [",".join([row.split(",")[0], d, *row.split(",")[2:]])
                          for row, d in zip(lines[1:], dates)]
    keep = [k for k, c in enumerate(history["cycle"]) if c <= 110]  # the first 110 per machine
    short = "\n".join([dated[0]] + [dated[k + 1] for k in keep]) + "\n"
    client = db_app.test_client()
    first = upload(client, short.encode(), "plant.csv", time_column="time").get_json()
    assert first["n_events_new"] == first["n_events"] > 0
    before = {e["id"]: e for e in client.get("/api/v1/events").get_json()["events"]}
    full = "\n".join(dated) + "\n"
    second = upload(client, full.encode(), "plant.csv", time_column="time").get_json()
    after = {e["id"]: e for e in client.get("/api/v1/events").get_json()["events"]}
    assert second["n_events_extended"] > 0
    assert len(after) == len(before) + second["n_events_new"]
    grown = [i for i in before if after[i]["n_cycles"] > before[i]["n_cycles"]]
    assert len(grown) == second["n_events_extended"]
    for i in grown:
        assert after[i]["first_timestamp"] == before[i]["first_timestamp"]
        assert after[i]["last_timestamp"] > before[i]["last_timestamp"]
        assert after[i]["updated"] and after[i]["run_id"] == first["run_id"]
    e = after[grown[0]]
    assert e["first_timestamp"].startswith("2026-01-") and e["last_cycle"] > e["first_cycle"]
    html = client.get("/history/events").get_data(as_text=True)
    assert f"{e['n_cycles']} cycles" in html and e["first_timestamp"] in html
    assert "1 cycles" not in html and "carried on" in html
    # a third time: nothing new, nothing carried on
    third = upload(client, full.encode(), "plant.csv", time_column="time").get_json()
    assert third["n_events_new"] == third["n_events_extended"] == 0


def test_training_engines_are_marked_in_sample_even_renumbered(db_app, data_dir, scaler,
                                                               tmp_path):
    """Engines 1 and 2 of train_FD001 (2 renumbered 502) are in-sample; a new engine is not."""
    lines = gzip.decompress((data_dir / "cmapss" / "train_FD001.txt.gz").read_bytes()) \
        .decode().splitlines()
    first = [line for line in lines if line.split()[0] == "1"]
    second = [" ".join(["502", *line.split()[1:]]) for line in lines if line.split()[0] == "2"]
    history = synthetic_history(scaler, 1, seed=3)
    path = tmp_path / "new.txt"
    write_cmapss(path, np.full(len(history["machine"]), 7), history["cycle"],
                 np.zeros((len(history["machine"]), 3)), history["values"])
    text = "\n".join([*first, *second, path.read_text().strip()]) + "\n"
    client = db_app.test_client()
    body = upload(client, text.encode(), "mixed.txt").get_json()
    marked = {m["machine_id"]: m["in_sample"] for m in body["machines"]}
    assert marked == {"1": True, "502": True, "7": False}
    assert body["n_in_sample"] == 2 and len(body["warnings"]) == 1
    assert body["warnings"][0].startswith("2 machines (1, 502) are engines of NASA C-MAPSS FD001")
    with db_app.app_context():
        assert db.recent_runs()[0]["warnings"] == body["warnings"][0]  # History shows it
        # engines run to failure hold faults: the false-alarm check leaves the run out
        assert db.recent_runs()[0]["labelled_faulty"] == 2
    alone = upload(client, path.read_bytes(), "new.txt").get_json()
    assert alone["warnings"] == [] and alone["machines"][0]["in_sample"] is False
    with db_app.app_context():
        assert db.recent_runs()[0]["labelled_faulty"] is None


def test_a_csv_with_chosen_columns_and_the_results_csv(client, scaler):
    history = synthetic_history(scaler, 2, seed=4, min_cycles=40, max_cycles=50)
    text = history_csv(history, machine_column="asset", time_column="t")
    response = upload(client, text.encode(), "plant.csv", csv=True, machine_column="asset",
                      time_column="t", model="isolation_forest", threshold="0.5")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = rows_of(response)
    assert len(rows) == len(history["machine"])
    assert {r["threshold"] for r in rows} == {"0.5"}
    assert rows[0]["padded_window"] == "True" and rows[40]["padded_window"] == "False"
    assert all(r["is_anomaly"] == str(float(r["score"]) >= 0.5) for r in rows)


def test_detect_and_batch(client, scaler):
    windows = windows_of(scaler, 3)
    one = client.post("/api/v1/timeseries/detect", json={
        "machine_id": "engine-1", "window": windows[0], "timestamp": "2026-11-24T08:00:00Z"})
    assert one.status_code == 200, one.get_json()
    body = one.get_json()
    assert {"anomaly_score", "is_anomaly", "threshold", "rul", "model_version",
            "processing_time_ms"} <= set(body)
    assert body["is_anomaly"] == (body["anomaly_score"] >= body["threshold"])
    batch = client.post("/api/v1/timeseries/detect/batch", json={
        "windows": [{"machine_id": f"e{k}", "window": w, "cycles": list(range(1, 31))}
                    for k, w in enumerate(windows)], "model": "isolation_forest"})
    assert batch.status_code == 200, batch.get_json()
    results = batch.get_json()["results"]
    assert [r["machine_id"] for r in results] == ["e0", "e1", "e2"]
    assert all(r["model"] == "isolation_forest" and r["cycle"] == 30 for r in results)
    # the same window scores the same alone and in a batch
    alone = client.post("/api/v1/timeseries/detect", json={
        "machine_id": "e0", "window": windows[0], "model": "isolation_forest"}).get_json()
    assert alone["anomaly_score"] == results[0]["anomaly_score"]


def test_detect_takes_every_cycle_sent_as_history_like_a_file_does(client, scaler):
    """A machine's whole history sent to detect scores as its last row does in a file: the
    last 30 cycles are the window, all of them the history the XGBoost models' wear rate is
    fitted on (so sending only the last 30 cycles gives another answer)."""
    history = synthetic_history(scaler, 1, seed=9, min_cycles=120, max_cycles=120)
    text = history_csv(history)
    history["values"] = np.vectorize(lambda v: float(f"{v:g}"))(history["values"])  # as written
    file_body = upload(client, text.encode(), "one.csv", values="1").get_json()
    last = file_body["predictions"][-1]
    whole = client.post("/api/v1/timeseries/detect", json={
        "machine_id": "M-1", "window": history["values"].tolist()}).get_json()
    assert whole["model"] == file_body["model"] == "xgboost_eol"
    assert whole["anomaly_score"] == pytest.approx(last["score"], abs=1e-6)
    assert whole["rul"] == pytest.approx(last["rul"], abs=0.051)  # both rounded to 0.1
    deficits = [client.post("/api/v1/timeseries/detect", json={
        "machine_id": "M-1", "window": values, "model": "xgboost_rul"}).get_json()["anomaly_score"]
        for values in (history["values"].tolist(), history["values"][-30:].tolist())]
    assert abs(deficits[0] - deficits[1]) > 1e-3


def test_the_forecaster_reads_the_history_sent_to_detect_as_a_file_does(client, scaler):
    """PatchTST's score averages its forecast bias over the windows ending in the machine's
    last cycles: detect reads them from the cycles sent, padded at the start as a file's
    first windows are, so a history scores at its last cycle as a file of it does, however
    long it is; the last 30 cycles alone are one window of evidence and score lower."""
    history = synthetic_history(scaler, 1, seed=9, min_cycles=120, max_cycles=120)
    history["values"] = np.vectorize(lambda v: float(f"{v:g}"))(history["values"])  # as written
    answers = {}
    for n in (120, 70, 30):
        part = {"machine": history["machine"][:n], "cycle": history["cycle"][:n],
                "values": history["values"][:n], "sensors": history["sensors"]}
        body = upload(client, history_csv(part).encode(), "one.csv", model="patchtst",
                      values="1").get_json()
        assert body["model"] == "patchtst", body
        detect = client.post("/api/v1/timeseries/detect", json={
            "machine_id": "M-1", "window": part["values"].tolist(),
            "model": "patchtst"}).get_json()
        assert detect["anomaly_score"] == pytest.approx(body["predictions"][-1]["score"],
                                                        rel=1e-4, abs=2e-6)
        answers[n] = detect["anomaly_score"]
    end = client.post("/api/v1/timeseries/detect", json={
        "machine_id": "M-1", "window": history["values"][-30:].tolist(),
        "model": "patchtst"}).get_json()["anomaly_score"]
    assert end < answers[120]  # a failing machine's bias, only 1/60 of it counted


def bad_windows(scaler):
    w = windows_of(scaler, 1)[0]
    nan_inside = [row[:] for row in w]
    return [
        ({"machine_id": "m", "window": [row[:-1] for row in w]}, "wrong number of sensor"),
        ({"machine_id": "m", "window": w[:10]}, "at least 30 cycles"),
        ({"machine_id": "m", "window": w, "cycles": list(range(30, 0, -1))},
         "does not come after"),
        ({"machine_id": "m", "window": [*w[:5], [*w[5][:3], None, *w[5][4:]], *w[6:]]},
         "window[5][3]: null is not a number"),
        ({"machine_id": "m", "window": [*w[:5], [*w[5][:3], True, *w[5][4:]], *w[6:]]},
         "true is not a number"),
        ({"machine_id": "m", "window": nan_inside[:2] + [[1e39] * len(w[0])] + w[3:]},
         "not a finite number"),
        ({"machine_id": "m", "window": w[:6] + [[*w[6][:2], 3e38, *w[6][3:]]] + w[7:]},
         "window[6][2]: 3e+38 is more than 1e+06 training standard deviations"),
        ({"window": w}, "machine_id: required"),
        ({"machine_id": "m", "window": w, "threshold": "high"}, "threshold must be a number"),
        ({"machine_id": "m", "window": w, "model": "nope"}, "unknown model 'nope'"),
        ({"machine_id": "m", "window": w, "extra": 1}, "extra: unknown field"),
    ]


def test_bad_detect_input_gets_a_400_naming_it(client, scaler):
    for body, needle in bad_windows(scaler):
        response = client.post("/api/v1/timeseries/detect", json=body)
        assert response.status_code == 400, (needle, response.get_data(as_text=True)[:300])
        assert needle in response.get_json()["message"], response.get_json()["message"]
    w = windows_of(scaler, 1)[0]
    w[7][2] = 123456.5
    text = json.dumps({"machine_id": "m", "window": w}).replace("123456.5", "NaN")
    nan = client.post("/api/v1/timeseries/detect", data=text, content_type="application/json")
    assert nan.status_code == 400 and "window[7][2]: NaN is not a finite number" in \
        nan.get_json()["message"]
    huge = [row[:] for row in w]
    huge[4][3] = -3e38
    batch = client.post("/api/v1/timeseries/detect/batch", json={"windows": [
        {"machine_id": "a", "window": w}, {"machine_id": "b", "window": huge}]})
    assert batch.status_code == 400 and batch.get_json()["message"].startswith(
        "windows[1].window[4][3]: -3e+38 is more than"), batch.get_json()["message"]
    too_many = client.post("/api/v1/timeseries/detect/batch", json={"windows": [{}] * 1001})
    assert too_many.status_code == 413


def cmapss_text(rows: int, at: tuple[int, int], value: str) -> bytes:
    """A one-engine C-MAPSS text file of plausible readings with ``value`` at (row, column)."""
    lines = []
    for r in range(1, rows + 1):
        cells = ["1", str(r), "0", "0", "100"] + ["600"] * 21
        if r == at[0]:
            cells[at[1] - 1] = value
        lines.append(" ".join(cells))
    return ("\n".join(lines) + "\n").encode()


def test_bad_files_get_a_400_naming_file_row_and_column(client):
    for data, needle in [
        (b"m,cycle,sensor_2\nA,1,1\nA,2,x\n", "row 2, column sensor_2: 'x' is not a number"),
        (b"1 1 0 0 100 1 2\n", "7 columns; the C-MAPSS layout has 26"),
        (b"m,cycle,sensor_2\nA,1,1\nA,2,2\n", "missing sensor column(s)"),
        (cmapss_text(rows=40, at=(36, 9), value="-1e30"),
         "row 36, column sensor_4: -1e+30 is more than 1e+06 training standard deviations"),
        (b"\x89PNG\r\n", "not UTF-8"),
    ]:
        response = upload(client, data, "bad.csv")
        assert response.status_code == 400, response.get_data(as_text=True)[:300]
        assert needle in response.get_json()["message"] and "bad.csv" in \
            response.get_json()["message"]


def test_events_filter_acknowledge_and_download(db_app, scaler):
    client = db_app.test_client()
    worn = windows_of(scaler, 2)
    for k, machine in enumerate(["pump-1", "pump-2", "pump-1"]):
        r = client.post("/api/v1/timeseries/detect", json={
            "machine_id": machine, "window": worn[k % 2], "cycle": 10 + k, "threshold": -1000,
            "model": "xgboost_rul"})  # a RUL deficit of -1000: every window flagged
        assert r.get_json()["is_anomaly"]
    client.post("/api/v1/timeseries/detect", json={
        "machine_id": "=cmd", "window": worn[0], "model": "isolation_forest", "threshold": 0})
    every = client.get("/api/v1/events").get_json()
    assert every["total"] == 4
    pump = client.get("/api/v1/events?machine=pump-1").get_json()
    assert pump["total"] == 2 and {e["first_cycle"] for e in pump["events"]} == {10, 12}
    assert all(e["n_cycles"] == 1 and e["last_cycle"] == e["first_cycle"] and
               e["run_id"] is None and e["run_url"] is None for e in pump["events"])
    iso = client.get("/api/v1/events?model=isolation_forest").get_json()
    assert iso["total"] == 1 and iso["events"][0]["machine_id"] == "=cmd"
    assert client.get("/api/v1/events?from=2000-01-01&to=2000-01-02").get_json()["total"] == 0
    assert client.get("/api/v1/events?from=2000-01-01").get_json()["total"] == 4
    first = pump["events"][0]["id"]
    acked = client.post(f"/api/v1/events/{first}/acknowledge").get_json()
    assert acked["acknowledged"] and acked["acknowledged_at"]
    assert client.get("/api/v1/events?acknowledged=true").get_json()["total"] == 1
    assert client.get("/api/v1/events?acknowledged=false").get_json()["total"] == 3
    assert client.post("/api/v1/events/999999/acknowledge").status_code == 404
    rows = rows_of(client.get("/api/v1/events?format=csv"))
    assert len(rows) == 4 and "'=cmd" in {r["machine_id"] for r in rows}
    for query, needle in [("from=yesterday", "from must be an ISO date"),
                          ("acknowledged=maybe", "acknowledged must be true or false"),
                          ("limit=0", "limit must be from 1"),
                          ("from=2026-02-02&to=2026-01-01", "from must come before to")]:
        response = client.get(f"/api/v1/events?{query}")
        assert response.status_code == 400 and needle in response.get_json()["message"]
    # the page: filters, the acknowledge button, the download link
    html = client.get("/history/events?machine=pump-1").get_data(as_text=True)
    assert "2 events" in html and "pump-2" not in html.split("<tbody>")[1]
    page_ack = client.post(f"/history/events/{pump['events'][1]['id']}/acknowledge",
                           data={"machine": "pump-1"})
    assert page_ack.status_code == 302 and "machine=pump-1" in page_ack.headers["Location"]
    assert client.get("/api/v1/events?acknowledged=true").get_json()["total"] == 2
    assert "events" in client.get("/history").get_data(as_text=True)


def test_detect_windows_sent_one_by_one_with_their_cycles_make_one_event(db_app, scaler):
    """A stretch sent window by window (each with its ``cycles``) is one event, carried on by
    each window whose previous cycle is the event's last; the same window sent again adds
    nothing; a gap starts a new event. Batches are grouped the same way."""
    client = db_app.test_client()
    worn = windows_of(scaler, 1)[0]

    def send(machine, end, **extra):
        body = {"machine_id": machine, "window": worn, "cycles": list(range(end - 29, end + 1)),
                "threshold": -1000, "model": "xgboost_rul", **extra}  # every window flagged
        response = client.post("/api/v1/timeseries/detect", json=body)
        assert response.status_code == 200 and response.get_json()["is_anomaly"]

    for end in (40, 41, 42, 41):
        send("pump-9", end)
    (event,) = client.get("/api/v1/events?machine=pump-9").get_json()["events"]
    assert (event["first_cycle"], event["last_cycle"], event["n_cycles"]) == (40, 42, 3)
    send("pump-9", 50)  # cycles 43..49 were not sent: another stretch
    assert client.get("/api/v1/events?machine=pump-9").get_json()["total"] == 2
    batch = client.post("/api/v1/timeseries/detect/batch", json={
        "model": "xgboost_rul", "threshold": -1000, "windows": [
            {"machine_id": "fan-1", "window": worn, "cycles": list(range(end - 29, end + 1))}
            for end in (30, 31, 32, 60)]}).get_json()
    assert (batch["n_events"], batch["n_events_new"]) == (2, 2)
    fan = client.get("/api/v1/events?machine=fan-1").get_json()["events"]
    assert sorted((e["first_cycle"], e["last_cycle"], e["n_cycles"]) for e in fan) == \
        [(30, 32, 3), (60, 60, 1)]
    again = client.post("/api/v1/timeseries/detect/batch", json={
        "model": "xgboost_rul", "threshold": -1000, "windows": [
            {"machine_id": "fan-1", "window": worn, "cycles": list(range(end - 29, end + 1))}
            for end in (30, 31, 32, 60)]}).get_json()
    assert again["n_events_new"] == 0
    assert client.get("/api/v1/events").get_json()["total"] == 4


def test_plotly_is_served_by_the_app(client):
    html = client.get("/timeseries/").get_data(as_text=True)
    assert "/timeseries/vendor/plotly.min.js" in html and "cdn" not in html.lower()
    js = client.get("/timeseries/vendor/plotly.min.js")
    assert js.status_code == 200 and js.mimetype == "text/javascript"
    assert b"plotly" in js.get_data()[:2000].lower()
