"""Shadow scoring: a candidate version scores live requests beside the live one, off the
request's path.

An engineer attaches a candidate to a module (``webapp.versions``; the registry's ``shadow``
event). While one is attached, the prediction service (``webapp.prediction``) copies each
request it serves (:func:`snapshot`, before the module parses it: the body at most
``SHADOW_MAX_BYTES``), answers from the live version as always, records the run, and only
then hands the copy to this worker's shadow thread (:func:`submit`). That one thread waits
until the worker has answered every request and stayed idle for ``SHADOW_QUIET_SECONDS``
(the shadow work uses only spare time: sharing the interpreter with a live request would
slow it), then, at a lower CPU priority and with its models on one thread (the other cores
stay free for a live request that arrives meanwhile), rebuilds the request, has the module's own
``serve`` score it with the candidate, and stores the candidate's counts beside the live run
(``shadow_scores``): items, flagged, how many decisions agree with the live ones, the
confusion matrices of both on the items the upload labelled, its results CSV, and the lag
after the live answer. The live answer is never changed or waited for; a request that cannot
be copied (too large, a body of unknown length), that finds the thread's queue full
(``SHADOW_QUEUE``), or that waits ``SHADOW_MAX_WAIT_SECONDS`` for a quiet moment, is stored
as ``skipped`` with the reason, so the comparison says what it left out: under a saturating
load the candidate scores a sample, never at the live answers' expense.

Memory: the candidate is loaded once per worker, lazily, by the shadow thread; at most
``SHADOW_MAX_CANDIDATES`` (default 1) are attached on the server at once, and attaching one
more is refused with a message saying which is attached (:func:`capacity_problem`): the
512 MiB budget holds every module's live version and one candidate (BENCHMARKS.md).

:func:`compare` and :func:`summary` are the one place the two sides are compared, for the
API and the registry page.
"""
from __future__ import annotations

import io
import logging
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from flask import Flask, Request, current_app, g
from sqlalchemy.exc import SQLAlchemyError

from pipelines.core.confusion import multiclass_report
from webapp import db, metrics
from webapp.registry import ResultsDecision, get_module

logger = logging.getLogger(__name__)

EXECUTOR, PREDICTORS, CHECKED = "fablens_shadow", "fablens_shadow_predictors", "fablens_shadow_at"
QUIET = "fablens_shadow_quiet"  # the worker's requests in flight, for the shadow thread
NICE = 10  # how much lower the shadow thread's CPU priority is than the request threads'
TRUE = frozenset({"1", "true", "yes", "fail", "faulty", "bad", "anomalous", "defective"})
_made = threading.Lock()  # held while a worker makes its shadow thread
# request headers a rebuilt request keeps (never credentials: the thread needs none)
HEADERS = ("Content-Type", "Accept")


@dataclass(frozen=True)
class Snapshot:
    """What the shadow thread needs to send a request again: its URL, method, a few headers,
    and its body (raw bytes, or the parsed form fields and files), or why it has none."""

    path: str
    method: str
    query_string: bytes
    headers: tuple[tuple[str, str], ...]
    body: bytes | None = None
    form: tuple[tuple[str, str], ...] = ()
    files: tuple[tuple[str, str, str, bytes], ...] = ()  # field, filename, type, content
    skipped: str | None = None


# -- attached candidates ---------------------------------------------------------------------------
def wanted(module: str) -> str | None:
    """The candidate attached to ``module`` (None: none), asked of the database at most every
    ``LIVE_CHECK_SECONDS`` per worker, as the live version is."""
    checked = current_app.extensions.setdefault(CHECKED, {})
    now = time.monotonic()
    at, version = checked.get(module, (-math.inf, None))
    if now - at >= float(current_app.config["LIVE_CHECK_SECONDS"]):
        try:
            version = db.shadow_version(module)
        except SQLAlchemyError:
            version = None
        checked[module] = (now, version)
        held = current_app.extensions.get(PREDICTORS, {})
        for key in [k for k in held if k[0] == module and k[1] != version]:
            held.pop(key, None)  # detached or replaced: its memory goes back
    return version


def capacity_problem(module: str, version: str) -> str | None:
    """Why attaching ``version`` to ``module`` would not fit (None: it fits). A module's own
    candidate is replaced, so only other modules' candidates count."""
    others = {m: v for m, v in db.shadowed_modules().items() if m != module}
    limit = int(current_app.config["SHADOW_MAX_CANDIDATES"])
    if len(others) < limit:
        return None
    attached = ", ".join(f"{m} ({v})" for m, v in sorted(others.items()))
    return (f"the server holds {limit} shadow candidate{'s' if limit != 1 else ''} at once "
            f"(its memory budget of 512 MiB fits every live version and "
            f"{limit} more); {attached} {'is' if len(others) == 1 else 'are'} attached: "
            f"promote or detach {'it' if len(others) == 1 else 'one'} first")


# -- spare time ------------------------------------------------------------------------------------
class Quiet:
    """How many requests this worker is answering, and since when it has answered none."""

    def __init__(self):
        self.in_flight = 0
        self.idle_since = time.monotonic()
        self.changed = threading.Condition()

    def started(self) -> None:
        with self.changed:
            self.in_flight += 1

    def finished(self) -> None:
        with self.changed:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.idle_since = time.monotonic()
            self.changed.notify_all()

    def wait(self, quiet: float, timeout: float) -> bool:
        """Until no request has been in flight for ``quiet`` seconds (True), or ``timeout``
        seconds have passed (False)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                now = time.monotonic()
                if self.in_flight == 0 and now - self.idle_since >= quiet:
                    return True
                if now >= deadline:
                    return False
                wake = self.idle_since + quiet if self.in_flight == 0 else deadline
                self.changed.wait(max(0.001, min(wake, deadline) - now))


def _request_started() -> None:
    g.shadow_counted = True
    current_app.extensions[QUIET].started()


def _request_finished(_exc) -> None:
    if g.pop("shadow_counted", False):  # the shadow thread's own rebuilt requests are not
        current_app.extensions[QUIET].finished()


def init_app(app: Flask) -> None:
    """Count the worker's requests in flight, so the shadow thread works only in quiet times."""
    app.extensions[QUIET] = Quiet()
    app.before_request(_request_started)
    app.teardown_request(_request_finished)


# -- the request path ------------------------------------------------------------------------------
def snapshot(request: Request) -> Snapshot:
    """A copy of ``request`` the shadow thread can send again, taken before the module reads
    it (its body stays readable: raw bodies are cached, uploaded files rewound)."""
    base = dict(path=request.path, method=request.method,
                query_string=request.query_string,
                headers=tuple((h, request.headers[h]) for h in HEADERS if h in request.headers))
    limit = int(current_app.config["SHADOW_MAX_BYTES"])
    length = request.content_length
    if length is None:
        return Snapshot(**base, skipped="the request did not say its length")
    if length > limit:
        return Snapshot(**base, skipped=f"the request ({length:,} bytes) is larger than the "
                                        f"{limit:,} bytes a candidate is sent")
    if request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        files = []
        for field, storage in request.files.items(multi=True):
            storage.stream.seek(0)
            files.append((field, storage.filename or "", storage.mimetype or "",
                          storage.stream.read()))
            storage.stream.seek(0)
        return Snapshot(**base, form=tuple(request.form.items(multi=True)), files=tuple(files))
    return Snapshot(**base, body=request.get_data(cache=True))


def _executor(app: Flask) -> tuple[ThreadPoolExecutor, threading.BoundedSemaphore]:
    """This worker's one shadow thread and the slots of its queue (made on first use, in
    the worker, never before gunicorn forks)."""
    with _made:
        found = app.extensions.get(EXECUTOR)
        if found is None:
            found = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="fablens-shadow",
                                        initializer=_lower_priority),
                     threading.BoundedSemaphore(int(app.config["SHADOW_QUEUE"])))
            app.extensions[EXECUTOR] = found
    return found



def _lower_priority() -> None:
    """The shadow thread (and the model threads it starts) yields the CPU to requests."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
    except (AttributeError, OSError):  # not Linux, or not allowed: run at the same priority
        pass


def submit(module: str, version: str, copy: Snapshot, live_csv: bytes, run_id: int,
           serve) -> None:
    """Score ``copy`` with candidate ``version`` of ``module`` on this worker's shadow thread
    by the module's ``serve`` (the live one's), after the live answer (``live_csv``, run
    ``run_id``); stored as skipped when it cannot."""
    if copy.skipped:
        _store_skip(module, version, run_id, copy.skipped)
        return
    app = current_app._get_current_object()
    executor, slots = _executor(app)
    if not slots.acquire(blocking=False):
        _store_skip(module, version, run_id, "the shadow scorer was busy with earlier requests")
        return
    queued = time.monotonic()

    def work():
        try:
            _score(app, module, version, copy, live_csv, run_id, queued, serve)
        finally:
            slots.release()

    executor.submit(work)


def _store_skip(module: str, version: str, run_id: int, reason: str) -> None:
    db.record_shadow(run_id, module, version, status="skipped", error=reason)
    metrics.record_shadow(module, version, "skipped", None)


def candidate_predictor(app: Flask, module: str, version: str):
    """The candidate's predictor, loaded once per worker; other candidates are dropped first,
    so at most one is held beside the live versions."""
    from webapp.predictors import load_version

    held = app.extensions.setdefault(PREDICTORS, {})
    key = (module, version)
    if key not in held:
        held.clear()
        held[key] = load_version(module, version, threads=1)  # a core left to live requests
    return held[key]


def _score(app: Flask, module: str, version: str, copy: Snapshot, live_csv: bytes,
           run_id: int, queued: float, serve) -> None:
    waited = float(app.config["SHADOW_MAX_WAIT_SECONDS"])
    if not app.extensions[QUIET].wait(float(app.config["SHADOW_QUIET_SECONDS"]), waited):
        with app.app_context():
            _store_skip(module, version, run_id, f"the server was never idle within "
                                                 f"{waited:g} s of the live answer")
        return
    builder = dict(path=copy.path, method=copy.method, query_string=copy.query_string,
                   headers=list(copy.headers))
    if copy.body is not None:
        builder["data"] = copy.body
    else:
        data: dict = {}
        for field, value in copy.form:
            data.setdefault(field, []).append(value)
        for field, filename, mimetype, content in copy.files:
            data.setdefault(field, []).append((io.BytesIO(content), filename, mimetype))
        builder["data"] = data
        builder["content_type"] = "multipart/form-data"
        builder["headers"] = [h for h in builder["headers"] if h[0] != "Content-Type"]
    with app.test_request_context(**builder):
        from flask import request

        try:
            predictor = candidate_predictor(app, module, version)
            out = serve(predictor, request)
            found = compare(live_csv, out.csv.data(), get_module(module).decision)
        except Exception as exc:  # the candidate's problem is stored, never the live one's
            reason = getattr(exc, "description", None) or str(exc) or type(exc).__name__
            logger.warning("shadow %s %s could not score run %s: %s", module, version,
                           run_id, reason)
            db.record_shadow(run_id, module, version, status="failed", error=str(reason))
            metrics.record_shadow(module, version, "failed", None)
            return
        lag = time.monotonic() - queued
        db.record_shadow(run_id, module, version, model=out.model, threshold=out.threshold,
                         n_items=out.n_items, n_flagged=out.n_flagged, n_agree=found["agree"],
                         labelled=found["labelled"], lag_seconds=lag,
                         csv_gz=out.csv.gzipped())
        metrics.record_shadow(module, version, "ok", lag)


# -- comparing the two sides ------------------------------------------------------------------
def _truth(values: pd.Series) -> np.ndarray:
    return values.str.strip().str.lower().isin(TRUE).to_numpy()


def compare(live_csv: bytes, shadow_csv: bytes, decision: ResultsDecision) -> dict:
    """How the candidate's results CSV agrees with the live one, row by row: ``agree`` (items
    whose flag is the same) and ``labelled``: where the upload labelled items (the
    ``decision.label`` column), each side's confusion matrix over ``classes`` (a binary module:
    the flag against the label; ``decision.predicted``: that column against it)."""
    live = pd.read_csv(io.BytesIO(live_csv), dtype=str, keep_default_na=False)
    shadow = pd.read_csv(io.BytesIO(shadow_csv), dtype=str, keep_default_na=False)
    if len(live) != len(shadow):
        raise ValueError(f"the candidate scored {len(shadow)} items where the live version "
                         f"scored {len(live)}")
    agree = int((live[decision.flag].to_numpy() == shadow[decision.flag].to_numpy()).sum())
    labelled = None
    if decision.label and decision.label in live and decision.label in shadow:
        known = live[decision.label].str.strip().ne("").to_numpy()
        if known.any():
            truth = live[decision.label][known]
            if decision.predicted is None:
                classes = ["normal", "flagged"]
                y = _truth(truth).astype(int)
                sides = {name: _truth(frame[decision.flag][known]).astype(int)
                         for name, frame in (("live", live), ("shadow", shadow))}
            else:
                said = {n: f[decision.predicted][known] for n, f in (("live", live),
                                                                    ("shadow", shadow))}
                classes = sorted(set(truth) | set(said["live"]) | set(said["shadow"]))
                index = {c: k for k, c in enumerate(classes)}
                y = truth.map(index).to_numpy()
                sides = {n: s.map(index).to_numpy() for n, s in said.items()}
            labelled = {"n": int(known.sum()), "classes": classes} | {
                name: multiclass_report(y, predicted, classes)["confusion_matrix"]
                for name, predicted in sides.items()}
    return {"agree": agree, "labelled": labelled}


def _figures(matrix: np.ndarray, classes: list[str], binary: bool) -> dict:
    n = int(matrix.sum())
    hits = np.diag(matrix)
    out = {"accuracy": float(hits.sum() / n) if n else None}
    if binary:
        tp, fp, fn = matrix[1, 1], matrix[0, 1], matrix[1, 0]
        out["precision"] = float(tp / (tp + fp)) if tp + fp else None
        out["recall"] = float(tp / (tp + fn)) if tp + fn else None
        out["f1"] = float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else None
    else:
        predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
        present = (predicted + support) > 0
        f1 = np.divide(2 * hits, predicted + support, out=np.zeros(len(classes)),
                       where=(predicted + support) > 0)
        out["macro_f1"] = float(f1[present].mean()) if present.any() else None
    return out


def summary(rows: list[dict], decision: ResultsDecision) -> dict:
    """The registry's comparison of a candidate over its shadow rows (``db.shadow_runs``):
    runs scored, skipped and failed (with the latest reasons), items, the share of decisions
    that agree, both flag rates, the lag (median and largest), and on labelled items each
    side's accuracy (and precision, recall, F1 for a binary module, macro-F1 otherwise)."""
    scored = [r for r in rows if r["status"] == "ok"]
    items = sum(r["n_items"] or 0 for r in scored)
    lags = sorted(r["lag_seconds"] for r in scored if r["lag_seconds"] is not None)
    out = {"runs": len(scored), "skipped": sum(r["status"] == "skipped" for r in rows),
           "failed": sum(r["status"] == "failed" for r in rows),
           "reasons": sorted({r["error"] for r in rows if r["error"]})[:5],
           "items": items,
           "agreement": sum(r["n_agree"] or 0 for r in scored) / items if items else None,
           "live_flag_rate": sum(r["live_flagged"] or 0 for r in scored) / items if items
           else None,
           "shadow_flag_rate": sum(r["n_flagged"] or 0 for r in scored) / items if items
           else None,
           "lag_median_seconds": float(np.median(lags)) if lags else None,
           "lag_max_seconds": lags[-1] if lags else None,
           "labelled": None}
    classes = sorted({c for r in scored if r["labelled"] for c in r["labelled"]["classes"]})
    if classes:
        binary = decision.predicted is None
        if binary:
            classes = ["normal", "flagged"]
        index = {c: k for k, c in enumerate(classes)}
        totals = {side: np.zeros((len(classes), len(classes)), dtype=int)
                  for side in ("live", "shadow")}
        for r in scored:
            if not r["labelled"]:
                continue
            where = [index[c] for c in r["labelled"]["classes"]]
            for side in totals:
                totals[side][np.ix_(where, where)] += np.asarray(r["labelled"][side])
        out["labelled"] = {"items": int(totals["live"].sum()),
                           "runs": sum(1 for r in scored if r["labelled"])} | {
            side: _figures(matrix, classes, binary) for side, matrix in totals.items()}
    return out


def shutdown(app: Flask) -> None:
    """Wait for this worker's queued shadow scoring (tests, and a worker exiting)."""
    found = app.extensions.get(EXECUTOR)
    if found is not None:
        found[0].shutdown(wait=True)
        app.extensions.pop(EXECUTOR, None)


def drain(app: Flask, timeout: float = 60.0) -> None:
    """Wait until this worker's shadow thread has nothing queued or running."""
    found = app.extensions.get(EXECUTOR)
    if found is None:
        return
    executor, _ = found
    executor.submit(lambda: None).result(timeout=timeout)
