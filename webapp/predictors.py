"""Each ready module's predictor, loaded once per worker process, never at import.

A served worker loads every ready module in a background thread as it starts
(:func:`start_loading`, called from gunicorn's ``post_worker_init``), so readiness only reports
how far that got (:func:`loading_state`) and no health check waits on a model load. A request
that needs a predictor before then loads it itself (:func:`get_predictor`); both take the same
lock, so nothing is loaded twice.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from flask import Flask, current_app

from webapp import metrics
from webapp.registry import get_module, ready_modules

logger = logging.getLogger(__name__)

_lock = threading.Lock()  # held while a predictor loads
_start_lock = threading.Lock()  # held only to start the loader, so readiness never waits on a load
CACHE, STATES, LOADER = "fablens_predictors", "fablens_predictor_states", "fablens_loader"


def get_predictor(name: str):
    """The ready module's predictor for this app, loaded from ``ARTIFACTS_DIR/<name>`` on first use.

    Models use ``MODEL_THREADS`` threads each (config), whatever they were trained with. The
    outcome (ready, or failed with the reason) is what readiness reports for the module.
    """
    cache = current_app.extensions[CACHE]
    if name not in cache:
        with _lock:
            if name not in cache:
                states = current_app.extensions[STATES]
                states[name] = {"state": "loading"}
                spec = get_module(name)
                directory = Path(current_app.config["ARTIFACTS_DIR"]) / name
                start = time.perf_counter()
                try:
                    cache[name] = spec.predictor(
                        directory, n_jobs=int(current_app.config["MODEL_THREADS"]))
                except Exception as exc:
                    states[name] = {"state": "failed", "error": str(exc) or type(exc).__name__}
                    raise
                metrics.record_model_load(name, time.perf_counter() - start)
                states[name] = {"state": "ready"}
    return cache[name]


def _load_all(app: Flask) -> None:
    with app.app_context():
        for spec in ready_modules():
            try:
                get_predictor(spec.name)
            except Exception:  # recorded in the module's state; readiness names it
                logger.exception("could not load the %s models", spec.name)


def start_loading(app: Flask) -> threading.Thread:
    """Start loading every ready module's predictor in a background thread (once per app)."""
    with _start_lock:
        thread = app.extensions.get(LOADER)
        if thread is None:
            thread = threading.Thread(target=_load_all, args=(app,), daemon=True,
                                      name="fablens-model-loader")
            app.extensions[LOADER] = thread
            thread.start()
    return thread


def loading_state(app: Flask, wait: float = 0.0) -> dict[str, dict]:
    """Each ready module's state, ``waiting``, ``loading``, ``ready`` or ``failed`` (with its
    ``error``), after waiting at most ``wait`` seconds for the loader (started if it was not)."""
    start_loading(app).join(wait)
    states = app.extensions[STATES]
    return {spec.name: dict(states.get(spec.name, {"state": "waiting"}))
            for spec in ready_modules()}


def init_app(app: Flask) -> None:
    """Give the app an empty predictor cache (nothing is loaded until a worker starts or a
    request needs it)."""
    app.extensions[CACHE] = {}
    app.extensions[STATES] = {}
