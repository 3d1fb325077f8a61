"""Site pages that belong to no single module: home, history and the models."""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, render_template, request, url_for

from pipelines.core.thresholds import flag_rate_check
from webapp import db
from webapp.dashboard import DEFAULT_DAYS, MAX_DAYS, MIN_DAYS, parse_days
from webapp.errors import InputError
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


@bp.get("/history")
def history():
    """Recent prediction runs, or with ``?run=<id>`` that run alone (however old it is)."""
    run = request.args.get("run", type=int)
    return render_template("history.html", runs=db.recent_runs(run_id=run), one_run=run)


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
