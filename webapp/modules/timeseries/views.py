"""The time-series page: bring a history, review it, score it with a model, chart each machine.

Charts are drawn with plotly.js, served by this app from the plotly Python package's own copy
(``/timeseries/vendor/plotly.min.js``): no CDN.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, jsonify, request, send_file, url_for

from pipelines.timeseries.examples import history_csv, synthetic_history
from webapp.limits import heavy_slot
from webapp.modules import get_module
from webapp.modules.timeseries.parsing import file_request
from webapp.pagekit import page_config, render_module_page
from webapp.predictors import get_predictor

bp = Blueprint("timeseries", __name__, url_prefix="/timeseries")

EXTENSIONS = (".txt", ".csv", ".gz")


def plotly_js() -> Path | None:
    """plotly.min.js inside the installed plotly package (found without importing plotly)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


@bp.get("/")
def page():
    """The time-series page."""
    spec = get_module("timeseries")
    predictor = get_predictor("timeseries")
    config = page_config(
        spec, predictor, sensors=predictor.sensors, input_sensors=predictor.input_sensors,
        window=predictor.window, rul_model="xgboost_rul", extensions=list(EXTENSIONS),
        sample_url=url_for("timeseries.sample"), check_url=url_for("timeseries.check"), events_url=url_for("events.page"),
        events_api=url_for("events.list_events"), plotly_url=url_for("timeseries.plotly"),
        detect_url=url_for("timeseries_api.detect_one", _external=True),
        max_windows=current_app.config["TIMESERIES_MAX_WINDOWS"])
    return render_module_page(spec, "timeseries.html", config, item_label="Cycles")


@bp.get("/vendor/plotly.min.js")
def plotly():
    """plotly.js from the installed plotly package (long cache: the file changes with the
    package version, named in the ``v`` query the page adds)."""
    path = plotly_js()
    if path is None:
        abort(404, description="plotly is not installed: pip install -r requirements.txt")
    return send_file(path, mimetype="text/javascript", max_age=86400)


@bp.get("/sample.csv")
def sample():
    """Generated machine histories (never data rows) in the CSV layout."""
    n = max(1, min(request.args.get("machines", 4, type=int), 50))
    scaler = get_predictor("timeseries").scaler
    history = synthetic_history(scaler, n, seed=request.args.get("seed", 3, type=int))
    return Response(history_csv(history), mimetype="text/csv", headers={
        "Content-Disposition": "attachment; filename=fablens_timeseries_sample.csv"})


@bp.get("/template.csv")
def template():
    """One short generated machine in the CSV layout (header: machine_id, cycle, sensors)."""
    scaler = get_predictor("timeseries").scaler
    history = synthetic_history(scaler, 1, seed=0, min_cycles=40, max_cycles=40)
    return Response(history_csv(history), mimetype="text/csv", headers={
        "Content-Disposition": "attachment; filename=fablens_timeseries_template.csv"})


@bp.post("/check")
def check():
    """Read an uploaded history without scoring it: what was read, or a 400 naming the problem."""
    with heavy_slot():
        req = file_request(request)
    series = req.series
    predictor = get_predictor("timeseries")
    missing = [s for s in predictor.sensors if s not in series.sensors]
    groups = series.groups()
    return jsonify(layout=series.layout, source=series.source, n_rows=len(series),
                   n_machines=len(groups), machine_column=series.machine_column,
                   time_column=series.time_column, sensors=series.sensors,
                   dated=series.timestamps is not None, missing_sensors=missing,
                   machines=[{"machine_id": m, "n_cycles": int(len(rows)),
                              "first_cycle": float(series.cycles[rows[0]]),
                              "last_cycle": float(series.cycles[rows[-1]]),
                              "short": bool(len(rows) < predictor.window)}
                             for m, rows in groups[:1000]],
                   problems=[], warnings=[f"machine {m}: {len(rows)} cycles, fewer than the "
                                          f"{predictor.window}-cycle window; its early windows "
                                          f"are padded with its first row"
                                          for m, rows in groups if len(rows) < predictor.window
                                          ][:20])
