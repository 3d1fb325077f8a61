"""Lazily load each module's predictor once per worker process, from ``ARTIFACTS_DIR``."""
from __future__ import annotations

import logging
import threading
from pathlib import Path

from flask import Flask, current_app

from pipelines.predict import SensorPredictor

logger = logging.getLogger(__name__)

_lock = threading.Lock()


def sensor_predictor() -> SensorPredictor:
    """The sensor predictor for this app, loaded on first use."""
    cache = current_app.extensions["fablens_models"]
    if "sensor" not in cache:
        with _lock:
            if "sensor" not in cache:
                directory = Path(current_app.config["ARTIFACTS_DIR"]) / "sensor"
                cache["sensor"] = SensorPredictor(directory)
                logger.info("loaded sensor models %s from %s", sorted(cache["sensor"].models),
                            directory)
    return cache["sensor"]


def init_app(app: Flask) -> None:
    """Give the app an empty model cache (nothing is loaded until a request needs it)."""
    app.extensions["fablens_models"] = {}
