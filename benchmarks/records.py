"""What keeping every run costs: History's pages over a large table, retention's passes, and
recording a run in two steps (started, then closed).

Run: ``python -m benchmarks.records [--runs 100000] [--refused 20000] [--events 100000]
[--database URL] [--markdown PATH]`` (JSON on stdout and in ``benchmarks/out/records.json``;
a temporary SQLite file unless ``--database`` names an empty database, e.g. PostgreSQL).

Fills the tables in bulk (``--runs`` finished runs, ``--refused`` refused requests among the
newest, ``--events`` events), then times, each the median of five: History's first page,
the refused list, the page holding the oldest run and a ``who`` filter; a retention pass that
removes the refused backlog beyond ``RETAIN_REFUSED`` (once) and a pass with nothing to remove
(the steady state each worker pays every ``PRUNE_MINUTES``); and one run recorded as
``start_run`` + ``finish_run`` against the one-step ``record_run``.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone

from benchmarks.common import add_markdown_option, emit, log_to_stderr


def _median_ms(action, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 2)


def fill(app, runs: int, refused: int, events: int) -> None:
    """Bulk rows as the app writes them: finished runs, the newest ``refused`` of them 400s."""
    from sqlalchemy import insert

    from webapp import db

    now = datetime.now(timezone.utc)
    with app.app_context(), db.engine().begin() as conn:
        for start in range(0, runs, 5000):
            rows = []
            for k in range(start, min(start + 5000, runs)):
                bad = k >= runs - refused and k % 2 == 0  # refused among the newest
                rows.append(dict(
                    created=now - timedelta(seconds=runs - k), module="sensor",
                    model="" if bad else "xgboost_forest", model_version="v1",
                    source=f"batch-{k}.csv", rows=0 if bad else 30, flagged=0 if bad else 2,
                    threshold=None if bad else 0.5, status="failed" if bad else "ok",
                    error="HTTP 400: not JSON" if bad else None,
                    http_status=400 if bad else None, user=f"user{k % 20}"))
            conn.execute(insert(db.runs), rows)
        for start in range(0, events, 5000):
            conn.execute(insert(db.events), [dict(
                created=now - timedelta(seconds=events - k), module="timeseries",
                machine_id=f"M{k}", n_cycles=1, start_key=str(k), score=0.9, threshold=0.5,
                model="xgboost_eol", model_version="v1", acknowledged=False)
                for k in range(start, min(start + 5000, events))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--refused", type=int, default=20_000,
                        help="how many of the newest runs are refused requests (every other)")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--database", help="an empty database URL (default: a temporary SQLite)")
    add_markdown_option(parser)
    args = parser.parse_args()
    log_to_stderr()

    from webapp import create_app, db
    from webapp.db import upgrade

    url = args.database or f"sqlite:///{tempfile.mkdtemp(prefix='fablens-records-')}/r.sqlite"
    upgrade(url)
    app = create_app({"TESTING": True, "DATABASE_URL": url})
    started = time.perf_counter()
    fill(app, args.runs, args.refused, args.events)
    filled_s = time.perf_counter() - started
    with app.app_context():
        if db.engine().dialect.name == "postgresql":  # what autovacuum does after a bulk load
            with db.engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE")
    client = app.test_client()
    with app.app_context():
        oldest = db.list_runs(limit=1, after=0)["runs"][0]["id"]

    def page(query: str):
        def get():
            response = client.get(f"/history{query}")
            assert response.status_code == 200, response.status_code
        return get

    history = {name: _median_ms(page(query)) for name, query in (
        ("first_page", ""), ("refused", "?status=refused"),
        ("oldest_page", f"?before={oldest + 25}"), ("who", "?who=user7"))}
    settings = dict(app.config)
    with app.app_context():
        engine = db.engine()
        started = time.perf_counter()
        backlog = db.tidy_records(engine, settings)
        backlog_ms = round((time.perf_counter() - started) * 1000, 1)
        steady_ms = _median_ms(lambda: db.tidy_records(engine, settings))
        with app.test_request_context():
            two_steps = _median_ms(lambda: db.finish_run(
                db.start_run("sensor", "a.csv"), "xgboost_forest", "v1", "a.csv", 30, 2, 0.5),
                repeat=21)
            one_step = _median_ms(lambda: db.record_run(
                "sensor", "xgboost_forest", "v1", "a.csv", 30, 2, 0.5), repeat=21)
    results = {"database": engine.dialect.name, "runs": args.runs, "refused": args.refused,
               "events": args.events, "fill_seconds": round(filled_s, 1),
               "history_ms": history, "retention_backlog": backlog,
               "retention_backlog_ms": backlog_ms, "retention_steady_ms": steady_ms,
               "record_two_steps_ms": two_steps, "record_one_step_ms": one_step}
    markdown = [
        f"History and retention on {results['database']}, {args.runs:,} runs "
        f"({args.refused // 2:,} refused) and {args.events:,} events:", "",
        "| what | ms |", "| --- | --- |",
        *[f"| History {k.replace('_', ' ')} | {v} |" for k, v in history.items()],
        f"| retention pass removing {backlog['runs']:,} runs, {backlog['events']:,} events "
        f"| {backlog_ms} |",
        f"| retention pass with nothing to remove | {steady_ms} |",
        f"| a run recorded started + closed (one-step) | {two_steps} ({one_step}) |"]
    emit("records", results, markdown, args.markdown)


if __name__ == "__main__":
    main()
