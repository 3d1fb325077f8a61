"""Anomaly events: every flagged window of the time-series module, stored, filtered, acknowledged.

An event holds the machine id, the cycle (or the time-column text), the score and the
threshold it crossed, the RUL estimate then, the model and its version, when it was stored,
and whether someone acknowledged it. Storage goes through SQLAlchemy (``webapp.db``: a SQLite
file by default, PostgreSQL with ``DATABASE_URL``); the table comes from migration 0003.

``GET /api/v1/events`` (filters ``machine``, ``model``, ``from``, ``to`` (ISO dates or times,
UTC), ``acknowledged``; ``limit``/``offset``; ``?format=csv`` for every matching event),
``POST /api/v1/events/<id>/acknowledge``, and the page ``/history/events``.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import pandas as pd
from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for
from sqlalchemy import and_, func, insert, select, update

from webapp import db
from webapp.downloads import csv_response
from webapp.errors import InputError
from webapp.params import parse_count, parse_flag

bp = Blueprint("events", __name__)

PAGE_SIZE = 50
MAX_LIMIT = 1000
COLUMNS = ("id", "created", "machine_id", "cycle", "timestamp", "score", "threshold", "rul",
           "model", "model_version", "run_id", "acknowledged", "acknowledged_at")


def record_events(module: str, rows: list[dict], run_id: int | None = None) -> int:
    """Store flagged windows (dicts with machine_id, cycle, timestamp, score, threshold, rul,
    model, model_version) in one transaction; return how many."""
    if not rows:
        return 0
    created = datetime.now(timezone.utc)
    values = [{"created": created, "module": module, "run_id": run_id, "acknowledged": False,
               "machine_id": str(r["machine_id"])[:128],
               "timestamp": None if r.get("timestamp") is None else str(r["timestamp"])[:64],
               **{k: r.get(k) for k in ("cycle", "score", "threshold", "rul", "model",
                                        "model_version")}} for r in rows]
    with db.engine().begin() as conn:
        conn.execute(insert(db.events), values)
    return len(values)


def _when(value: str | None, name: str, end: bool = False) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{name} must be an ISO date or time (2026-11-24 or "
                         f"2026-11-24T08:00:00), got '{str(value)[:40]}'") from None
    if end and len(str(value).strip()) <= 10:  # a date: the whole day
        parsed = datetime.combine(parsed.date(), time()) + timedelta(days=1)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_filters(args) -> dict:
    """The event filters of a query string, checked (a 400 names a bad one)."""
    filters = {"machine": (args.get("machine") or "").strip()[:128] or None,
               "model": (args.get("model") or "").strip()[:64] or None,
               "since": _when(args.get("from"), "from"),
               "until": _when(args.get("to"), "to", end=True),
               "acknowledged": parse_flag(args.get("acknowledged"), "acknowledged")}
    if filters["since"] and filters["until"] and filters["since"] >= filters["until"]:
        raise InputError("from must come before to")
    return filters


def _where(filters: dict):
    e = db.events.c
    clauses = []
    if filters.get("machine"):
        clauses.append(e.machine_id == filters["machine"])
    if filters.get("model"):
        clauses.append(e.model == filters["model"])
    if filters.get("since"):
        clauses.append(e.created >= filters["since"])
    if filters.get("until"):
        clauses.append(e.created < filters["until"])
    if filters.get("acknowledged") is not None:
        clauses.append(e.acknowledged.is_(filters["acknowledged"]))
    return and_(True, *clauses)


def query_events(filters: dict, limit: int | None = PAGE_SIZE, offset: int = 0
                 ) -> tuple[list[dict], int]:
    """Matching events, newest first, and how many match in all."""
    where = _where(filters)
    with db.engine().connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(db.events).where(where))
                    .scalar())
        query = select(*[db.events.c[c] for c in COLUMNS]).where(where) \
            .order_by(db.events.c.id.desc()).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        rows = [dict(r) for r in conn.execute(query).mappings()]
    return rows, total


def acknowledge(event_id: int) -> dict | None:
    """Mark an event acknowledged (once; the first time is kept); the event, or None."""
    e = db.events.c
    with db.engine().begin() as conn:
        conn.execute(update(db.events).where(e.id == event_id, e.acknowledged.is_(False))
                     .values(acknowledged=True, acknowledged_at=datetime.now(timezone.utc)))
        row = conn.execute(select(*[e[c] for c in COLUMNS]).where(e.id == event_id)) \
            .mappings().first()
    return dict(row) if row else None


def filter_values() -> dict:
    """Machines and models that have events (for the page's pickers)."""
    e = db.events.c
    with db.engine().connect() as conn:
        machines = [r[0] for r in conn.execute(select(e.machine_id).distinct()
                                               .order_by(e.machine_id).limit(500))]
        models = [r[0] for r in conn.execute(select(e.model).distinct().order_by(e.model))]
    return {"machines": machines, "models": models}


def _json(row: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def _paging(args) -> tuple[int, int]:
    limit = parse_count(args.get("limit"), "limit")
    offset = parse_count(args.get("offset"), "offset") or 0
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit must be from 1 to {MAX_LIMIT}, got {limit}")
    return (limit or PAGE_SIZE), offset


def _csv(filters: dict):
    rows, _ = query_events(filters, limit=None)
    frame = pd.DataFrame([_json(r) for r in rows], columns=list(COLUMNS))
    frame["machine_id"] = frame["machine_id"].astype("string")
    frame["timestamp"] = frame["timestamp"].astype("string")
    return csv_response(frame, "fablens_events.csv")


@bp.get("/api/v1/events")
def list_events():
    """Events, newest first, filtered; ``?format=csv`` downloads every matching one."""
    filters = parse_filters(request.args)
    if request.args.get("format") == "csv":
        return _csv(filters)
    limit, offset = _paging(request.args)
    rows, total = query_events(filters, limit, offset)
    return jsonify(total=total, limit=limit, offset=offset,
                   filters={k: (v.isoformat() if isinstance(v, datetime) else v)
                            for k, v in filters.items()},
                   events=[_json(r) for r in rows])


@bp.post("/api/v1/events/<int:event_id>/acknowledge")
def acknowledge_api(event_id: int):
    """Acknowledge one event; the event as stored."""
    row = acknowledge(event_id)
    if row is None:
        abort(404, description=f"no event {event_id}")
    return jsonify(_json(row))


@bp.get("/history/events")
def page():
    """Events: filter by machine, model, date and acknowledged state; acknowledge; download."""
    try:
        filters = parse_filters(request.args)
        error = None
    except InputError as exc:
        filters, error = {}, exc.description
    offset = parse_count(request.args.get("offset"), "offset") or 0
    rows, total = query_events(filters, PAGE_SIZE, offset)
    args = {k: v for k, v in request.args.items() if k != "offset" and v}
    return render_template("events.html", events=rows, total=total, offset=offset,
                           page_size=PAGE_SIZE, args=args, error=error, **filter_values(),
                           csv_url=url_for("events.list_events", format="csv", **args))


@bp.post("/history/events/<int:event_id>/acknowledge")
def acknowledge_page(event_id: int):
    """The page's acknowledge button: acknowledge, then back to the same filtered list."""
    if acknowledge(event_id) is None:
        abort(404, description=f"no event {event_id}")
    back = {k: v for k, v in request.form.items() if k in ("machine", "model", "from", "to",
                                                           "acknowledged", "offset") and v}
    return redirect(url_for("events.page", **back) + f"#event-{event_id}")
