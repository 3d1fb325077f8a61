"""Bounded work per worker: large requests take turns, so memory stays inside the instance.

A gunicorn worker serves several threads; each large upload (over ``HEAVY_REQUEST_MB``) needs
one of ``HEAVY_SLOTS`` slots while it is parsed and scored, so two 10,000-row files never
peak together. Small requests (single rows, JSON of a few wafers) never wait. A request that
cannot get a slot within ``HEAVY_WAIT_SECONDS`` gets a 503 asking to retry.
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Iterator

from flask import Flask, current_app, request
from werkzeug.exceptions import ServiceUnavailable

logger = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    """One semaphore per app (per worker process)."""
    app.extensions["fablens_heavy"] = threading.BoundedSemaphore(app.config["HEAVY_SLOTS"])


@contextmanager
def heavy_slot() -> Iterator[None]:
    """Hold a slot for the current request when it is large; no-op for small ones."""
    limit = current_app.config["HEAVY_REQUEST_MB"] * 1024 * 1024
    if (request.content_length or 0) <= limit:
        yield
        return
    slots: threading.BoundedSemaphore = current_app.extensions["fablens_heavy"]
    if not slots.acquire(timeout=current_app.config["HEAVY_WAIT_SECONDS"]):
        logger.warning("large request refused: all %d slots busy", current_app.config["HEAVY_SLOTS"])
        raise ServiceUnavailable("the server is busy scoring other large files; try again in "
                                 "a minute")
    try:
        yield
    finally:
        slots.release()
