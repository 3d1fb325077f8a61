"""Each ready module's predictor, loaded once per worker process on first use, never at import."""
from __future__ import annotations

import logging
import threading
from pathlib import Path

from flask import Flask, current_app

from webapp.modules import get_module

logger = logging.getLogger(__name__)

_lock = threading.Lock()


def get_predictor(name: str):
    """The ready module's predictor for this app, loaded from ``ARTIFACTS_DIR/<name>`` on first use.

    Models use ``MODEL_THREADS`` threads each (config), whatever they were trained with.
    """
    cache = current_app.extensions["fablens_predictors"]
    if name not in cache:
        with _lock:
            if name not in cache:
                spec = get_module(name)
                directory = Path(current_app.config["ARTIFACTS_DIR"]) / name
                cache[name] = spec.predictor(
                    directory, n_jobs=int(current_app.config["MODEL_THREADS"]))
    return cache[name]


def init_app(app: Flask) -> None:
    """Give the app an empty predictor cache (nothing is loaded until a request needs it)."""
    app.extensions["fablens_predictors"] = {}
