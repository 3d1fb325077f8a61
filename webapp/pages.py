"""Site pages that belong to no single module: home, history and the models."""
from __future__ import annotations

from flask import Blueprint, render_template

from webapp import db
from webapp.modules import ready_modules
from webapp.predictors import get_predictor

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    """Home page: one card per registered module (navigation comes from the same registry)."""
    return render_template("index.html")


@bp.get("/history")
def history():
    """Recent prediction runs."""
    return render_template("history.html", runs=db.recent_runs())


@bp.get("/models")
def models():
    """Every released model's card (``Predictor.cards``): data, each evaluation protocol's
    metrics with their intervals, the threshold and its false-alarm figure, versions; and the
    flag rate of recent runs on this server."""
    cards = [card | {"module": spec.name, "module_title": spec.title,
                     "recent": db.recent_flag_rate(spec.name, card["name"])}
             for spec in ready_modules() for card in get_predictor(spec.name).cards()]
    return render_template("models.html", models=cards)
