"""The jobs' and uploads' records: one row per job, from submitted to done, failed or cancelled.

A job is written ``queued`` when it is submitted; the worker that takes it marks it
``running`` with itself (``host:pid``) and a heartbeat it renews while it works, then closes
it ``done`` (with its result), ``failed`` (with the reason) or ``cancelled``. A job whose
worker died is never left ``running``: :func:`close_abandoned` closes it as failed, naming
why, as soon as the dead worker's host sees its process gone or the heartbeat is older than
``JOBS_STALE_SECONDS``. A worker that stops on purpose (a restart) puts its job back in the
queue (:func:`requeue`), at most ``MAX_ATTEMPTS`` times.
"""
from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timedelta
from typing import Mapping

from sqlalchemy import (BigInteger, Boolean, Column, DateTime, ForeignKey, Index, Integer,
                        String, Table, Text, false, insert, select, update)
from sqlalchemy.engine import Engine

from webapp.db import aware, metadata, pid_alive, utcnow

STATES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
KINDS = ("train", "score")
LOG_CHARS = 20_000  # the log a job keeps: its newest lines up to this many characters
MAX_ATTEMPTS = 3  # a job put back in the queue by worker restarts at most this often
WORKER_DIED = ("the worker running it stopped before the job finished (the server restarted "
               "or the process was killed, for example for its memory); start it again")

jobs = Table(
    "jobs", metadata,
    Column("id", Integer, primary_key=True),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("module", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("user", String(128)),
    Column("data", String(256)),  # what it reads, in words ("shared data", an upload's name)
    Column("params", Text),  # JSON: the request that started it
    Column("progress_done", BigInteger),
    Column("progress_total", BigInteger),
    Column("progress_unit", String(32)),
    Column("stage", String(300)),
    Column("log", Text),
    Column("result", Text),  # JSON: version, run id, counts
    Column("error", String(500)),
    Column("started", DateTime(timezone=True)),
    Column("finished", DateTime(timezone=True)),
    Column("heartbeat", DateTime(timezone=True)),
    Column("worker", String(128)),
    Column("cancel_requested", Boolean, nullable=False, server_default=false()),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="SET NULL")),
    Index("ix_jobs_state", "state", "id"),
    Index("ix_jobs_run_id", "run_id"),
)

uploads = Table(
    "uploads", metadata,
    Column("id", Integer, primary_key=True),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("user", String(128)),
    Column("name", String(256), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("received", BigInteger, nullable=False, server_default="0"),
)


def worker_marker(pid: int | None = None) -> str:
    """This process (or process ``pid`` on this host), as ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"[:128]


def _row(row) -> dict:
    out = dict(row)
    for key in ("params", "result"):
        out[key] = json.loads(out[key]) if out.get(key) else None
    for key in ("created", "started", "finished", "heartbeat"):
        out[key] = aware(out.get(key))
    return out


# -- jobs ---------------------------------------------------------------------------------------
def create(engine: Engine, kind: str, module: str, user: str, data: str, params: dict) -> int:
    with engine.begin() as conn:
        return int(conn.execute(insert(jobs).values(
            created=utcnow(), kind=kind, module=module, state="queued", user=user,
            data=data[:256], params=json.dumps(params), log="")).inserted_primary_key[0])


def get(engine: Engine, job_id: int) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
    return _row(row) if row else None


def listing(engine: Engine, limit: int = 50, before: int | None = None,
            module: str | None = None) -> list[dict]:
    """Jobs newest first (without their logs)."""
    columns = [c for c in jobs.c if c.name != "log"]
    query = select(*columns).order_by(jobs.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(jobs.c.id < before)
    if module:
        query = query.where(jobs.c.module == module)
    with engine.connect() as conn:
        return [_row(r) for r in conn.execute(query).mappings()]


def by_run(engine: Engine, run_ids: list[int]) -> dict[int, int]:
    """run id -> the job that recorded it, for the runs given."""
    if not run_ids:
        return {}
    with engine.connect() as conn:
        return {r.run_id: r.id for r in conn.execute(
            select(jobs.c.id, jobs.c.run_id).where(jobs.c.run_id.in_(run_ids)))}


def claim(engine: Engine, job_id: int) -> bool:
    """Mark a queued job running on this worker; False when it is not queued (cancelled
    while it waited, or taken already)."""
    stamp = utcnow()
    with engine.begin() as conn:
        return conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.state == "queued")
                            .values(state="running", started=stamp, heartbeat=stamp,
                                    worker=worker_marker(), finished=None,
                                    attempts=jobs.c.attempts + 1)).rowcount == 1


def beat(engine: Engine, job_id: int, *, done: int | None = None, total: int | None = None,
         unit: str | None = None, stage: str | None = None, log: str | None = None) -> bool:
    """Renew a running job's heartbeat, with its progress and new log lines; whether a
    cancel was asked for (the job stops at its next step)."""
    values: dict = {"heartbeat": utcnow()}
    if done is not None:
        values["progress_done"] = done
    if total is not None:
        values["progress_total"] = total
    if unit is not None:
        values["progress_unit"] = unit[:32]
    if stage is not None:
        values["stage"] = stage[:300]
    with engine.begin() as conn:
        if log:
            old = conn.execute(select(jobs.c.log).where(jobs.c.id == job_id)).scalar() or ""
            values["log"] = _tail(old + log)
        conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.state == "running")
                     .values(**values))
        return bool(conn.execute(select(jobs.c.cancel_requested)
                                 .where(jobs.c.id == job_id)).scalar())


def _tail(text: str) -> str:
    if len(text) <= LOG_CHARS:
        return text
    cut = text[-LOG_CHARS:]
    return cut[cut.find("\n") + 1:] if "\n" in cut else cut


def finish(engine: Engine, job_id: int, state: str, *, error: str | None = None,
           result: dict | None = None, run_id: int | None = None, log: str | None = None
           ) -> bool:
    """Close a running job (``done``, ``failed`` or ``cancelled``); whether it was running."""
    if state not in FINISHED:
        raise ValueError(f"a job ends done, failed or cancelled, not {state}")
    values = {"state": state, "finished": utcnow(), "error": (error or "")[:500] or None,
              "result": None if result is None else json.dumps(result), "run_id": run_id}
    with engine.begin() as conn:
        if log:
            old = conn.execute(select(jobs.c.log).where(jobs.c.id == job_id)).scalar() or ""
            values["log"] = _tail(old + log)
        return conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.state == "running")
                            .values(**values)).rowcount == 1


def cancel(engine: Engine, job_id: int) -> str | None:
    """Cancel a job: a queued one at once, a running one at its next step. Its state after
    (``cancelled``, or ``running`` with the cancel asked), or None when it had finished."""
    with engine.begin() as conn:
        if conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.state == "queued")
                        .values(state="cancelled", finished=utcnow(), cancel_requested=True,
                                error="cancelled before it started")).rowcount:
            return "cancelled"
        if conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.state == "running")
                        .values(cancel_requested=True)).rowcount:
            return "running"
    return None


def requeue(engine: Engine, job_id: int, why: str) -> bool:
    """Put a running job back in the queue (its worker is stopping on purpose); after
    ``MAX_ATTEMPTS`` tries it fails instead. Whether it was put back."""
    with engine.begin() as conn:
        row = conn.execute(select(jobs.c.attempts, jobs.c.log, jobs.c.cancel_requested)
                           .where(jobs.c.id == job_id, jobs.c.state == "running")).first()
        if row is None:
            return False
        if row.attempts >= MAX_ATTEMPTS or row.cancel_requested:
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(
                state="cancelled" if row.cancel_requested else "failed", finished=utcnow(),
                error=None if row.cancel_requested else
                f"{why}; it was started {row.attempts} times and is not tried again"[:500]))
            return False
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(
            state="queued", worker=None, started=None, progress_done=None,
            log=_tail((row.log or "") + f"-- {why}: queued again from the start --\n")))
        return True


def _process_gone(marker: str | None) -> bool:
    """Whether ``host:pid`` names a process on this host that no longer exists."""
    host, _, pid = (marker or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return not pid_alive(int(pid))


def close_abandoned(engine: Engine, stale_seconds: float) -> list[int]:
    """Close as failed every running job whose worker is gone: its process on this host no
    longer exists, or its heartbeat is older than ``stale_seconds`` (any host). Their ids."""
    limit = utcnow() - timedelta(seconds=stale_seconds)
    with engine.connect() as conn:
        running = conn.execute(select(jobs.c.id, jobs.c.worker, jobs.c.heartbeat)
                               .where(jobs.c.state == "running")).all()
    closed = []
    for job_id, worker, heartbeat in running:
        heartbeat = aware(heartbeat)
        if _process_gone(worker) or heartbeat is None or heartbeat < limit:
            with engine.begin() as conn:
                if conn.execute(update(jobs).where(jobs.c.id == job_id,
                                                   jobs.c.state == "running",
                                                   jobs.c.worker == worker)
                                .values(state="failed", finished=utcnow(),
                                        error=f"{WORKER_DIED} ({worker})"[:500])).rowcount:
                    closed.append(job_id)
    return closed


def close_worker_jobs(engine: Engine, marker: str) -> list[int]:
    """Close as failed the jobs still ``running`` on the worker ``marker`` (``host:pid``),
    which has exited: its master saw it go (gunicorn's ``child_exit``). A worker that stopped
    on purpose has put its job back in the queue already, so what is left running died with
    it. Their ids."""
    with engine.begin() as conn:
        ids = [r[0] for r in conn.execute(select(jobs.c.id).where(
            jobs.c.state == "running", jobs.c.worker == marker).order_by(jobs.c.id))]
        if ids:
            conn.execute(update(jobs).where(jobs.c.id.in_(ids), jobs.c.state == "running",
                                            jobs.c.worker == marker)
                         .values(state="failed", finished=utcnow(),
                                 error=f"{WORKER_DIED} ({marker})"[:500]))
    return ids


def queued_ids(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(select(jobs.c.id).where(jobs.c.state == "queued")
                                           .order_by(jobs.c.id))]


# -- uploads ------------------------------------------------------------------------------------
def create_upload(engine: Engine, user: str, name: str, size: int) -> int:
    with engine.begin() as conn:
        return int(conn.execute(insert(uploads).values(
            created=utcnow(), user=user, name=name[:256], size=size, received=0))
            .inserted_primary_key[0])


def get_upload(engine: Engine, upload_id: int) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(select(uploads).where(uploads.c.id == upload_id)).mappings().first()
    return dict(row) if row else None


def received(engine: Engine, upload_id: int, total: int) -> None:
    with engine.begin() as conn:
        conn.execute(update(uploads).where(uploads.c.id == upload_id).values(received=total))


def public(job: Mapping, log_lines: int | None = 40) -> dict:
    """A job as the API answers it: its state, progress, log tail and result."""
    log = job.get("log") or ""
    lines = log.splitlines()
    return {
        "id": job["id"], "kind": job["kind"], "module": job["module"], "state": job["state"],
        "user": job["user"], "data": job["data"],
        "created": _iso(job["created"]), "started": _iso(job["started"]),
        "finished": _iso(job["finished"]),
        "progress": {"done": job["progress_done"], "total": job["progress_total"],
                     "unit": job["progress_unit"], "stage": job["stage"]},
        "cancel_requested": bool(job["cancel_requested"]),
        "error": job["error"], "result": job["result"], "run_id": job["run_id"],
        **({"log": lines[-log_lines:] if log_lines else lines} if "log" in job else {}),
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
