"""Anomaly events: episodes of the time-series module, stored, filtered, acknowledged.

An event is one machine's unbroken stretch of flagged cycles (``pipelines.timeseries.episodes``):
its first and last cycle (and time-column text), the cycle of its peak score, how many cycles,
the peak score and the threshold it crossed, the RUL estimate at its last cycle, the model and
its version, the run it came from and when that run was made (``created``), and whether
someone acknowledged it, when and who (``acknowledged_by``). Module, machine, model, version
and ``start_key`` (the first time text, else the first cycle) name an episode, under a unique
index: scoring the same history again adds nothing, and a longer history that carries the
stretch further extends the stored event (``updated``). A window sent to the detect API with
its ``cycles`` continues the event of the same machine and model whose last cycle is the
window's previous one. Storage goes
through SQLAlchemy (``webapp.db``: a SQLite file by default, PostgreSQL with
``DATABASE_URL``); the table comes from migrations 0003, 0004 and 0006. Retention
(``webapp.db.prune``) removes events last carried on more than ``RETAIN_EVENTS_DAYS`` ago and
beyond the newest ``RETAIN_EVENTS``; an event whose run was pruned stays, naming no run.

``GET /api/v1/events`` (filters ``machine``, ``model``, ``from``, ``to`` (ISO dates or times,
UTC), ``acknowledged``; ``limit``/``offset``; ``?format=csv`` for every matching event),
``POST /api/v1/events/<id>/acknowledge``, ``POST /api/v1/events/acknowledge``
(``{"ids": [...]}``: many at once), and the page ``/history/events``.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from typing import Annotated, Literal

import pandas as pd
from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from pipelines.core.problems import plural
from webapp import db
from webapp.downloads import csv_response
from webapp.errors import InputError
from webapp.openapi import COMMON_ERRORS, documented
from webapp.params import MAX_ID, parse_count, parse_flag, read_json, validate_envelope
from webapp.runs import run_url

bp = Blueprint("events", __name__)

PAGE_SIZE = 50
MAX_LIMIT = 1000
CHUNK = 500
COLUMNS = ("id", "created", "updated", "machine_id", "first_cycle", "last_cycle", "n_cycles",
           "peak_cycle", "first_timestamp", "last_timestamp", "score", "threshold", "rul",
           "model", "model_version", "run_id", "acknowledged", "acknowledged_at",
           "acknowledged_by")
EPISODE_FIELDS = ("first_cycle", "last_cycle", "peak_cycle", "n_cycles", "first_timestamp",
                  "last_timestamp", "score", "threshold", "rul", "model", "model_version")


def start_key(cycle: float | None, timestamp: str | None) -> str | None:
    """Where an episode starts, as text: its first time text, else its first cycle (None when
    neither is known: such an event is never matched with another)."""
    if timestamp is not None:
        return str(timestamp)[:64]
    return None if cycle is None else repr(float(cycle))


def _text(value, size: int) -> str | None:
    return None if value is None else str(value)[:size]


def _episode(module: str, row: dict) -> dict:
    out = {k: row.get(k) for k in EPISODE_FIELDS}
    out.update(module=module, machine_id=str(row["machine_id"])[:128],
               n_cycles=int(row.get("n_cycles") or 1),
               first_timestamp=_text(row.get("first_timestamp"), 64),
               last_timestamp=_text(row.get("last_timestamp"), 64))
    out["start_key"] = start_key(out["first_cycle"], out["first_timestamp"])
    return out


def _stored(conn, module: str, machines: list[str]) -> list[dict]:
    e = db.events.c
    found = []
    for start in range(0, len(machines), CHUNK):
        found += [dict(r) for r in conn.execute(
            select(e.id, e.machine_id, e.model, e.model_version, e.start_key, e.first_cycle,
                   e.last_cycle, e.n_cycles, e.score)
            .where(e.module == module, e.machine_id.in_(machines[start:start + CHUNK])))
            .mappings()]
    return found


def _extend(conn, stored: dict, new: dict, n_cycles: int, when: datetime) -> None:
    """Carry a stored event on to the new episode's last cycle."""
    values = {"last_cycle": new["last_cycle"], "last_timestamp": new["last_timestamp"],
              "n_cycles": n_cycles, "rul": new["rul"], "updated": when}
    if new["score"] > stored["score"]:
        values.update(score=new["score"], peak_cycle=new["peak_cycle"])
    conn.execute(update(db.events).where(db.events.c.id == stored["id"]).values(**values))


def _write(conn, module: str, episodes: list[dict], run_id: int | None, created: datetime
           ) -> dict:
    stored = _stored(conn, module, sorted({e["machine_id"] for e in episodes}))
    by_key = {(s["machine_id"], s["model"], s["model_version"], s["start_key"]): s
              for s in stored if s["start_key"] is not None}
    new_rows, counts = [], {"new": 0, "extended": 0}
    for ep in episodes:
        same = [s for s in stored if (s["machine_id"], s["model"], s["model_version"]) ==
                (ep["machine_id"], ep["model"], ep["model_version"])]
        known = by_key.get((ep["machine_id"], ep["model"], ep["model_version"], ep["start_key"]))
        if known is not None:  # the same stretch scored again
            if known.get("id") is None:  # twice in this very input: keep the longer
                if ep["n_cycles"] > known["n_cycles"]:
                    known.update({k: v for k, v in ep.items() if k != "previous_cycle"})
            elif ep["n_cycles"] > known["n_cycles"]:
                _extend(conn, known, ep, ep["n_cycles"], created)
                counts["extended"] += 1
            continue
        previous = ep.get("previous_cycle")
        if previous is not None and ep["first_cycle"] is not None:
            if any(s["first_cycle"] is not None and s["last_cycle"] is not None and
                   s["first_cycle"] <= ep["first_cycle"] and ep["last_cycle"] <= s["last_cycle"]
                   for s in same):
                continue  # a window sent again, already inside a stored stretch
            before = [s for s in same if s["last_cycle"] == previous]
            if before:  # the next window of a stretch sent window by window
                last = max(before, key=lambda s: s["id"])
                n_cycles = last["n_cycles"] + ep["n_cycles"]
                _extend(conn, last, ep, n_cycles, created)
                last.update(last_cycle=ep["last_cycle"], n_cycles=n_cycles,
                            score=max(last["score"], ep["score"]))
                counts["extended"] += 1
                continue
        row = {k: v for k, v in ep.items() if k != "previous_cycle"}
        row.update(created=created, run_id=run_id, acknowledged=False)
        new_rows.append(row)
        if ep["start_key"] is not None:  # the row itself: a repeat in this input updates it
            by_key[(ep["machine_id"], ep["model"], ep["model_version"], ep["start_key"])] = row
    if new_rows:
        conn.execute(insert(db.events), new_rows)
    counts["new"] = len(new_rows)
    return counts


def record_events(module: str, episodes: list[dict], run_id: int | None = None) -> dict:
    """Store episodes (dicts with machine_id, first_cycle, last_cycle, peak_cycle, n_cycles,
    first_timestamp, last_timestamp, score (the peak), threshold, rul, model, model_version,
    and for a detect window its ``previous_cycle`` when known) in one transaction.

    An episode already stored (same module, machine, model, version and start) is not stored
    again: it extends the stored one when it holds more cycles. Returns ``{"events": found,
    "new": stored for the first time, "extended": stored ones carried further}``.
    """
    episodes = [_episode(module, e) | {"previous_cycle": e.get("previous_cycle")}
                for e in episodes]
    if not episodes:
        return {"events": 0, "new": 0, "extended": 0}
    for attempt in range(2):
        try:
            with db.engine().begin() as conn:
                created = None
                if run_id is not None:
                    created = conn.execute(select(db.runs.c.created)
                                           .where(db.runs.c.id == run_id)).scalar()
                counts = _write(conn, module, episodes, run_id,
                                created or datetime.now(timezone.utc))
            return {"events": len(episodes), **counts}
        except IntegrityError:  # another worker stored the same episode a moment ago
            if attempt:
                raise
    raise AssertionError("unreachable")


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


def acknowledge_many(ids: list[int]) -> tuple[list[dict], int, list[int]]:
    """Mark events acknowledged, all of them or none (the first time is kept).

    Who acknowledged them is the request's principal (``webapp.access.current_actor``).
    Returns the events as stored (in id order), how many were acknowledged now, and the ids
    that name no event (then nothing was changed)."""
    e = db.events.c
    ids = sorted(set(ids))
    if ids and ids[-1] > MAX_ID:  # the database cannot even compare it: no such event
        return [], 0, [i for i in ids if i > MAX_ID]
    with db.engine().begin() as conn:
        found = {r[0] for start in range(0, len(ids), CHUNK) for r in conn.execute(
            select(e.id).where(e.id.in_(ids[start:start + CHUNK])))}
        missing = [i for i in ids if i not in found]
        if missing:
            return [], 0, missing
        now, changed, rows = datetime.now(timezone.utc), 0, []
        who = db.actor()
        for start in range(0, len(ids), CHUNK):
            part = ids[start:start + CHUNK]
            changed += conn.execute(update(db.events)
                                    .where(e.id.in_(part), e.acknowledged.is_(False))
                                    .values(acknowledged=True, acknowledged_at=now,
                                            acknowledged_by=who)).rowcount
            rows += [dict(r) for r in conn.execute(select(*[e[c] for c in COLUMNS])
                                                   .where(e.id.in_(part)).order_by(e.id))
                     .mappings()]
    return rows, changed, []


def acknowledge(event_id: int) -> dict | None:
    """Mark an event acknowledged (once; the first time is kept); the event, or None."""
    rows, _, missing = acknowledge_many([event_id])
    return None if missing else rows[0]


def filter_values() -> dict:
    """Machines and models that have events (for the page's pickers)."""
    e = db.events.c
    with db.engine().connect() as conn:
        machines = [r[0] for r in conn.execute(select(e.machine_id).distinct()
                                               .order_by(e.machine_id).limit(500))]
        models = [r[0] for r in conn.execute(select(e.model).distinct().order_by(e.model))]
    return {"machines": machines, "models": models}


def _json(row: dict) -> dict:
    out = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
    if "run_id" in row:
        out["run_url"] = run_url(row["run_id"])
    return out


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
    for column in ("first_timestamp", "last_timestamp"):
        frame[column] = frame[column].astype("string")
    return csv_response(frame, "fablens_events.csv")


class EventsQuery(BaseModel):
    """The query options of ``GET /api/v1/events`` (read by :func:`parse_filters` and
    :func:`_paging`)."""

    machine: str | None = Field(None, description="only this machine's events")
    model: str | None = Field(None, description="only this model's events")
    from_: str | None = Field(None, alias="from", description="created at or after this ISO "
                              "date or time")
    to: str | None = Field(None, description="created before the end of this ISO date or time")
    acknowledged: str | None = Field(None, description="true or false (1 or 0)")
    limit: str | None = Field(None, description=f"events per page, 1 to {MAX_LIMIT}")
    offset: str | None = Field(None, description="events to skip")
    format: Literal["json", "csv"] | None = Field(None, description="csv: every matching event")


@bp.get("/api/v1/events")
@documented(query=EventsQuery, csv=True, tags=("events",))
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


@bp.post("/api/v1/events/<id:event_id>/acknowledge")
@documented(errors=(*COMMON_ERRORS, 404), tags=("events",))
def acknowledge_api(event_id: int):
    """Acknowledge one event; the event as stored."""
    row = acknowledge(event_id)
    if row is None:
        abort(404, description=f"no event {event_id}")
    return jsonify(_json(row))


class AcknowledgeBody(BaseModel):
    """``{"ids": [event ids]}`` for acknowledging many events at once."""

    model_config = ConfigDict(extra="forbid")
    ids: list[Annotated[StrictInt, Field(ge=1)]] = Field(min_length=1, max_length=MAX_LIMIT)


def _missing(missing: list[int]):
    shown = ", ".join(str(i) for i in missing[:10]) + (", ..." if len(missing) > 10 else "")
    word = "event" if len(missing) == 1 else "events"
    abort(404, description=f"no {word} {shown}; nothing was acknowledged")


@bp.post("/api/v1/events/acknowledge")
@documented(body=AcknowledgeBody, errors=(*COMMON_ERRORS, 404), tags=("events",))
def acknowledge_many_api():
    """Acknowledge many events at once (``{"ids": [...]}``, at most ``MAX_LIMIT``): all or,
    when an id names no event (404), none. The events as stored and how many changed now."""
    body = validate_envelope(AcknowledgeBody, read_json(request))
    rows, changed, missing = acknowledge_many(body.ids)
    if missing:
        _missing(missing)
    return jsonify(acknowledged=changed, events=[_json(r) for r in rows])


FILTERS = ("machine", "model", "from", "to", "acknowledged")


@bp.get("/history/events")
def page():
    """Events: filter by machine, model, date and acknowledged state; acknowledge one or many;
    download."""
    try:
        filters = parse_filters(request.args)
        error = None
    except InputError as exc:
        filters, error = {}, exc.description
    offset = parse_count(request.args.get("offset"), "offset") or 0
    rows, total = query_events(filters, PAGE_SIZE, offset)
    args = {k: v for k, v in request.args.items() if k in FILTERS and v}
    notice = None
    if request.args.get("selected") is not None:
        selected = parse_count(request.args.get("selected"), "selected") or 0
        n = min(parse_count(request.args.get("acked"), "acked") or 0, selected)
        notice = "No events were selected: tick the ones to acknowledge first." \
            if not selected else f"{plural(n, 'event')} acknowledged" + (
                f" ({selected - n} already {'was' if selected - n == 1 else 'were'})."
                if selected > n else ".")
    return render_template("events.html", events=rows, total=total, offset=offset,
                           page_size=PAGE_SIZE, args=args, error=error, notice=notice,
                           run_url=run_url, **filter_values(),
                           csv_url=url_for("events.list_events", format="csv", **args))


def _back(form) -> dict:
    return {k: v for k, v in form.items() if k in (*FILTERS, "offset") and v}


@bp.post("/history/events/<id:event_id>/acknowledge")
def acknowledge_page(event_id: int):
    """The page's acknowledge button: acknowledge, then back to the same filtered list."""
    if acknowledge(event_id) is None:
        abort(404, description=f"no event {event_id}")
    return redirect(url_for("events.page", **_back(request.form)) + f"#event-{event_id}")


@bp.post("/history/events/acknowledge")
def acknowledge_selected_page():
    """The page's "Acknowledge selected": the ticked events, then back to the same list,
    saying how many were acknowledged."""
    ids = []
    for value in request.form.getlist("ids"):
        if not str(value).strip().isdigit():
            raise InputError(f"event ids are whole numbers, got '{str(value)[:40]}'")
        ids.append(int(value))
    if len(ids) > MAX_LIMIT:
        raise InputError(f"at most {MAX_LIMIT} events at once, got {len(ids)}")
    changed = 0
    if ids:
        _, changed, missing = acknowledge_many(ids)
        if missing:
            _missing(missing)
    return redirect(url_for("events.page", **_back(request.form), acked=changed,
                            selected=len(set(ids))))
