"""The one place the web app's configuration defaults live; environment variables override them.

``create_app`` (and gunicorn's start hook) use :func:`load`: :func:`defaults` ->
:func:`from_environment` -> ``test_config``.
Paths come from ``pipelines.core.locations`` (the checkout, or an installed copy).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Mapping

from pipelines.core import locations


class ConfigError(RuntimeError):
    """The app cannot start as configured; the message says what to change."""


def defaults() -> dict:
    """Defaults, resolved now (not at import) so a test or a deployment can move the files."""
    home = locations.home()
    artifacts = locations.artifacts_dir({})
    return {
        "HOME_DIR": str(home) if home else None,  # templates/, static/, artifacts/
        "ARTIFACTS_DIR": str(artifacts) if artifacts else None,
        "DATABASE_URL": "sqlite:///" + str(locations.instance_dir() / "fablens.sqlite"),
        "MAX_CONTENT_LENGTH": 64 * 1024 * 1024,  # bytes; larger uploads get HTTP 413
        "MAX_ROWS": 100_000,
        # JSON bodies (webapp/params.py read_json): bytes, and values counted before parsing
        # (Python objects cost 10-30 times their text: 8 MB of numbers is ~100 MB parsed)
        "MAX_JSON_BYTES": 8 * 1024 * 1024,
        "MAX_JSON_ITEMS": 2_000_000,
        "RESULTS_KEEP": 100,
        # retention (webapp.db.prune, at start and at most every PRUNE_MINUTES per worker): runs
        # older than this (longer than the dashboard's 365 days) or beyond the newest
        # RETAIN_RUNS go with their results; refused runs (a 4xx: bad input, too large) are
        # kept to the newest RETAIN_REFUSED; events carried on longer ago, or beyond the newest
        # RETAIN_EVENTS, go
        "RETAIN_RUNS_DAYS": 400,
        "RETAIN_RUNS": 100_000,
        "RETAIN_REFUSED": 1000,
        "RETAIN_EVENTS_DAYS": 400,
        "RETAIN_EVENTS": 100_000,
        "PRUNE_MINUTES": 10,
        # a run still "running" after this long is marked failed (its worker must have died;
        # a dead worker's runs on this host are closed as soon as it is seen gone)
        "STALE_RUN_MINUTES": 60,
        "HEAVY_REQUEST_MB": 1,  # requests larger than this take turns (webapp/limits.py)
        "HEAVY_SLOTS": 1,  # large requests scored at once per worker
        "HEAVY_QUEUE": 1,  # large requests that may wait for a slot; more get 503 at once
        # seconds of work a request may take (pipelines/core/budget.py), under gunicorn's
        # --timeout (120 s in render.yaml); past it the work stops and the answer is a 503
        "REQUEST_BUDGET_SECONDS": 90.0,
        "HEAVY_WAIT_SECONDS": 90,  # runs whose results History can download again
        "LOG_FORMAT": "json",  # JSON lines on stdout (webapp/logs.py); "text" for plain lines
        "READY_WAIT_SECONDS": 0.5,
        # model versions made at run time (pipelines.core.versions); never inside the package
        "MODEL_STORE": str(locations.instance_dir() / "models"),
        "LIVE_CHECK_SECONDS": 2.0,  # how often a worker asks which version is live  # /health/ready waits at most this for the model loader
        # shadow scoring (webapp/shadow.py): candidates loaded at once on the server (the
        # 512 MiB budget holds every live version and one), the largest request body copied
        # for a candidate (larger ones are skipped, and say so), requests waiting per worker
        "SHADOW_MAX_CANDIDATES": 1,
        "SHADOW_MAX_BYTES": 8 * 1024 * 1024,
        "SHADOW_QUEUE": 2,
        # the shadow thread starts a request only after the worker has answered none for this
        # long, and gives up (skipped) after waiting this long for such a moment
        "SHADOW_QUIET_SECONDS": 0.05,
        "SHADOW_MAX_WAIT_SECONDS": 30.0,
        "MODEL_THREADS": 2,  # threads each loaded model may use per request (2 cores here)
        "SECRET_KEY": "dev-only-change-me",
        # accounts (webapp/access.py): "on", or "open" (no accounts, loopback clients only);
        # None: "on", except apps made with TESTING, which default to "open"
        "AUTH": None,
        "PROXY_FIX": False,  # behind one HTTPS proxy (Render): X-Forwarded-*, Secure cookies
        # /metrics (webapp/metrics.py): a bearer token, and/or client networks (none: "none")
        "METRICS_TOKEN": None,
        "METRICS_ALLOW": "127.0.0.1/8,::1",
        "LOGIN_RATE_LIMIT": "10/minute",  # sign-in attempts per client address
        "RATELIMIT_STORAGE_URI": "memory://",  # Flask-Limiter storage (redis://... to share)
        "WAFERMAP_MAX_MAPS": 1000,  # maps (and files) in one wafer-map request; more: HTTP 413
        "WAFERMAP_MAX_SALIENCY": 50,  # maps explained (occlusion saliency) in one request
        "TIMESERIES_MAX_WINDOWS": 1000,  # windows in one detect/batch call; more: HTTP 413
        "INSPECTION_MAX_IMAGES": 100,  # images (and files) in one inspection request; more: 413
        "INSPECTION_MAX_HEATMAPS": 100,  # images whose heatmap PNG one request may ask for
        # the review queue (webapp/annotation): each wafer-map or inspection run keeps its
        # REVIEW_PER_RUN least sure items (0: none); unlabelled ones are kept REVIEW_KEEP_DAYS,
        # at most REVIEW_KEEP_ITEMS per module (the newest); labelled ones are kept
        "REVIEW_PER_RUN": 200,
        "REVIEW_KEEP_DAYS": 90,
        "REVIEW_KEEP_ITEMS": 2000,  # a photo is ~100 KB (PNG), a map ~100 bytes
        # the page's "Try a sample" is made from good photos of this MVTec AD train/good folder
        # (turned, some with synthetic defects), if present
        "INSPECTION_SAMPLE_DIR": str(locations.data_dir({}) / "mvtec" / "bottle" / "train"
                                     / "good"),
        # jobs (webapp/jobs): training reads DATA_DIR (the shared data) unless given an upload
        # or a file of JOBS_INPUT_DIR; uploads, results and Huey's queue file live in JOBS_DIR.
        # With REDIS_URL the queue is on Redis and separate `fablens worker` processes work it;
        # without, JOBS_THREADS threads in each web worker do (JOBS_EMBEDDED: None = that rule)
        "DATA_DIR": str(locations.data_dir({})),
        "JOBS_DIR": None,  # None: "jobs" beside the SQLite database file, else instance/jobs
        "JOBS_INPUT_DIR": None,
        "REDIS_URL": None,
        "JOBS_EMBEDDED": None,
        "JOBS_QUEUE": "fablens-jobs",  # the queue's name (several servers may share one Redis)
        "JOBS_THREADS": 1,
        "JOBS_HEARTBEAT_SECONDS": 2.0,  # how often a running job stores its progress and log
        "JOBS_STALE_SECONDS": 60,  # a running job with no heartbeat this long has lost its worker
        "JOBS_STOP_SECONDS": 30.0,  # a stopping worker waits this long for its job to step out
        "JOBS_MAX_UPLOAD_BYTES": 8 * 1024 ** 3,  # one job's upload, sent in request-sized parts
        "JOBS_TRAIN_COMMAND": [sys.executable, "-m", "pipelines.train"],
        # a Dask scheduler's address (tcp://host:8786): scoring jobs run there
        # (pipelines.core.batch.score) instead of in the job worker; None: in the job worker
        "DASK_SCHEDULER": None,
    }


def _megabytes(value: str) -> int:
    return int(float(value) * 1024 * 1024)


def _flag(value: str) -> bool:
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be 1 or 0")


def _auth(value: str) -> str:
    if value not in ("on", "open"):
        raise ValueError("must be 'on' or 'open'")
    return value


def _log_format(value: str) -> str:
    if value not in ("json", "text"):
        raise ValueError("must be json or text")
    return value


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be at least 1")
    return number


def _count(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must be 0 or more")
    return number


def _command(value: str) -> list[str]:
    import shlex

    words = shlex.split(value)
    if not words:
        raise ValueError("must name a command")
    return words


# environment variable -> (config key, parser)
ENVIRONMENT: dict[str, tuple[str, Callable[[str], object]]] = {
    "FABLENS_ARTIFACTS_DIR": ("ARTIFACTS_DIR", str),
    "DATABASE_URL": ("DATABASE_URL", str),
    "FABLENS_MAX_UPLOAD_MB": ("MAX_CONTENT_LENGTH", _megabytes),
    "FABLENS_MAX_ROWS": ("MAX_ROWS", _positive_int),
    "FABLENS_MAX_JSON_MB": ("MAX_JSON_BYTES", _megabytes),
    "FABLENS_MAX_JSON_ITEMS": ("MAX_JSON_ITEMS", _positive_int),
    "FABLENS_MODEL_THREADS": ("MODEL_THREADS", _positive_int),
    "FABLENS_MODEL_STORE": ("MODEL_STORE", str),
    "FABLENS_LOG_FORMAT": ("LOG_FORMAT", _log_format),
    "FABLENS_SHADOW_MAX_CANDIDATES": ("SHADOW_MAX_CANDIDATES", _positive_int),
    "FABLENS_SHADOW_MAX_MB": ("SHADOW_MAX_BYTES", _megabytes),
    "FABLENS_RESULTS_KEEP": ("RESULTS_KEEP", _positive_int),
    "FABLENS_RETAIN_RUNS_DAYS": ("RETAIN_RUNS_DAYS", _positive_int),
    "FABLENS_RETAIN_RUNS": ("RETAIN_RUNS", _positive_int),
    "FABLENS_RETAIN_REFUSED": ("RETAIN_REFUSED", _positive_int),
    "FABLENS_RETAIN_EVENTS_DAYS": ("RETAIN_EVENTS_DAYS", _positive_int),
    "FABLENS_RETAIN_EVENTS": ("RETAIN_EVENTS", _positive_int),
    "FABLENS_PRUNE_MINUTES": ("PRUNE_MINUTES", _positive_int),
    "FABLENS_STALE_RUN_MINUTES": ("STALE_RUN_MINUTES", _positive_int),
    "FABLENS_HEAVY_SLOTS": ("HEAVY_SLOTS", _positive_int),
    "FABLENS_HEAVY_QUEUE": ("HEAVY_QUEUE", int),
    "FABLENS_REQUEST_BUDGET_SECONDS": ("REQUEST_BUDGET_SECONDS", float),
    "SECRET_KEY": ("SECRET_KEY", str),
    "FABLENS_AUTH": ("AUTH", _auth),
    "FABLENS_PROXY_FIX": ("PROXY_FIX", _flag),
    "FABLENS_LOGIN_RATE_LIMIT": ("LOGIN_RATE_LIMIT", str),
    "FABLENS_METRICS_TOKEN": ("METRICS_TOKEN", str),
    "FABLENS_METRICS_ALLOW": ("METRICS_ALLOW", str),
    "FABLENS_RATELIMIT_STORAGE_URL": ("RATELIMIT_STORAGE_URI", str),
    "FABLENS_WAFERMAP_MAX_MAPS": ("WAFERMAP_MAX_MAPS", _positive_int),
    "FABLENS_TIMESERIES_MAX_WINDOWS": ("TIMESERIES_MAX_WINDOWS", _positive_int),
    "FABLENS_INSPECTION_MAX_IMAGES": ("INSPECTION_MAX_IMAGES", _positive_int),
    "FABLENS_INSPECTION_SAMPLE_DIR": ("INSPECTION_SAMPLE_DIR", str),
    "FABLENS_REVIEW_PER_RUN": ("REVIEW_PER_RUN", _count),
    "FABLENS_REVIEW_KEEP_DAYS": ("REVIEW_KEEP_DAYS", _positive_int),
    "FABLENS_REVIEW_KEEP_ITEMS": ("REVIEW_KEEP_ITEMS", _positive_int),
    "FABLENS_DATA_DIR": ("DATA_DIR", str),
    "FABLENS_JOBS_DIR": ("JOBS_DIR", str),
    "FABLENS_JOBS_INPUT_DIR": ("JOBS_INPUT_DIR", str),
    "REDIS_URL": ("REDIS_URL", str),
    "FABLENS_JOBS_EMBEDDED": ("JOBS_EMBEDDED", _flag),
    "FABLENS_JOBS_THREADS": ("JOBS_THREADS", _positive_int),
    "FABLENS_JOBS_QUEUE": ("JOBS_QUEUE", str),
    "FABLENS_JOBS_STALE_SECONDS": ("JOBS_STALE_SECONDS", _positive_int),
    "FABLENS_JOBS_MAX_UPLOAD_MB": ("JOBS_MAX_UPLOAD_BYTES", _megabytes),
    "FABLENS_JOBS_TRAIN_COMMAND": ("JOBS_TRAIN_COMMAND", _command),
    "FABLENS_DASK_SCHEDULER": ("DASK_SCHEDULER", str),
}


def normalise_database_url(url: str) -> str:
    """Use the psycopg (3) driver for PostgreSQL URLs, including Render's ``postgres://`` form."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def from_environment(environ: Mapping[str, str] | None = None) -> dict:
    """Config values set through environment variables; a clear error for a bad value."""
    environ = os.environ if environ is None else environ
    out = {}
    for variable, (key, parse) in ENVIRONMENT.items():
        if environ.get(variable):
            try:
                out[key] = parse(environ[variable])
            except ValueError as exc:
                raise ConfigError(f"{variable}={environ[variable]!r} is not valid: {exc}") from None
    if "DATABASE_URL" in out:
        out["DATABASE_URL"] = normalise_database_url(out["DATABASE_URL"])
    return out


def load(environ: Mapping[str, str] | None = None, overrides: Mapping | None = None) -> dict:
    """Defaults, then the environment, then ``overrides``: the configuration the app runs with."""
    return {**defaults(), **from_environment(environ), **(overrides or {})}


def check(config: Mapping) -> None:
    """Refuse to start without templates, static files or artifacts, saying where we looked."""
    home = config.get("HOME_DIR")
    if not home or not all((Path(home) / d).is_dir() for d in ("templates", "static")):
        raise ConfigError(
            "FabLens cannot find its templates and static files. Run it from the repository "
            "(pip install -e .), or install it with 'pip install .' so they are copied to "
            f"{Path(sys.prefix) / 'share' / 'fablens'}.")
    artifacts = config.get("ARTIFACTS_DIR")
    if not artifacts or not Path(artifacts).is_dir():
        raise ConfigError(f"FabLens cannot find its model artifacts (looked in {artifacts}); "
                          "set FABLENS_ARTIFACTS_DIR or run 'python -m pipelines.train <module>'.")
