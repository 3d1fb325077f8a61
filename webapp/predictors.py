"""Each ready module's predictor, loaded once per worker process, never at import.

A served worker loads every ready module in a background thread as it starts
(:func:`start_loading`, called from gunicorn's ``post_worker_init``), so readiness only reports
how far that got (:func:`loading_state`) and no health check waits on a model load. A request
that needs a predictor before then loads it itself (:func:`get_predictor`); both take the same
lock, so nothing is loaded twice. Which version is loaded is the live one (``live_versions``
in the database, set from the registry API): each worker looks every few seconds and loads
a newly set version without a restart.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path

from flask import Flask, current_app
from sqlalchemy.exc import SQLAlchemyError

from pipelines.core.artifacts import BundleError
from pipelines.core.versions import module_versions, version_id
from webapp import db, metrics
from webapp.registry import get_module, ready_modules

logger = logging.getLogger(__name__)

_lock = threading.Lock()  # held while a predictor loads
_start_lock = threading.Lock()  # held only to start the loader, so readiness never waits on a load
CACHE, STATES, LOADER = "fablens_predictors", "fablens_predictor_states", "fablens_loader"
LIVE = "fablens_live_checked"  # module -> (when the database was asked, the live version)


def _live_wanted(name: str) -> str | None:
    """The version set live for module ``name`` (None: never set, serve the committed
    release), read from the database at most every ``LIVE_CHECK_SECONDS`` per worker."""
    checked = current_app.extensions.setdefault(LIVE, {})
    now = time.monotonic()
    at, version = checked.get(name, (-math.inf, None))
    if now - at >= float(current_app.config["LIVE_CHECK_SECONDS"]):
        try:
            version = db.live_version(name)
        except SQLAlchemyError:  # no schema yet (a test app, a fresh install): the committed one
            version = None
        checked[name] = (now, version)
    return version


def _release_dir(name: str, version: str | None) -> Path:
    """Where version ``version`` of module ``name`` lives: the committed release when None or
    its id, else the model store's copy with that id."""
    committed = Path(current_app.config["ARTIFACTS_DIR"]) / name
    if version is None:
        return committed
    for found in module_versions(name, committed, Path(current_app.config["MODEL_STORE"])):
        if found.id == version:
            return found.path
    raise LookupError(f"{name}: version {version} is set live but is in no release "
                      f"(committed or in the model store)")


def release_folder(name: str, version: str | None) -> Path:
    """Where version ``version`` of module ``name`` lives (a predictor's ``release_version``;
    None: the committed release): what a batch job on Dask hands its workers."""
    return _release_dir(name, version)


def _version_of(directory: Path) -> str | None:
    """The content id of the release a predictor was loaded from (None for a module whose
    predictor reads no release manifest, e.g. one defined in a test)."""
    try:
        return version_id(directory)
    except BundleError:
        return None


def load_from(name: str, directory: Path, threads: int | None = None):
    """A new predictor of module ``name`` from the release in ``directory`` whose models use
    ``threads`` threads (default ``MODEL_THREADS``), its ``release_version`` set; nothing
    cached."""
    threads = int(current_app.config["MODEL_THREADS"]) if threads is None else threads
    predictor = get_module(name).predictor(Path(directory), n_jobs=threads)
    predictor.release_version = _version_of(Path(directory))
    return predictor


def load_version(name: str, version: str | None, threads: int | None = None):
    """A new predictor of module ``name`` for ``version`` (None: the committed release);
    nothing cached (the live cache and the shadow thread hold it)."""
    return load_from(name, _release_dir(name, version), threads)


def _ready_state(predictor) -> dict:
    """A loaded module's state: ``ready``, and ``degraded`` with the models that did not load
    and why (``Predictor.unavailable_models``) when its release has a broken bundle."""
    broken = getattr(predictor, "unavailable_models", list)()
    return {"state": "ready", "degraded": bool(broken), "unavailable": broken}


def _load(name: str, version: str | None):
    states = current_app.extensions[STATES]
    states[name] = {"state": "loading"}
    start = time.perf_counter()
    try:
        predictor = load_version(name, version)
    except Exception as exc:
        states[name] = {"state": "failed", "error": str(exc) or type(exc).__name__}
        raise
    metrics.record_model_load(name, time.perf_counter() - start)
    states[name] = _ready_state(predictor)
    logger.info("serving %s version %s", name, predictor.release_version)
    return predictor


def get_predictor(name: str):
    """The ready module's predictor for this app: the live version (``webapp.db.live_version``;
    the committed release ``ARTIFACTS_DIR/<name>`` until one is set), loaded on first use and
    again whenever another version is set live (seen within ``LIVE_CHECK_SECONDS``).

    A request keeps the predictor it was handed, so one already running finishes on the
    version it started with. Models use ``MODEL_THREADS`` threads each (config). The outcome
    (ready, or failed with the reason) is what readiness reports for the module.
    """
    cache = current_app.extensions[CACHE]
    wanted = _live_wanted(name)

    def stale(held) -> bool:
        return held is None or (wanted is not None and held.release_version != wanted)

    if stale(cache.get(name)):
        with _lock:
            if stale(cache.get(name)):
                try:
                    cache[name] = _load(name, wanted)
                except Exception:
                    if name not in cache:
                        raise
                    logger.exception("%s: keeping version %s", name,
                                     cache[name].release_version)
                    current_app.extensions[STATES][name] = _ready_state(cache[name])
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
    """Each ready module's state, ``waiting``, ``loading``, ``ready`` (``degraded`` and the
    ``unavailable`` models when some did not load) or ``failed`` (with its ``error``), after
    waiting at most ``wait`` seconds for the loader (started if it was not)."""
    start_loading(app).join(wait)
    states = app.extensions[STATES]
    return {spec.name: dict(states.get(spec.name, {"state": "waiting"}))
            for spec in ready_modules()}


def init_app(app: Flask) -> None:
    """Give the app an empty predictor cache (nothing is loaded until a worker starts or a
    request needs it)."""
    app.extensions[CACHE] = {}
    app.extensions[STATES] = {}
