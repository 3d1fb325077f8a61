"""The dashboard: every ready module's state at a glance, the home page's data.

``GET /api/v1/dashboard?days=N`` (N from 1 to 365, 30 by default) answers, per ready module:
the live version (set in the registry, else the committed release) beside the version its
loaded predictor serves; the default model's headline metric as its Models page card holds it
(name, value, interval, and the evaluation protocol it was measured with); successful runs per
UTC day over the last N days (runs, items, flagged, flagged share); the recent flag rate at
the default threshold against the false-alarm target (:func:`webapp.pages.recalibration_check`,
the Models page's check); the module's latest registry events; and each run's stored drift
value over the same days. The home page (``templates/index.html``, ``static/js/dashboard.js``)
draws it. Days are bucketed here, in Python, so the queries stay plain SQL on SQLite and
PostgreSQL.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

from flask import Blueprint, current_app, jsonify, request, url_for
from pydantic import BaseModel, Field

from pipelines.core.artifacts import BundleError
from pipelines.core.versions import version_id
from webapp import db
from webapp.errors import InputError
from webapp.openapi import documented
from webapp.registry import ready_modules

bp = Blueprint("dashboard", __name__)

DEFAULT_DAYS, MIN_DAYS, MAX_DAYS = 30, 1, 365
EVENTS = 10  # registry events per module
# the metric a card's headline shows: the first of these its chosen protocol measured
HEADLINE_METRICS = ("roc_auc", "image_auroc", "macro_f1", "f1", "accuracy", "pr_auc")


class DashboardQuery(BaseModel):
    """The query options of ``GET /api/v1/dashboard``."""

    days: int | None = Field(None, ge=MIN_DAYS, le=MAX_DAYS,
                             description=f"how many days back (UTC, today included), "
                                         f"{MIN_DAYS} to {MAX_DAYS}; {DEFAULT_DAYS} if absent")


def parse_days(value: str | None) -> int:
    """``days`` from the query string: a whole number from 1 to 365, else a 400 saying so."""
    if value is None:
        return DEFAULT_DAYS
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or not MIN_DAYS <= int(text) <= MAX_DAYS:
        raise InputError(f"days must be a whole number from {MIN_DAYS} to {MAX_DAYS}, "
                         f"got '{text[:40]}'")
    return int(text)


def _utc(moment: datetime) -> datetime:
    """A stored time in UTC (SQLite hands back naive UTC, PostgreSQL an aware time)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None \
        else moment.astimezone(timezone.utc)


def _iso(value):
    return _utc(value).isoformat() if isinstance(value, datetime) else value


def window(days: int, today: date | None = None) -> tuple[date, date]:
    """The first and last UTC day of the last ``days`` days, today included."""
    last = today or datetime.now(timezone.utc).date()
    return last - timedelta(days=days - 1), last


def per_day(rows: list[dict], first: date, last: date) -> list[dict]:
    """Runs bucketed by their UTC day, every day from ``first`` to ``last`` (zeros included):
    ``{date, runs, items, flagged, flagged_share}`` (share None on a day with no items)."""
    days = {first + timedelta(days=i): {"runs": 0, "items": 0, "flagged": 0}
            for i in range((last - first).days + 1)}
    for row in rows:
        bucket = days.get(_utc(row["created"]).date())
        if bucket is not None:
            bucket["runs"] += 1
            bucket["items"] += row["rows"]
            bucket["flagged"] += row["flagged"]
    return [{"date": d.isoformat(), **b,
             "flagged_share": b["flagged"] / b["items"] if b["items"] else None}
            for d, b in days.items()]


def headline(card: dict) -> dict | None:
    """The card's main figure: its first protocol that is not marked optimistic (the test
    protocol when there is one), and there the first of ``HEADLINE_METRICS`` it measured, else
    its first metric. Read from the card, never computed here; None without metrics."""
    columns = [c for c in card.get("columns") or [] if c.get("metrics")]
    honest = [c for c in columns if not c.get("optimistic")] or columns
    if not honest:
        return None
    column = next((c for c in honest if c["key"] == "test"), honest[0])
    metrics = column["metrics"]
    key = next((k for k in HEADLINE_METRICS if k in metrics and "value" in metrics[k]),
               next((k for k, m in metrics.items() if "value" in m), None))
    if key is None:
        return None
    metric = metrics[key]
    return {"model": card["name"], "metric": key, "label": metric["label"],
            "value": metric["value"], "ci": metric.get("ci"), "protocol": column["label"],
            "protocol_key": column["key"], "protocol_description": column.get("protocol"),
            "counts": column.get("counts") or []}


def _versions(name: str, predictor) -> dict:
    live = db.live_version(name)
    source = "registry" if live is not None else "committed"
    if live is None:
        try:
            live = version_id(Path(current_app.config["ARTIFACTS_DIR"]) / name)
        except (BundleError, OSError):
            live = None
    return {"live": live, "live_source": source,
            "serving": getattr(predictor, "release_version", None)}


def _drift(rows: list[dict]) -> dict:
    """Drift points of the newest statistic, oldest first (a release that measures another
    statistic starts a new line; earlier points are counted in ``other_points``)."""
    if not rows:
        return {"statistic": None, "level": None, "points": [], "other_points": 0}
    statistic = rows[-1]["drift"].get("statistic")
    points = [{"run": r["id"], "created": _iso(r["created"]), "value": r["drift"]["value"],
               "alert": r["drift"].get("alert")}
              for r in rows if r["drift"].get("statistic") == statistic]
    return {"statistic": statistic, "level": rows[-1]["drift"].get("level"), "points": points,
            "other_points": len(rows) - len(points)}


def module_summary(spec, first: date, last: date) -> dict:
    """One module's part of the dashboard (see the module docstring)."""
    from webapp.pages import recalibration_check
    from webapp.predictors import get_predictor

    since = datetime.combine(first, time.min, tzinfo=timezone.utc)
    runs, runs_truncated = db.runs_per_day_since(spec.name, since)
    drift_rows, drift_truncated = db.drift_since(spec.name, since)
    out = {"name": spec.name, "title": spec.title, "page": url_for(spec.page),
           "problem": None, "version": None, "headline": None, "flag_rate": None,
           "daily": per_day(runs, first, last), "truncated": runs_truncated or drift_truncated,
           "events": [{k: _iso(v) for k, v in row.items() if k != "module"}
                      for row in db.registry_log(spec.name, limit=EVENTS)],
           "drift": _drift(drift_rows)}
    totals = {k: sum(d[k] for d in out["daily"]) for k in ("runs", "items", "flagged")}
    out["totals"] = totals | {"flagged_share": totals["flagged"] / totals["items"]
                              if totals["items"] else None}
    try:
        predictor = get_predictor(spec.name)
    except Exception as exc:  # a module that cannot load still shows its runs and events
        out["problem"] = f"the {spec.title} models are not loaded: {exc}"[:300]
        out["version"] = _versions(spec.name, None)
        return out
    out["version"] = _versions(spec.name, predictor)
    cards = predictor.cards() if hasattr(predictor, "cards") else []
    card = next((c for c in cards if c.get("default")), cards[0] if cards else None)
    if card is not None:
        out["headline"] = headline(card)
        out["models_url"] = url_for("pages.models") + f"#model-{spec.name}-{card['name']}"
        recent = recalibration_check(spec.name, card,
                                     getattr(predictor, "recalibrate_command", None))
        out["flag_rate"] = None if recent is None else recent | {"model": card["name"]}
    return out


@bp.get("/api/v1/dashboard")
@documented(query=DashboardQuery, tags=("dashboard",))
def api():
    """Every ready module over the last ``days`` UTC days: versions, headline metric, runs
    and flagged share per day, the recent flag rate against its target, registry events,
    drift."""
    days = parse_days(request.args.get("days"))
    first, last = window(days)
    return jsonify(days=days, first=first.isoformat(), last=last.isoformat(),
                   modules=[module_summary(spec, first, last) for spec in ready_modules()])
