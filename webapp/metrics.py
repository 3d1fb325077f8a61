"""``/metrics``: the server's counters in Prometheus' text format (prometheus_client).

What is counted, each in one place:

- ``fablens_http_requests_total`` and ``fablens_http_request_duration_seconds`` (labels
  ``endpoint``: the Flask endpoint name, ``method``, ``status``): every request, in this
  module's ``after_request`` hook, never in a view. The duration runs from Flask's
  ``request_started`` signal (before the access check) to the response being ready; a streamed
  body's transfer is not in it. Requests that match no route are ``endpoint="none"``, and an
  unusual method is ``method="other"``, so a scanner cannot grow the label sets.
- ``fablens_prediction_runs_total``, ``fablens_predicted_items_total`` and
  ``fablens_flagged_items_total`` (labels ``module``, ``version``: the model version that scored
  them): by the one prediction service, ``webapp.prediction``, once a run is recorded.
- ``fablens_model_load_seconds`` (label ``module``): how long a worker took to load the module's
  predictor, most recent load (``webapp.predictors``).
- ``fablens_shadow_runs_total`` (labels ``module``, ``version``, ``status``: ok, skipped,
  failed) and ``fablens_shadow_lag_seconds`` (label ``module``): shadow scoring of live runs
  by a candidate, and how long after the live run its scores were stored (``webapp.shadow``).

Under gunicorn every worker is its own process, so the counters live in prometheus_client's
multiprocess mode: ``webapp/gunicorn_conf.py`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
directory before the workers fork, every worker writes its values there, and ``/metrics``
(in whichever worker answers) sums them. Without gunicorn (tests, ``flask run``) there is one
process and the default registry answers.

Who may read it: ``METRICS_TOKEN`` (``FABLENS_METRICS_TOKEN``): a caller sending
``Authorization: Bearer <that token>``; ``METRICS_ALLOW`` (``FABLENS_METRICS_ALLOW``): clients
from these comma-separated networks (default loopback, ``127.0.0.1/8,::1``; ``none``: no
network, the token only). Anyone else gets 403. The access table lists the endpoint as public
(no account needed); this rule is checked by the view.
"""
from __future__ import annotations

import hmac
import ipaddress
import os
import time

from flask import Blueprint, Flask, Response, abort, current_app, request, request_started
from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge,
                               Histogram, generate_latest)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DEFAULT_ALLOW = "127.0.0.1/8,::1"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# seconds: page and API answers (milliseconds) up to large uploads scored in chunks (minutes)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUESTS = Counter("fablens_http_requests", "HTTP requests answered",
                   ("endpoint", "method", "status"))
LATENCY = Histogram("fablens_http_request_duration_seconds",
                    "Time from the request's start to its response being ready",
                    ("endpoint", "method", "status"), buckets=LATENCY_BUCKETS)
RUNS = Counter("fablens_prediction_runs", "Prediction runs recorded", ("module", "version"))
ITEMS = Counter("fablens_predicted_items", "Items scored (rows, maps, cycles, photos)",
                ("module", "version"))
FLAGGED = Counter("fablens_flagged_items", "Items flagged at the run's threshold",
                  ("module", "version"))
MODEL_LOAD = Gauge("fablens_model_load_seconds", "Time the most recent load of the module's "
                   "predictor took", ("module",), multiprocess_mode="mostrecent")

SHADOW = Counter("fablens_shadow_runs", "Live runs a shadow candidate was asked to score, by "
                 "outcome (ok, skipped, failed)", ("module", "version", "status"))
SHADOW_LAG = Histogram("fablens_shadow_lag_seconds", "Time from the live run being recorded to "
                       "the candidate's scores being stored", ("module",),
                       buckets=LATENCY_BUCKETS)

bp = Blueprint("metrics", __name__)
START = "fablens_metrics_start"  # attribute of the request: perf_counter at its start


def record_prediction(module: str, version: str | None, n_items: int, n_flagged: int) -> None:
    """Count one recorded run (called by the prediction service only)."""
    labels = (module, version or "")
    RUNS.labels(*labels).inc()
    ITEMS.labels(*labels).inc(n_items)
    FLAGGED.labels(*labels).inc(n_flagged)


def record_shadow(module: str, version: str, status: str, lag: float | None) -> None:
    """Count one shadow scoring of a live run and its lag (called by ``webapp.shadow``)."""
    SHADOW.labels(module, version, status).inc()
    if lag is not None:
        SHADOW_LAG.labels(module).observe(lag)


def record_model_load(module: str, seconds: float) -> None:
    """How long loading ``module``'s predictor took (called where predictors are loaded)."""
    MODEL_LOAD.labels(module).set(seconds)


def _started(sender, **extra) -> None:
    setattr(request._get_current_object(), START, time.perf_counter())


def _count(response):
    start = getattr(request, START, None)
    method = request.method if request.method in METHODS else "other"
    labels = (request.endpoint or "none", method, str(response.status_code))
    REQUESTS.labels(*labels).inc()
    if start is not None:
        LATENCY.labels(*labels).observe(time.perf_counter() - start)
    return response


def parse_networks(value) -> tuple:
    """``METRICS_ALLOW``: comma-separated networks (or addresses), ``none`` or empty: none."""
    from webapp.config import ConfigError

    if isinstance(value, (list, tuple)):
        value = ",".join(value)
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    if items == ["none"]:
        return ()
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in items)
    except ValueError as exc:
        raise ConfigError(f"METRICS_ALLOW (FABLENS_METRICS_ALLOW) {value!r} is not a list of "
                          f"networks: {exc}") from None


def allowed() -> bool:
    """A bearer token equal to ``METRICS_TOKEN``, or a client in ``METRICS_ALLOW``."""
    token = current_app.config.get("METRICS_TOKEN")
    if token:
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(credential.strip().encode(),
                                                              token.encode()):
            return True
    try:
        address = ipaddress.ip_address((request.remote_addr or "").split("%")[0])
    except ValueError:
        return False
    if getattr(address, "ipv4_mapped", None):
        address = address.ipv4_mapped
    return any(address in network for network in current_app.extensions["fablens_metrics"])


def registry():
    """The registry to answer from: every worker's values under gunicorn, else this process's."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)
        return collected
    return REGISTRY


@bp.route("/metrics")
def metrics():
    """Prometheus text format (``text/plain; version=0.0.4``)."""
    if not allowed():
        abort(403, description="metrics are open to the networks in FABLENS_METRICS_ALLOW, or "
                               "to 'Authorization: Bearer <FABLENS_METRICS_TOKEN>'")
    return Response(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    """Check the access settings, count every request, serve ``/metrics``."""
    app.config.setdefault("METRICS_TOKEN", None)
    app.config.setdefault("METRICS_ALLOW", DEFAULT_ALLOW)
    app.extensions["fablens_metrics"] = parse_networks(app.config["METRICS_ALLOW"])
    request_started.connect(_started, app)
    app.after_request(_count)
    app.register_blueprint(bp)
