"""Bounded work per worker: large requests take turns, and only a few may wait, so light
requests always find a free thread and memory stays inside the instance.

A gunicorn worker serves several threads. Each large request (a body over ``HEAVY_REQUEST_MB``,
or one sent without a length: chunked, so it could be anything) needs one of
``HEAVY_SLOTS`` slots while it is parsed and scored, so two 10,000-row files never peak
together. At most ``HEAVY_QUEUE`` more wait for a slot, each at most ``HEAVY_WAIT_SECONDS``;
a large request that finds the queue full is answered at once with 503 and ``Retry-After``
rather than holding a thread for minutes. So at most ``HEAVY_SLOTS + HEAVY_QUEUE`` threads
are ever busy with large requests, and the rest of the worker's threads answer single rows,
windows, photos and ``/health`` promptly. Small requests never wait here.

Every request also gets ``REQUEST_BUDGET_SECONDS`` of work (:mod:`pipelines.core.budget`),
counted from its start, or for a large request from the moment it gets its slot: the loops
that read and score in chunks stop past it, and the request is answered 503.
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from flask import Flask, current_app, g, request
from werkzeug.exceptions import ServiceUnavailable

from pipelines.core import budget

logger = logging.getLogger(__name__)

HEAVY = "fablens_heavy"
RETRY_AFTER_SECONDS = 30


@dataclass
class HeavyQueue:
    """The worker's slots for large requests and how many wait for one."""

    slots: threading.BoundedSemaphore
    waiting: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def init_app(app: Flask) -> None:
    """One queue per app (per worker process), and every request's time budget."""
    app.extensions[HEAVY] = HeavyQueue(threading.BoundedSemaphore(app.config["HEAVY_SLOTS"]))
    app.before_request(_start_budget)
    app.teardown_request(_stop_budget)


def _start_budget() -> None:
    g.budget_token = budget.start(float(current_app.config["REQUEST_BUDGET_SECONDS"]))


def _stop_budget(_exc) -> None:
    token = g.pop("budget_token", None)
    if token is not None:
        try:
            budget.stop(token)
        except ValueError:  # made in another context (a streamed answer's): it ends with it
            pass


def is_heavy() -> bool:
    """A body over ``HEAVY_REQUEST_MB``, or one of unknown length."""
    length = request.content_length
    if length is None:
        return "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    return length > current_app.config["HEAVY_REQUEST_MB"] * 1024 * 1024


def busy(message: str) -> ServiceUnavailable:
    return ServiceUnavailable(message, retry_after=RETRY_AFTER_SECONDS)


@contextmanager
def heavy_slot() -> Iterator[None]:
    """Hold a slot for the current request when it is large; no-op for small ones."""
    if not is_heavy():
        yield
        return
    queue: HeavyQueue = current_app.extensions[HEAVY]
    config = current_app.config
    if not queue.slots.acquire(blocking=False):
        with queue.lock:
            if queue.waiting >= config["HEAVY_QUEUE"]:
                logger.warning("large request refused: %d scoring, %d waiting",
                               config["HEAVY_SLOTS"], queue.waiting)
                raise busy(f"the server is busy scoring other large files ({queue.waiting} "
                           f"waiting); try again in {RETRY_AFTER_SECONDS} s")
            queue.waiting += 1
        try:
            got = queue.slots.acquire(timeout=config["HEAVY_WAIT_SECONDS"])
        finally:
            with queue.lock:
                queue.waiting -= 1
        if not got:
            logger.warning("large request refused: waited %s s", config["HEAVY_WAIT_SECONDS"])
            raise busy("the server is busy scoring other large files; try again in a minute")
    token = budget.start(float(config["REQUEST_BUDGET_SECONDS"]))  # from the slot on
    try:
        yield
    finally:
        budget.stop(token)
        queue.slots.release()
