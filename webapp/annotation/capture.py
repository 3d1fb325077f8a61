"""A run's least sure items into the review queue, once the run is recorded.

A module's ``serve`` hands :func:`after_run` a function that yields its run's queue items
(:mod:`webapp.annotation.kinds`); the prediction service calls the result with the run's id
(``Prediction.after_record``). At most ``REVIEW_PER_RUN`` items a run are kept (0: none), and
the module's unlabelled items are pruned to ``REVIEW_KEEP_DAYS`` and ``REVIEW_KEEP_ITEMS``.
Storing them never fails the prediction: a problem is logged and the answer goes out as it was.
"""
from __future__ import annotations

import logging
from typing import Callable, Iterable

from flask import current_app

from webapp.annotation import store

logger = logging.getLogger(__name__)


def after_run(module: str, items: Callable[[int], Iterable[dict]]) -> Callable[[int], dict]:
    """``after_record`` for a run of ``module``: stores ``items(limit)`` with the run's id."""
    def after(run_id: int) -> dict:
        config = current_app.config
        limit = int(config["REVIEW_PER_RUN"])
        if limit <= 0:
            return {}
        try:
            store.add_items(module, run_id, items(limit), keep_days=int(config["REVIEW_KEEP_DAYS"]),
                            keep_items=int(config["REVIEW_KEEP_ITEMS"]))
        except Exception:
            logger.exception("run %s: its items could not be added to the review queue", run_id)
        return {}

    return after
