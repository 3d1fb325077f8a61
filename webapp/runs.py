"""A run's record as it happens, and its stored results, downloaded again from the page or
History.

Every predict request is a run from its start (:func:`recorded_run`): ``running`` while it
works, then done, or failed with its reason (a 4xx: refused), so a worker that dies mid-run
leaves a run that is closed for it later. After a run closes, the worker keeps the records
bounded at most every ``PRUNE_MINUTES`` (:func:`keep_records_tidy`).
``GET /runs/<id>/results.csv`` returns every row as scored; ``?threshold=<t>`` re-decides each
row at ``t`` (the model's scores are stored, so nothing is re-scored) and ``&flagged=1`` keeps
the flagged rows only. Each download is recorded with the threshold it was decided at, so
History shows what the file a user took away actually said.
"""
from __future__ import annotations

import gzip
import logging
import io
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import pandas as pd
from flask import Blueprint, abort, current_app, request, url_for
from werkzeug.exceptions import HTTPException

from pipelines.core.thresholds import flagged
from webapp import db
from webapp.downloads import FLAGGED, csv_response
from webapp.errors import as_http_error
from webapp.registry import ResultsDecision, registered
from webapp.params import check_threshold_range, parse_threshold
from webapp.predictors import get_predictor

logger = logging.getLogger(__name__)
bp = Blueprint("runs", __name__)


def _source() -> str | None:
    """The upload's file name ("json" for a body without files); None when the body itself
    was refused (too large): there is no name to read."""
    try:
        files = [f.filename for f in request.files.getlist("file") if f.filename]
    except HTTPException:
        return None
    return files[0] if files else "json"


def _close_failed(run_id: int, reason: str, http_status: int) -> None:
    """Close a run as failed; a database that cannot take it is logged, never turned into the
    answer (the user still gets the request's own 4xx or 500)."""
    try:
        db.fail_run(run_id, reason, http_status)
    except Exception:
        logger.exception("could not record run %s as failed (%s)", run_id, reason)


@contextmanager
def recorded_run(module: str) -> Iterator[int | None]:
    """A predict request of ``module`` as a run, from its start: recorded ``running`` (who,
    the file's name, when, this worker) before the block, whose work closes it as done
    (:func:`webapp.db.finish_run`); yields its id (None: the database could not take the
    start, which is logged; the block records the run when it is done, or fails then).

    A request that fails closes it as failed with its reason, then answers: a refused one
    (400/413/415, the core's input errors translated as the app answers them:
    :func:`webapp.errors.as_http_error`) keeps its message and code; an unexpected error is
    recorded as an HTTP 500 naming the exception's type only (the traceback goes to the log,
    not to History). A database that cannot take the record never changes the answer.
    """
    try:
        run_id = db.start_run(module, _source())
    except Exception:
        logger.exception("could not record the start of a %s run", module)
        run_id = None
    try:
        yield run_id
    except Exception as exc:
        error = as_http_error(exc)
        if run_id is not None and error is None:
            _close_failed(run_id, f"HTTP 500: unexpected {type(exc).__name__} on the server; "
                                  f"the error was logged", 500)
        elif run_id is not None:
            _close_failed(run_id, f"HTTP {error.code}: {error.description or error.name}",
                          error.code)
        raise
    finally:
        keep_records_tidy()


TIDIED, TIDYING = "fablens_tidied_at", "fablens_tidying"


def keep_records_tidy() -> None:
    """Close the runs dead workers left and apply retention (:func:`webapp.db.tidy_records`),
    at most every ``PRUNE_MINUTES`` per worker and one thread at a time: each pass removes
    only what came in since the last, so it stays a few cheap statements. Never fails the
    request: a problem is logged, and the next pass tries again."""
    app = current_app._get_current_object()
    due = app.extensions.get(TIDIED, float("-inf")) + app.config["PRUNE_MINUTES"] * 60
    lock = app.extensions.setdefault(TIDYING, threading.Lock())
    if time.monotonic() < due or not lock.acquire(blocking=False):
        return
    try:
        app.extensions[TIDIED] = time.monotonic()
        db.tidy_records(db.engine(), app.config)
    except Exception:
        logger.exception("keeping the records tidy failed; trying again in %s minutes",
                         app.config["PRUNE_MINUTES"])
    finally:
        lock.release()


def run_url(run_id: int | None) -> str | None:
    """Where a run is listed: History showing that run alone, however old it is."""
    return None if run_id is None else url_for("pages.history", run=run_id,
                                               _anchor=f"run-{run_id}")


def _score_range(module: str, model: str) -> tuple[float, float]:
    try:
        return get_predictor(module).models[model].score_range
    except (KeyError, ValueError, OSError):
        return (-float("inf"), float("inf"))


def _decision(module: str) -> ResultsDecision:
    return next((s.decision for s in registered() if s.name == module), ResultsDecision())


def redecide(frame: pd.DataFrame, score_column: str, threshold: float,
             decision: ResultsDecision = ResultsDecision()) -> pd.DataFrame:
    """The stored results decided at ``threshold`` (text columns kept exactly as stored)."""
    scores = pd.to_numeric(frame[score_column], errors="coerce").to_numpy(dtype=float)
    out = frame.copy()
    flags = flagged(scores, threshold, below=decision.below)
    out[decision.flag] = np.where(flags, "True", "False")
    if FLAGGED in out:  # the shared word beside the module's own (webapp.downloads)
        out[FLAGGED] = out[decision.flag]
    if decision.verdict is not None and decision.verdict in out:
        out[decision.verdict] = np.where(flags, *decision.verdict_words)
    out[decision.threshold] = repr(float(threshold))
    return out


@bp.get("/runs/<id:run_id>/results.csv")
def results(run_id: int):
    """Every row of a run's results, at the run's threshold or at ``?threshold=``."""
    stored = db.load_results(run_id)
    if stored is None:
        abort(404, description=f"run {run_id} has no stored results (only the latest runs keep "
                               f"theirs); score the file again")
    threshold = parse_threshold(request.args.get("threshold"))
    flagged_only = request.args.get("flagged") in ("1", "true")
    frame = pd.read_csv(io.BytesIO(gzip.decompress(stored["csv_gz"])), dtype=str,
                        keep_default_na=False)
    decision = _decision(stored["module"])
    if threshold is not None:
        check_threshold_range(threshold, _score_range(stored["module"], stored["model"]),
                              stored["model"])
        frame = redecide(frame, stored["score_column"], threshold, decision)
    else:
        threshold = stored["threshold"]
    flagged = frame[decision.flag].eq("True")
    if flagged_only:
        frame = frame[flagged]
    db.record_download(run_id, float(threshold), int(flagged.sum()), len(frame), flagged_only)
    suffix = "_flagged" if flagged_only else ""
    return csv_response(frame, f"{stored['module']}_run{run_id}_results{suffix}.csv",
                        float_decimals=None)
