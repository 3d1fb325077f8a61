"""Site pages that belong to no single module: home, history and the models."""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, render_template, request, url_for

from pipelines.core.thresholds import flag_rate_check
from webapp import db
from webapp.dashboard import DEFAULT_DAYS, MAX_DAYS, MIN_DAYS, parse_days
from webapp.errors import InputError
from webapp.params import parse_count
from webapp.registry import ready_modules
from webapp.predictors import get_predictor

logger = logging.getLogger(__name__)
bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    """Home page: one card per registered module (navigation comes from the same registry)
    and the dashboard of the ready ones over ``?days=`` (``webapp.dashboard``; its script
    fetches ``/api/v1/dashboard``, so the page itself loads no model). A wrong ``days`` shows
    the default and says why, rather than an error page."""
    try:
        days, days_problem = parse_days(request.args.get("days")), None
    except InputError as exc:
        days, days_problem = DEFAULT_DAYS, exc.description
    choices = sorted({7, 30, 90, 365, days})
    plotly = ("timeseries.plotly" in current_app.view_functions
              and url_for("timeseries.plotly"))
    return render_template("index.html", days=days, days_problem=days_problem,
                           day_choices=choices, plotly_url=plotly or None,
                           dashboard_api=url_for("dashboard.api"), min_days=MIN_DAYS,
                           max_days=MAX_DAYS)


HISTORY_PAGE = 50  # runs on one History page
# History's ``status`` choices -> the run outcomes listed (webapp.db.OUTCOMES; None: every run).
# By default refused requests (a 4xx: bad input, too large) are counted, not listed: however
# many there are, they never push a run that worked, failed on the server or is running off
# the first page, and one link lists them.
HISTORY_STATUS = {"": ("ok", "failed", "running"), "all": None, "ok": ("ok",),
                  "failed": ("failed",), "running": ("running",), "refused": ("refused",)}


@bp.get("/history")
def history():
    """Prediction runs, newest first, ``HISTORY_PAGE`` a page (``?before=<id>``: older ones,
    ``?after=<id>``: newer ones; pages found by id stay put while runs come in), filtered by
    ``module``, ``status`` (``HISTORY_STATUS``) and ``who`` (a user, with their tokens); or
    with ``?run=<id>`` that run alone (however old it is). A bad filter is a 400 saying so."""
    run = request.args.get("run", type=int)
    if run is not None:
        return render_template("history.html", runs=db.recent_runs(run_id=run), one_run=run)
    names = [spec.name for spec in ready_modules()]
    module = (request.args.get("module") or "").strip()
    if module and module not in names:
        raise InputError(f"module must be one of {', '.join(names)}, got '{module[:40]}'")
    status = (request.args.get("status") or "").strip()
    if status not in HISTORY_STATUS:
        raise InputError(f"status must be one of {', '.join(k for k in HISTORY_STATUS if k)} "
                         f"(or empty), got '{status[:40]}'")
    who = (request.args.get("who") or "").strip()[:128] or None
    before = parse_count(request.args.get("before"), "before")
    after = parse_count(request.args.get("after"), "after")
    filters = dict(module=module or None, outcomes=HISTORY_STATUS[status], who=who)
    page = db.list_runs(**filters, before=None if after is not None else before, after=after,
                        limit=HISTORY_PAGE)
    if after is not None and not page["runs"]:  # nothing newer: the newest page
        page = db.list_runs(**filters, limit=HISTORY_PAGE)
    args = {k: v for k, v in (("module", module), ("status", status), ("who", who)) if v}
    return render_template(
        "history.html", runs=page["runs"], one_run=None, args=args, page=page,
        page_size=HISTORY_PAGE, total=db.count_runs(**filters),
        status_choices=[k for k in HISTORY_STATUS if k],
        refused=None if status else db.count_runs(module or None, ("refused",), who),
        users=db.run_users(), module_names=names)


@bp.get("/models")
def models():
    """Every released model's card (``Predictor.cards``): data, each evaluation protocol's
    metrics with their intervals, the threshold and its false-alarm figure, versions; and the
    flag rate of recent runs on this server.

    A model whose bundle did not load is listed with its reason
    (``Predictor.unavailable_models``) beside the others' cards, and a module that cannot load
    at all is named (readiness says why), so one broken model never takes the page down."""
    cards, unavailable, failed = [], [], []
    for spec in ready_modules():
        try:
            predictor = get_predictor(spec.name)
        except Exception:  # recorded in the module's state; /health/ready names the reason
            logger.exception("the Models page shows no %s models", spec.name)
            failed.append({"module": spec.name, "module_title": spec.title})
            continue
        cards += [card | {"module": spec.name, "module_title": spec.title,
                          "recent": recalibration_check(spec.name, card,
                                                        predictor.recalibrate_command)}
                  for card in predictor.cards()]
        unavailable += [m | {"module": spec.name, "module_title": spec.title}
                        for m in predictor.unavailable_models()]
    return render_template("models.html", models=cards, unavailable=unavailable, failed=failed)


def recalibration_check(module: str, card: dict, command: str | None) -> dict | None:
    """The recent runs of a model at its default threshold against what validation says that
    threshold flags: the false-alarm rate (runs whose upload labels faulty items left out:
    their flags are not false alarms), or for a review level the share validation sent to
    review (every run: defect patterns are what a classifier is for). None without runs."""
    threshold = card.get("threshold")
    if not threshold:
        return None
    review = threshold["kind"] == "review"
    recent = db.recent_flag_rate(module, card["name"], leave_out_labelled_faulty=not review)
    if recent is None:
        return None
    expected = threshold.get("val_flagged_share") if review else threshold["false_alarm_rate"]
    check = (flag_rate_check(recent["flagged"], recent["rows"], expected)
             if recent["rows"] and expected is not None else None)
    return recent | {"review": review, "expected": expected, "check": check,
                     "command": command}
