"""Site pages that belong to no single module: home, models, history."""
from __future__ import annotations

from flask import Blueprint, render_template

from webapp import db

bp = Blueprint("pages", __name__)

MODULES = [
    {"endpoint": "sensor.page", "name": "Sensor", "ready": True,
     "text": "One row of ~590 process-sensor readings per wafer: predict which wafers fail, "
             "and which sensors point to the cause."},
    {"endpoint": None, "name": "Wafer map", "ready": False,
     "text": "Die pass/fail grids: classify the defect pattern (coming next)."},
    {"endpoint": None, "name": "Time series", "ready": False,
     "text": "Machine sensor histories: flag abnormal behaviour, estimate remaining useful life "
             "(coming next)."},
    {"endpoint": None, "name": "Inspection", "ready": False,
     "text": "Product photos: detect and localise visual anomalies (coming next)."},
]


@bp.get("/")
def index():
    """Home page linking the modules."""
    return render_template("index.html", modules=MODULES)


@bp.get("/history")
def history():
    """Recent prediction runs."""
    return render_template("history.html", runs=db.recent_runs())
