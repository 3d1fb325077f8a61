"""Jobs: training and batch scoring that run longer than a request, on Huey's task queue.

A job is submitted (``POST /api/v1/jobs``, or the Jobs page), recorded ``queued`` in the app's
database (:mod:`webapp.jobs.store`) and its id put on a Huey queue; a worker takes it, runs it
(:mod:`webapp.jobs.work`) and closes it ``done``, ``failed`` or ``cancelled``, with progress,
a log and who started it along the way.

Where the queue lives and who works it:

- **Embedded** (the default, no ``REDIS_URL``): Huey's SQLite storage in ``JOBS_DIR``
  (``queue.sqlite``), worked by ``JOBS_THREADS`` threads inside each gunicorn worker, started
  by the gunicorn hooks (``webapp/gunicorn_conf.py``): no extra service. Batch scoring uses the
  worker's loaded models (no second copy in memory); training runs as a child process
  (``python -m pipelines.train``), so torch never enters the web process.
- **Scale-out** (``REDIS_URL`` set): Huey on that Redis server, worked by separate processes,
  ``fablens worker`` (``flask --app webapp jobs worker``), on as many machines as wanted; the
  web workers then only submit (``FABLENS_JOBS_EMBEDDED=1`` makes them work too).

A job is never lost or stuck ``running``: a worker that stops on purpose (a restart, SIGTERM)
puts its job back in the queue to start again; one that dies leaves the job to be closed as
failed with the reason by the next worker start or any reader, once its process is seen gone
on its host or its heartbeat is older than ``JOBS_STALE_SECONDS``. Queued jobs wait in the
queue's storage across restarts, and a queued job whose message is missing is put back when
a worker starts.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from webapp.jobs import store

logger = logging.getLogger(__name__)

EXTENSION = "fablens_jobs"
TASK_NAME = "fablens.run_job"

jobs_cli = AppGroup("jobs", help="Jobs: run a worker for the job queue.")


class Jobs:
    """One app's queue: its Huey instance (made on first use) and the worker it runs."""

    def __init__(self, app: Flask):
        self.app = app
        self._huey = None
        self._task = None
        self._lock = threading.Lock()
        self.consumer = None
        self.stopping = threading.Event()  # set when this process's worker is stopping

    @property
    def huey(self):
        with self._lock:
            if self._huey is None:
                self._huey, self._task = _make_huey(self.app, self)
            return self._huey

    def enqueue(self, job_id: int) -> None:
        self.huey  # noqa: B018 (made on first use)
        self._task(job_id)


def _make_huey(app: Flask, jobs: Jobs):
    """Huey on Redis (``REDIS_URL``) or on a SQLite file in ``JOBS_DIR``, with the one task."""
    from huey import RedisHuey, SqliteHuey

    url = app.config.get("REDIS_URL")
    if url:
        huey = RedisHuey(app.config["JOBS_QUEUE"], url=url, results=False, utc=True)
    else:
        folder = Path(app.config["JOBS_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        huey = SqliteHuey(app.config["JOBS_QUEUE"], filename=str(folder / "queue.sqlite"),
                          results=False, utc=True, timeout=30)

    def run_job(job_id: int) -> None:
        from webapp.jobs.work import run

        with app.app_context():
            run(job_id, jobs)

    task = huey.task(name=TASK_NAME)(run_job)
    return huey, task


def jobs_of(app: Flask | None = None) -> Jobs:
    return (app or current_app).extensions[EXTENSION]


def engine(app: Flask):
    return app.extensions["fablens_db"]


def tidy(app: Flask) -> list[int]:
    """Close the jobs dead workers left running (failed, with the reason); their ids."""
    closed = store.close_abandoned(engine(app), float(app.config["JOBS_STALE_SECONDS"]))
    for job_id in closed:
        logger.warning("job %s: its worker is gone; closed as failed", job_id)
    return closed


def resume_queued(app: Flask) -> list[int]:
    """Put back on the queue every queued job whose message is not there (a queue file lost,
    or a job recorded while no queue answered); their ids."""
    jobs = jobs_of(app)
    waiting = set()
    for task in jobs.huey.pending():
        if task.name == TASK_NAME and task.args:
            waiting.add(int(task.args[0]))
    missing = [i for i in store.queued_ids(engine(app)) if i not in waiting]
    for job_id in missing:
        jobs.enqueue(job_id)
    return missing


def _consumer_class():
    from huey.consumer import Consumer

    class FabLensConsumer(Consumer):
        """Huey's consumer, which tells the running job when it is asked to stop (so the job
        goes back in the queue) and, inside a web worker, leaves gunicorn's signals alone."""

        signals = True
        stopping: threading.Event

        def _set_signal_handlers(self):
            if self.signals:
                super()._set_signal_handlers()

        def stop(self, graceful=False):
            self.stopping.set()
            super().stop(graceful)

    return FabLensConsumer


def _consumer(app: Flask, signals: bool):
    jobs = jobs_of(app)
    cls = _consumer_class()
    cls.signals = signals
    cls.stopping = jobs.stopping
    jobs.stopping.clear()
    consumer = cls(jobs.huey, workers=int(app.config["JOBS_THREADS"]), worker_type="thread",
                   periodic=False, check_worker_health=False, graceful_signal="TERM",
                   shutdown_timeout=float(app.config["JOBS_STOP_SECONDS"]), max_delay=2.0)
    jobs.consumer = consumer
    return consumer


def _prepare(app: Flask) -> None:
    with app.app_context():
        tidy(app)
        resumed = resume_queued(app)
        if resumed:
            logger.info("jobs %s were queued without a message: queued again", resumed)


def start_worker(app: Flask):
    """Work the queue on threads of this process (the embedded worker); returns the consumer.
    Closes what dead workers left running and re-queues lost messages first."""
    _prepare(app)
    consumer = _consumer(app, signals=False)
    consumer.start()
    logger.info("job worker started in this process (%s threads)", app.config["JOBS_THREADS"])
    return consumer


def stop_worker(app: Flask) -> None:
    """Stop this process's worker: the running job is put back in the queue."""
    jobs = jobs_of(app)
    if jobs.consumer is not None:
        jobs.consumer.stop(graceful=True)
        jobs.consumer = None


def embedded(app: Flask) -> bool:
    """Whether the web workers work the queue themselves (default: without ``REDIS_URL``)."""
    setting = app.config.get("JOBS_EMBEDDED")
    return (not app.config.get("REDIS_URL")) if setting is None else bool(setting)


@jobs_cli.command("worker")
@with_appcontext
def worker_command() -> None:
    """Work the job queue in this process until SIGTERM or Ctrl-C (a running job goes back in
    the queue). With REDIS_URL, run as many of these as wanted, on any machine."""
    app = current_app._get_current_object()
    _prepare(app)
    consumer = _consumer(app, signals=True)
    where = app.config.get("REDIS_URL") and "Redis" or f"{app.config['JOBS_DIR']}/queue.sqlite"
    click.echo(f"fablens worker: {app.config['JOBS_THREADS']} thread(s) on {where}", err=True)
    consumer.run()


def default_folder(config) -> Path:
    """Where jobs keep their files unless ``JOBS_DIR`` says: a ``jobs`` folder beside the
    SQLite database file (``instance/jobs`` by default), else the instance folder's."""
    from pipelines.core import locations

    url = str(config.get("DATABASE_URL") or "")
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        return Path(url[len("sqlite:///"):]).parent / "jobs"
    return locations.instance_dir() / "jobs"


def init_app(app: Flask) -> None:
    """The queue (made on first use), the API and pages, the ``jobs`` commands."""
    from webapp.jobs import views

    if not app.config.get("JOBS_DIR"):
        app.config["JOBS_DIR"] = str(default_folder(app.config))
    app.extensions[EXTENSION] = Jobs(app)
    app.register_blueprint(views.bp)
    app.cli.add_command(jobs_cli)
    app.jinja_env.globals.update(recent_jobs=views.recent_jobs, jobs_of_runs=views.jobs_of_runs)
