"""Site pages that belong to no single module: home and history."""
from __future__ import annotations

from flask import Blueprint, render_template

from webapp import db

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    """Home page: one card per registered module (navigation comes from the same registry)."""
    return render_template("index.html")


@bp.get("/history")
def history():
    """Recent prediction runs."""
    return render_template("history.html", runs=db.recent_runs())
