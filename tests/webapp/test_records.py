"""Nothing lost, nothing unbounded in the records, on SQLite and on PostgreSQL: a run is recorded
when it starts and closed when it ends; a dead worker's run is closed on the next start;
History pages through every run with filters, refused requests counted apart; retention
prunes what the settings say, with what hangs off a run, and nothing else."""
from __future__ import annotations

import gzip
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from sqlalchemy import insert, select, update

from tests.conftest import make_batch_frame, stand_in_master, to_csv_bytes
from tests.sensor.test_api import upload
from webapp import create_app, db, gunicorn_conf
from webapp.config import ConfigError, from_environment
from webapp.db import upgrade

RUN_ROW = re.compile(r'<tr id="run-(\d+)" data-outcome="(\w+)"')


@pytest.fixture
def db_app(database_url):
    upgrade(database_url)
    return create_app({"TESTING": True, "DATABASE_URL": database_url})


def listed(html: str) -> list[tuple[int, str]]:
    """The runs a History page lists, in order: (id, outcome)."""
    return [(int(i), o) for i, o in RUN_ROW.findall(html)]


def refuse(client):
    """One refused request: a body that is not JSON (400)."""
    response = client.post("/api/v1/sensor/predict", data=b"{", content_type="application/json")
    assert response.status_code == 400
    return response


def all_runs(app) -> dict[int, dict]:
    with app.app_context():
        return {r["id"]: r for r in db.list_runs(limit=10_000)["runs"]}


def move(app, run_id: int, **values) -> None:
    """Set a stored run's columns (its age, the worker said to serve it)."""
    with app.app_context(), db.engine().begin() as conn:
        conn.execute(update(db.runs).where(db.runs.c.id == run_id).values(**values))


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# -- started, then closed ---------------------------------------------------------------------
def test_a_run_is_running_while_it_is_scored_then_closed_as_done(db_app, monkeypatch):
    from webapp.modules.sensor import api

    held, entered = threading.Event(), threading.Event()
    score = api.score_request

    def slow(*args, **kwargs):
        entered.set()
        assert held.wait(60)
        return score(*args, **kwargs)

    monkeypatch.setattr(api, "score_request", slow)
    answers = []
    worker = threading.Thread(target=lambda: answers.append(upload(
        db_app.test_client(), to_csv_bytes(make_batch_frame(4)), "held.csv")))
    worker.start()
    try:
        assert entered.wait(60)
        (run,) = all_runs(db_app).values()
        assert (run["status"], run["outcome"], run["source"]) == ("running", "running", "held.csv")
        assert run["user"] == "local" and run["created"] is not None
        assert run["worker"] == f"{socket.gethostname()}:{os.getpid()}"
        page = db_app.test_client().get("/history").get_data(as_text=True)
        assert listed(page) == [(run["id"], "running")]
        assert "started, not finished yet" in page
        running = db_app.test_client().get("/history?status=running").get_data(as_text=True)
        assert listed(running) == [(run["id"], "running")]
    finally:
        held.set()
        worker.join(60)
    body = answers[0].get_json()
    assert answers[0].status_code == 200 and body["run_id"] == run["id"]
    done = all_runs(db_app)[run["id"]]
    assert (done["status"], done["rows"], done["model"]) == ("ok", 4, body["model"])
    assert done["has_results"] and done["release"] == body["release"]
    assert done["error"] is None and done["http_status"] is None


def test_a_refused_and_a_failed_request_close_their_run(db_app, monkeypatch):
    from webapp.modules.sensor import api

    client = db_app.test_client()
    refuse(client)
    monkeypatch.setattr(api, "score_request", lambda *a, **k: 1 / 0)
    assert upload(client, to_csv_bytes(make_batch_frame(2)), "boom.csv").status_code == 500
    broke, refused = all_runs(db_app).values()  # newest first
    assert (broke["status"], broke["http_status"], broke["outcome"]) == ("failed", 500, "failed")
    assert (refused["status"], refused["http_status"], refused["outcome"]) == \
        ("failed", 400, "refused")
    assert refused["error"].startswith("HTTP 400: ") and refused["source"] == "json"
    assert "ZeroDivisionError" in broke["error"] and broke["source"] == "boom.csv"


def test_a_database_that_cannot_take_the_start_never_changes_the_answer(db_app, monkeypatch,
                                                                         tmp_path):
    start = db.start_run
    calls = []

    def once_down(*args, **kwargs):  # the first start of each request fails
        calls.append(1)
        if len(calls) % 2:
            raise OSError("database is locked")
        return start(*args, **kwargs)

    monkeypatch.setattr(db, "start_run", once_down)
    client = db_app.test_client()
    body = upload(client, to_csv_bytes(make_batch_frame(2)), "late.csv").get_json()
    run = all_runs(db_app)[body["run_id"]]  # recorded when done, all the same
    assert (run["status"], run["rows"], run["source"]) == ("ok", 2, "late.csv")
    calls.clear()
    refuse(client)  # answered its 400, recorded nowhere
    assert list(all_runs(db_app)) == [body["run_id"]]
    # no tables at all: a refused request still gets its own answer, never a 500
    bare = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'bare.db'}"})
    monkeypatch.setattr(db, "start_run", start)
    refuse(bare.test_client())


def test_a_sweep_never_overrides_a_closed_run_and_a_late_finish_wins(db_app):
    with db_app.test_request_context():
        run = db.start_run("sensor", "late.csv")
        move(db_app, run, worker="elsewhere:1", created=datetime.now(timezone.utc)
             - timedelta(hours=5))
        assert db.close_abandoned_runs(db.engine(), timedelta(hours=1)) == 1
        assert not db.fail_run(run, "HTTP 400: too late")  # closed already: left as it is
        db.finish_run(run, "xgboost", "v1", "late.csv", 3, 1, 0.5)  # the work did finish
    assert all_runs(db_app)[run]["status"] == "ok"


def test_migration_0009_tells_refused_runs_from_failed_ones(database_url):
    """Failed runs recorded before 0009 get the HTTP status their error text starts with, so
    History sorts them as it sorts new ones; 0009 downgrades and upgrades again."""
    from alembic import command
    from sqlalchemy import text

    engine = db.make_engine(database_url)
    cfg = db._alembic_config(engine)
    command.upgrade(cfg, "0008")
    with engine.begin() as conn:
        for run_id, status, error in ((1, "ok", None), (2, "failed", "HTTP 413: too large"),
                                      (3, "failed", "HTTP 500: unexpected KeyError"),
                                      (4, "failed", "the model is gone")):
            conn.execute(text("INSERT INTO runs (id, created, module, model, rows, flagged, "
                              "status, error) VALUES (:i, :c, 'sensor', '', 0, 0, :s, :e)"),
                         {"i": run_id, "c": datetime.now(timezone.utc), "s": status, "e": error})
    assert upgrade(database_url) == db.head_revision()
    app = create_app({"TESTING": True, "DATABASE_URL": database_url})
    runs = all_runs(app)
    assert [(r["http_status"], r["outcome"]) for r in runs.values()] == [
        (None, "failed"), (500, "failed"), (413, "refused"), (None, "ok")]
    command.downgrade(cfg, "0008")
    assert upgrade(database_url) == db.head_revision()
    engine.dispose()


# -- a dead worker's runs ---------------------------------------------------------------------
@pytest.fixture
def server(db_app, monkeypatch, tmp_path):
    """gunicorn's master as far as its hooks see it: the test database, open mode."""
    return stand_in_master(monkeypatch, db_app.config["DATABASE_URL"], tmp_path)


def test_a_dead_workers_run_is_marked_failed_when_the_server_starts_again(db_app, server):
    here, now = socket.gethostname(), datetime.now(timezone.utc)
    with db_app.test_request_context():
        ids = {name: db.start_run("sensor", f"{name}.csv") for name in
               ("dead_here", "live_here", "recent_elsewhere", "stale_elsewhere", "done")}
        db.finish_run(ids["done"], "xgboost", "v1", "done.csv", 3, 1, 0.5)
    move(db_app, ids["dead_here"], worker=f"{here}:{dead_pid()}")
    move(db_app, ids["recent_elsewhere"], worker="another-host:7", created=now
         - timedelta(minutes=5))
    move(db_app, ids["stale_elsewhere"], worker="another-host:8", created=now
         - timedelta(minutes=61))  # STALE_RUN_MINUTES is 60
    move(db_app, ids["done"], worker=f"{here}:{dead_pid()}")
    gunicorn_conf.on_starting(server)
    runs = all_runs(db_app)
    status = {name: runs[i]["status"] for name, i in ids.items()}
    # this process still serves live_here; another server may still serve recent_elsewhere
    assert status == {"dead_here": "failed", "live_here": "running",
                      "recent_elsewhere": "running", "stale_elsewhere": "failed", "done": "ok"}
    for name in ("dead_here", "stale_elsewhere"):
        assert runs[ids[name]]["error"] == "the worker stopped before the run finished"
        assert runs[ids[name]]["outcome"] == "failed"  # never hidden among refused ones
    assert any(level == "info" and "abandoned" in a[0] for level, a in server.logs)
    gunicorn_conf.on_starting(server)  # again: nothing more to close
    assert {i: r["status"] for i, r in all_runs(db_app).items()} == \
        {i: r["status"] for i, r in runs.items()}


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="zombies are read from /proc")
def test_a_zombie_worker_counts_as_gone():
    """A worker killed with its master is reparented; where PID 1 does not reap it (a CI
    container's shell) it lingers as a zombie that still answers signal 0."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # exited, not yet reaped: a zombie
        with open(f"/proc/{child.pid}/stat", "rb") as stat:
            if stat.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                break
        time.sleep(0.02)
    try:
        os.kill(child.pid, 0)  # the signal still reaches it
        assert not db.pid_alive(child.pid)
        assert db.pid_alive(os.getpid())
    finally:
        child.wait()
    assert not db.pid_alive(child.pid)


def test_a_worker_that_exits_has_its_unfinished_runs_closed_by_its_master(db_app, server):
    gunicorn_conf.on_starting(server)
    with db_app.test_request_context():
        mine, other = db.start_run("sensor", "a.csv"), db.start_run("sensor", "b.csv")
    move(db_app, mine, worker=db.worker_marker(4242))
    move(db_app, other, worker=db.worker_marker(4243))
    gunicorn_conf.child_exit(server, SimpleNamespace(pid=4242))
    runs = all_runs(db_app)
    assert (runs[mine]["status"], runs[other]["status"]) == ("failed", "running")
    assert runs[mine]["error"] == db.WORKER_STOPPED


# -- History ----------------------------------------------------------------------------------
def test_refused_requests_never_push_good_runs_off_the_first_page(db_app):
    client = db_app.test_client()
    good = [upload(client, to_csv_bytes(make_batch_frame(2))).get_json()["run_id"]
            for _ in range(3)]
    for _ in range(60):
        refuse(client)
    page = client.get("/history").get_data(as_text=True)
    assert listed(page) == [(i, "ok") for i in reversed(good)]
    assert "60 refused requests" in page
    link = re.search(r'<a href="([^"]+)">list them</a>', page).group(1)
    refused = client.get(link.replace("&amp;", "&")).get_data(as_text=True)
    assert len(listed(refused)) == 50 and {o for _, o in listed(refused)} == {"refused"}
    assert "rel=\"next\"" in refused  # the other ten are one page older
    everything = client.get("/history?status=all").get_data(as_text=True)
    assert len(listed(everything)) == 50 and "refused request" not in everything


def follow(client, url: str, rel: str) -> str | None:
    found = re.search(rf'rel="{rel}" href="([^"]+)"', client.get(url).get_data(as_text=True))
    return found.group(1).replace("&amp;", "&") if found else None


def test_history_pages_reach_the_oldest_run_and_come_back(db_app):
    with db_app.test_request_context():
        ids = [db.record_run("sensor", "xgboost", "v1", f"f{k}.csv", 3, 1, 0.5)
               for k in range(123)]
    client = db_app.test_client()
    url, pages = "/history", []
    while url:
        pages.append(url)
        assert len(pages) < 10
        url = follow(client, url, "next")
    seen = [i for u in pages for i, _ in listed(client.get(u).get_data(as_text=True))]
    assert seen == ids[::-1] and len(pages) == 3  # every run once, newest first, 50 a page
    last = client.get(pages[-1]).get_data(as_text=True)
    assert "123 runs" in last and 'href="/history">Newest</a>' in last
    with db_app.test_request_context():  # a run recorded meanwhile does not shift the pages
        db.record_run("sensor", "xgboost", "v1", "new.csv", 3, 1, 0.5)
    assert listed(client.get(pages[1]).get_data(as_text=True)) == \
        [(i, "ok") for i in ids[::-1][50:100]]
    back = follow(client, pages[2], "prev")
    assert listed(client.get(back).get_data(as_text=True)) == \
        [(i, "ok") for i in ids[::-1][50:100]]
    first = follow(client, pages[1], "prev")
    assert listed(client.get(first).get_data(as_text=True)) == [(i, "ok") for i in ids[::-1][:50]]
    newer = follow(client, first, "prev")  # the run recorded meanwhile, then no newer one
    assert [o for _, o in listed(client.get(newer).get_data(as_text=True))] == ["ok"]
    assert follow(client, newer, "prev") is None


def test_history_filters_by_module_status_and_who(db_app):
    with db_app.test_request_context():
        ann = db.record_run("sensor", "xgboost", "v1", "a.csv", 3, 1, 0.5, user="ann")
        bob = db.record_run("timeseries", "xgboost_eol", "v1", "b.txt", 9, 2, 0.5,
                            user="bob (token 3)")
        broke = db.record_run("sensor", "", None, "c.csv", 0, 0, None, status="failed",
                              error="HTTP 500: unexpected KeyError", http_status=500,
                              user="ann")
        refused = db.record_run("sensor", "", None, "d.csv", 0, 0, None, status="failed",
                                error="HTTP 413: too large", http_status=413, user="bob")
        running = db.start_run("timeseries", "e.txt", user="bobby")
    client = db_app.test_client()

    def ids(query: str) -> list[int]:
        response = client.get(f"/history?{query}")
        assert response.status_code == 200, response.get_data(as_text=True)
        return [i for i, _ in listed(response.get_data(as_text=True))]

    assert ids("") == [running, broke, bob, ann]
    assert ids("module=timeseries") == [running, bob]
    assert ids("status=ok") == [bob, ann]
    assert ids("status=failed") == [broke]
    assert ids("status=refused") == [refused]
    assert ids("status=running") == [running]
    assert ids("status=all") == [running, refused, broke, bob, ann]
    assert ids("who=bob") == [bob]  # the user and their tokens, not "bobby"
    assert ids("who=bob&status=all") == [refused, bob]
    assert ids("who=ann&module=sensor&status=ok") == [ann]
    assert ids("who=nobody") == []
    assert "match these filters" in client.get("/history?who=nobody").get_data(as_text=True)
    page = client.get("/history?module=sensor").get_data(as_text=True)
    assert "1 refused request" in page and "status=refused" in page and "module=sensor" in page
    for query, words in (("status=bogus", "status must be one of"),
                         ("module=nope", "module must be one of"),
                         ("before=abc", "before must be a whole number"),
                         ("after=-1", "after must be a whole number")):
        response = client.get(f"/history?{query}")
        assert response.status_code == 400 and words in response.get_data(as_text=True)


# -- retention --------------------------------------------------------------------------------
RETAIN = {"RETAIN_RUNS_DAYS": 30, "RETAIN_RUNS": 1000, "RETAIN_REFUSED": 3,
          "RETAIN_EVENTS_DAYS": 30, "RETAIN_EVENTS": 1000}


def an_event(run_id, created, updated=None, machine="M1") -> dict:
    return dict(created=created, updated=updated, module="timeseries", machine_id=machine,
                n_cycles=1, start_key=machine, score=0.9, threshold=0.5, model="m",
                model_version="v1", run_id=run_id, acknowledged=False)


def test_retention_prunes_what_the_settings_say_and_nothing_else(db_app):
    now = datetime.now(timezone.utc)
    old = now - timedelta(days=31)
    results = ("score", gzip.compress(b"id,score\n1,0.5\n"))
    with db_app.test_request_context():
        kept_old = db.record_run("sensor", "x", "v1", "young.csv", 3, 1, 0.5,
                                 results=results)
        gone = db.record_run("sensor", "x", "v1", "old.csv", 3, 1, 0.5, results=results)
        db.record_download(gone, 0.5, 1, 3, False)
        db.record_shadow(gone, "sensor", "abc123", n_items=3)
        still_running = db.start_run("sensor", "slow.csv")
        broke = db.record_run("sensor", "", None, "b.csv", 0, 0, None, status="failed",
                              error="HTTP 500: x", http_status=500)
        refused = [db.record_run("sensor", "", None, f"r{k}.csv", 0, 0, None,
                                 status="failed", error="HTTP 400: x", http_status=400)
                   for k in range(5)]
        with db.engine().begin() as conn:
            events = [conn.execute(insert(db.events).values(**e)).inserted_primary_key[0]
                      for e in (an_event(gone, now, machine="of-a-pruned-run"),
                                an_event(None, old, machine="old"),
                                an_event(None, old, now, machine="old-but-carried-on"))]
    move(db_app, kept_old, created=now - timedelta(days=29))
    for run in (gone, still_running):
        move(db_app, run, created=old)
    with db_app.app_context():
        removed = db.prune(db.engine(), {**db_app.config, **RETAIN})
        engine = db.engine()
        with engine.connect() as conn:
            left = {t.name: {tuple(r) for r in conn.execute(select(t.c.run_id))}
                    for t in (db.run_results, db.run_downloads, db.shadow_scores)}
            event_runs = dict(conn.execute(select(db.events.c.id, db.events.c.run_id)).all())
    assert removed == {"runs": 3, "events": 1}
    assert set(all_runs(db_app)) == {kept_old, still_running, broke, *refused[2:]}
    assert left == {"run_results": {(kept_old,)}, "run_downloads": set(),
                    "shadow_scores": set()}
    assert event_runs == {events[0]: None, events[2]: None}  # kept, no longer naming the run
    with db_app.app_context():  # once more: nothing else goes
        assert db.prune(db.engine(), {**db_app.config, **RETAIN}) == {"runs": 0, "events": 0}


def test_retention_keeps_at_most_the_newest_runs_and_events(db_app):
    with db_app.test_request_context():
        runs = [db.record_run("sensor", "x", "v1", f"{k}.csv", 3, 1, 0.5) for k in range(6)]
        running = db.start_run("sensor", "slow.csv")
        with db.engine().begin() as conn:
            conn.execute(insert(db.events), [an_event(None, datetime.now(timezone.utc),
                                                      machine=f"M{k}") for k in range(5)])
        removed = db.prune(db.engine(), {**db_app.config, **RETAIN, "RETAIN_RUNS": 4,
                                         "RETAIN_EVENTS": 2})
        with db.engine().connect() as conn:
            machines = [r[0] for r in conn.execute(select(db.events.c.machine_id)
                                                   .order_by(db.events.c.id))]
    assert removed == {"runs": 2, "events": 3}
    assert set(all_runs(db_app)) == {*runs[2:], running}  # a run in progress always stays
    assert machines == ["M3", "M4"]


def test_workers_prune_at_most_every_so_often(database_url):
    upgrade(database_url)
    for minutes, left in ((0, 3), (10, 6)):
        app = create_app({"TESTING": True, "DATABASE_URL": database_url,
                          "RETAIN_REFUSED": 3, "PRUNE_MINUTES": minutes})
        client = app.test_client()
        with app.app_context(), db.engine().begin() as conn:
            conn.execute(db.runs.delete())
        for _ in range(6):
            refuse(client)
        # every run closed prunes at 0 minutes; at 10, only the first (a fresh worker) did
        assert len(all_runs(app)) == left


def test_retention_settings_come_from_the_environment():
    assert from_environment({"FABLENS_RETAIN_RUNS_DAYS": "90", "FABLENS_RETAIN_REFUSED": "50",
                             "FABLENS_RETAIN_EVENTS_DAYS": "30"}) == {
        "RETAIN_RUNS_DAYS": 90, "RETAIN_REFUSED": 50, "RETAIN_EVENTS_DAYS": 30}
    with pytest.raises(ConfigError, match="FABLENS_RETAIN_RUNS_DAYS"):
        from_environment({"FABLENS_RETAIN_RUNS_DAYS": "0"})


def test_history_pages_by_keyboard_and_fits_1366_by_768(tmp_path):
    """In a real browser: the filters and the pager fit the width, and "Older" is a link the
    keyboard reaches and follows."""
    from tests.browser import CHROMIUM, CHROMIUM_ARGS, open_page, playwright_sync  # or skip
    from tests.conftest import serving, sqlite_url
    from tests.webapp.test_layout import OVERFLOW

    url = sqlite_url(tmp_path)
    upgrade(url)
    app = create_app({"TESTING": True, "DATABASE_URL": url})
    with app.test_request_context():
        for k in range(55):
            db.record_run("sensor", "xgboost_forest", "v1", f"batch-{k}.csv", 30, 2, 0.5,
                          user="ann")
        for k in range(3):
            db.record_run("sensor", "", None, f"bad-{k}.csv", 0, 0, None, status="failed",
                          error="HTTP 400: bad-0.csv row 3, column Sensor-4: 'x' is not a "
                                "number", http_status=400)
    with serving(app) as base, playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=CHROMIUM_ARGS)
        try:
            for page in open_page(browser, base):
                page.goto("/history")
                assert page.evaluate(OVERFLOW) == []
                assert "3 refused requests" in page.locator("#refused-count").inner_text()
                older = page.get_by_role("link", name="Older")
                older.focus()
                page.keyboard.press("Enter")
                page.wait_for_url("**/history?before=*")
                assert page.locator("tbody tr").count() == 5
                page.goto("/history?status=refused")
                assert page.evaluate(OVERFLOW) == [] and page.locator("tbody tr").count() == 3
                assert not page.console_errors, page.console_errors
        finally:
            browser.close()


def test_a_worker_killed_mid_upload_leaves_a_failed_run_under_gunicorn(tmp_path):
    """The real thing: gunicorn as the Makefile starts it (one worker), a large upload being
    scored, and its worker killed (SIGKILL, as the OOM killer does): the master closes the run
    at once. Then the whole server is killed mid-run and started again on the same database:
    its start hook closes that run."""
    from benchmarks.common import sensor_csv
    from benchmarks.server_memory import multipart
    from tests.conftest import ROOT, sqlite_url
    from tests.webapp.test_render import free_port, stop, wait_for

    url = sqlite_url(tmp_path)
    engine = db.make_engine(url)
    body, content_type = multipart(sensor_csv(3000), "big-upload.csv")
    env = {**os.environ, "DATABASE_URL": url, "FABLENS_AUTH": "open",
           "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"}

    def serve() -> tuple[subprocess.Popen, str]:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:webapp.gunicorn_conf", "--workers",
             "1", "--threads", "2", "--bind", f"127.0.0.1:{port}", "webapp:create_app()"],
            cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT)
        wait_for(proc, f"http://127.0.0.1:{port}/health")
        return proc, f"http://127.0.0.1:{port}"

    def upload_running(base: str) -> tuple[int, int]:
        """Send the upload on a thread; once its run is running: (run id, worker pid)."""
        import urllib.request

        request = urllib.request.Request(f"{base}/api/v1/sensor/predict?format=csv", data=body,
                                         headers={"Content-Type": content_type})
        threading.Thread(target=_ignore_errors, args=(urllib.request.urlopen, request),
                         kwargs={"timeout": 120}, daemon=True).start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                found = conn.execute(select(db.runs.c.id, db.runs.c.worker)
                                     .where(db.runs.c.status == "running")).first()
            if found:
                return found[0], int(found[1].rsplit(":", 1)[1])
            time.sleep(0.02)
        raise AssertionError("the upload's run never showed as running")

    def closed(run_id: int, seconds: float = 30) -> dict:
        deadline = time.monotonic() + seconds
        while True:
            with engine.connect() as conn:
                run = conn.execute(select(db.runs).where(db.runs.c.id == run_id)) \
                    .mappings().one()
            if run["status"] != "running" or time.monotonic() > deadline:
                return dict(run)
            time.sleep(0.1)

    proc, base = serve()
    try:
        run_id, pid = upload_running(base)
        os.kill(pid, signal.SIGKILL)
        run = closed(run_id)
        assert (run["status"], run["error"]) == ("failed", db.WORKER_STOPPED)
        assert run["source"] == "big-upload.csv"
        run_id, _ = upload_running(base)  # the master's new worker serves it
        os.killpg(proc.pid, signal.SIGKILL)  # master and worker at once: no hook runs
        proc.wait(30)
        assert closed(run_id, seconds=1)["status"] == "running"
        proc, base = serve()  # started again on the same database
        run = closed(run_id)
        assert (run["status"], run["error"]) == ("failed", db.WORKER_STOPPED)
    finally:
        if proc.poll() is None:
            stop(proc)
        engine.dispose()


def _ignore_errors(call, *args, **kwargs) -> None:
    try:
        call(*args, **kwargs).read()
    except OSError:  # the worker was killed under it
        pass
