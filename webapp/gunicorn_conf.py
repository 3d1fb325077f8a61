"""gunicorn settings for FabLens: ``gunicorn -c python:webapp.gunicorn_conf 'webapp:create_app()'``.

The database schema is created or migrated once, in the master process, before any worker
forks, so two workers can never race to create the same table; on a database with no user,
the same hook creates ``admin`` and logs its one-time password, then closes the runs a
stopped server's workers left ``running`` and applies retention (:func:`tidy_records`). It
also gives the workers one directory for their Prometheus values (:func:`prometheus_directory`),
which ``/metrics`` sums, and a worker that exits is marked dead there and has its unfinished
runs and running jobs marked failed (:func:`child_exit`). Each worker then tunes glibc's
allocator so the memory of a large upload goes back to the system when it is scored (see
:func:`tune_malloc`). Worker count, threads, timeout and bind stay on the command line
(render.yaml, the Makefile).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

# No control socket. gunicorn (25.1+) opens one for its ``gunicornc`` tool at one path per
# user ($XDG_RUNTIME_DIR/gunicorn.ctl, else ~/.gunicorn/gunicorn.ctl), so a second server on
# the machine took it over and stopping either deleted it for the other. FabLens never uses it
# (Render and the Makefile drive gunicorn by signals), and the master would stop and restart
# its thread around every worker fork (--max-requests recycles workers).
control_socket_disable = True

# mallopt(3) parameters
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8


def tune_malloc(arena_max: int = 2, mmap_threshold: int = 64 * 1024,
                trim_threshold: int = 128 * 1024) -> bool:
    """Fewer malloc arenas, and large blocks (NumPy arrays, parser buffers) always mmap'ed.

    glibc raises its mmap threshold after large frees, so later arrays come from the heap
    and are kept after use; fixing it makes every large array return to the system when
    freed. Returns False where this is not glibc.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return all(mallopt(p, v) == 1 for p, v in ((M_ARENA_MAX, arena_max),
                                               (M_MMAP_THRESHOLD, mmap_threshold),
                                               (M_TRIM_THRESHOLD, trim_threshold)))


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_created: list[str] = []  # the metrics directory this master made (removed when it exits)


def prometheus_directory(environ=os.environ) -> str:
    """Point ``PROMETHEUS_MULTIPROC_DIR`` at an empty directory before any worker forks (and
    before prometheus_client is imported, which reads it once): a fresh temporary one, or the
    one the operator set, emptied of a previous server's files (stale values would be summed
    in). Returns the directory."""
    directory = environ.get(MULTIPROC_ENV)
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
    else:
        directory = tempfile.mkdtemp(prefix="fablens-metrics-")
        _created.append(directory)
        environ[MULTIPROC_ENV] = directory
    return directory


def on_starting(server) -> None:
    """Prepare the workers' metrics directory; migrate the database named by the app's
    configuration (DATABASE_URL or the default), close the runs a stopped server left running
    and apply retention (:func:`tidy_records`), then, with accounts on and no user yet,
    create ``admin`` and log its one-time password."""
    from webapp import config

    server.log.info("prometheus multiprocess directory %s", prometheus_directory())
    from webapp.db import upgrade

    settings = config.load()
    url = settings["DATABASE_URL"]
    revision = upgrade(url)
    server.log.info("database schema at revision %s", revision)
    _database[:] = [url]
    tidy_records(settings, server.log)
    if settings.get("AUTH") != "open":
        announce_first_admin(url, server.log)


_database: list[str] = []  # the database this master migrated, for child_exit


def tidy_records(settings, log) -> dict:
    """Before any worker serves: mark failed the runs a stopped server's workers left
    ``running`` ("the worker stopped before the run finished"), then apply retention
    (:func:`webapp.db.tidy_records`).

    Several servers may share the database, so a run is closed only when its worker was on
    this host and its process is gone, or when it started longer than ``STALE_RUN_MINUTES``
    ago; a run another live server is serving is left alone. A failure is logged: the server
    starts all the same, and its workers try again. Returns what was done.
    """
    from webapp.db import make_engine, tidy_records as tidy

    engine = make_engine(settings["DATABASE_URL"])
    try:
        done = tidy(engine, settings)
    except Exception:
        log.exception("could not close abandoned runs or apply retention")
        return {}
    finally:
        engine.dispose()
    log.info("records: %d abandoned runs marked failed, %d runs and %d events past retention "
             "removed", done["closed"], done["runs"], done["events"])
    return done


def close_worker_runs(pid: int, log) -> int:
    """Mark failed the runs worker ``pid`` left ``running`` when it exited (killed for its
    memory or its timeout, or recycled with a request still in hand); how many."""
    from webapp.db import close_worker_runs as close, make_engine, worker_marker

    if not _database:
        return 0
    engine = make_engine(_database[0])
    try:
        closed = close(engine, worker_marker(pid))
    except Exception:
        log.exception("could not close the runs of worker %s", pid)
        return 0
    finally:
        engine.dispose()
    if closed:
        log.warning("worker %s stopped with %d runs unfinished: marked failed", pid, closed)
    return closed


def close_worker_jobs(pid: int, log) -> list[int]:
    """Close as failed the jobs worker ``pid`` was running when it exited (its embedded job
    worker died with it: killed for its memory or its timeout); their ids
    (:func:`webapp.jobs.store.close_worker_jobs`). A worker stopped on purpose has put its
    job back in the queue before it exited, so it is not touched."""
    from webapp.db import make_engine
    from webapp.jobs import store

    if not _database:
        return []
    engine = make_engine(_database[0])
    try:
        closed = store.close_worker_jobs(engine, store.worker_marker(pid))
    except Exception:
        log.exception("could not close the jobs of worker %s", pid)
        return []
    finally:
        engine.dispose()
    if closed:
        log.warning("worker %s stopped with job(s) %s running: closed as failed", pid,
                    ", ".join(map(str, closed)))
    return closed


def announce_first_admin(url: str, log) -> str | None:
    """Create the first ``admin`` when the database has no user, and write its one-time
    password to the log (gunicorn's error log: stderr). Returns the password, or None."""
    from webapp.accounts import first_admin
    from webapp.db import make_engine

    engine = make_engine(url)
    try:
        password = first_admin(engine)
    finally:
        engine.dispose()
    if password:
        log.warning("no users yet: created user 'admin' with the one-time password %s ; sign "
                    "in with it, then add users on the Users page (or 'flask --app webapp "
                    "users create NAME --role ROLE')", password)
    return password


def post_fork(server, worker) -> None:
    """Tune the allocator and OpenMP in each worker before it loads anything.

    OpenMP threads (XGBoost) sleep rather than spin while they wait: with several request
    threads sharing two cores, spinning threads only steal time from the ones with work.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if not tune_malloc():
        server.log.info("malloc tuning unavailable on this platform")


def post_worker_init(worker) -> None:
    """Start loading every module's models in the background as soon as the worker has its app,
    so the first request and Render's health check (``/health/ready``) never wait on a load;
    start the embedded job worker."""
    from webapp import jobs
    from webapp.predictors import start_loading

    start_loading(worker.wsgi)
    if jobs.embedded(worker.wsgi):  # the job queue's worker threads (webapp/jobs)
        jobs.start_worker(worker.wsgi)


def worker_exit(server, worker) -> None:
    """A worker stops: its running job goes back in the job queue (webapp/jobs)."""
    from webapp import jobs

    app = getattr(worker, "wsgi", None)
    if app is not None and jobs.EXTENSION in getattr(app, "extensions", {}):
        jobs.stop_worker(app)


def child_exit(server, worker) -> None:
    """A worker exited: drop its live gauges from ``/metrics`` (its counters stay summed) and
    mark failed the runs and the jobs it left unfinished."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
    close_worker_runs(worker.pid, server.log)
    close_worker_jobs(worker.pid, server.log)


def on_exit(server) -> None:
    """Remove the metrics directory this master created."""
    while _created:
        shutil.rmtree(_created.pop(), ignore_errors=True)
