"""What a worker does with a job: train a module, or score a large file, with progress.

- **train**: ``python -m pipelines.train <module> --data D --artifacts OUT [options]`` as a
  child process at a lower CPU priority (nice 10), its output the job's log, its
  ``<word> N/M`` lines (epochs, folds, images) the job's progress; the release it writes
  becomes a *candidate* version in the registry (checked and loaded once first), never live.
- **score**: the module's own batch scorer (``ModuleSpec.batch``: its parsing and scoring code,
  chunk by chunk) over a file or folder on disk (a zip is unpacked first), the results CSV
  written to ``JOBS_DIR`` as the chunks come (gzipped) and the run recorded in History when it
  ends. With ``DASK_SCHEDULER`` set, the data is scored on that Dask cluster instead
  (:func:`pipelines.core.batch.score`, the module's ``PipelineModule.batch`` adapter), its
  partitions' results files joined into the job's results CSV; Dask is imported only then.

Both check between steps whether the job was cancelled, or the worker asked to stop (then
the job goes back in the queue); a heartbeat thread stores progress and log lines every
``JOBS_HEARTBEAT_SECONDS`` and reads the cancel flag.
"""
from __future__ import annotations

import gzip
import importlib.util
import io
import json
import logging
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

from flask import current_app
from werkzeug.exceptions import HTTPException

from pipelines.core.problems import SchemaError
from webapp.errors import schema_error
from webapp.jobs import store

logger = logging.getLogger(__name__)

NICE = 10
# the training extra's packages (setup.py extras "train"): training needs them, serving does not
TRAINING_PACKAGES = ("sklearn", "torch", "onnx", "imblearn")
PROGRESS = re.compile(r"\b([A-Za-z]+) (\d+)/(\d+)(?: ([A-Za-z]+))?")
UNITS = {"epoch": "epochs", "fold": "folds", "origin": "origins"}
PREFIX = re.compile(r"^\[\S+\s+[\d.]+s\]\s*")  # the training command's "[module  12.3s] "
ZIP_MEMBERS = 200_000


class JobCancelled(Exception):
    """Someone cancelled the job."""


class WorkerStopping(Exception):
    """The worker is stopping: the job goes back in the queue."""


class JobError(Exception):
    """The job cannot go on; the message says why (it becomes the job's error)."""


def training_problem() -> str | None:
    """Why training cannot run on this machine (the training extra is missing), or None."""
    missing = [p for p in TRAINING_PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        return (f"training needs the training extra (pip install 'fablens[train]'), and this "
                f"server lacks {', '.join(missing)}; scoring jobs run here, training runs "
                f"where the extra is installed")
    return None


class JobContext:
    """A running job's progress, log and cancel flag, stored by a heartbeat thread."""

    def __init__(self, engine, job_id: int, stopping: threading.Event, every: float):
        self.engine, self.job_id, self.stopping, self.every = engine, job_id, stopping, every
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._progress: dict = {}
        self.cancelled = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"fablens-job-{job_id}",
                                        daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join(timeout=10)

    def log(self, line: str) -> None:
        with self._lock:
            self._lines.append(line.rstrip("\n")[:2000])

    def progress(self, done: int | None = None, total: int | None = None,
                 unit: str | None = None, stage: str | None = None) -> None:
        with self._lock:
            self._progress.update({k: v for k, v in (("done", done), ("total", total),
                                                     ("unit", unit), ("stage", stage))
                                   if v is not None})

    def drain(self) -> str:
        with self._lock:
            lines, self._lines = self._lines, []
        return "".join(line + "\n" for line in lines)

    def flush(self) -> None:
        with self._lock:
            progress, self._progress = self._progress, {}
        log = self.drain()
        self.cancelled = store.beat(self.engine, self.job_id, log=log, **progress) \
            or self.cancelled

    def _beat(self) -> None:
        while not self._done.wait(self.every):
            try:
                self.flush()
            except Exception:  # the database away for a moment: the next beat tries again
                logger.exception("job %s: heartbeat failed", self.job_id)

    def check(self) -> None:
        """Raise when the job was cancelled or the worker is stopping."""
        if self.cancelled:
            raise JobCancelled()
        if self.stopping.is_set():
            raise WorkerStopping()


def run(job_id: int, jobs) -> None:
    """Run job ``job_id`` (the Huey task's body, inside the app's context)."""
    app = current_app._get_current_object()
    engine = app.extensions["fablens_db"]
    if not store.claim(engine, job_id):
        return  # cancelled while it waited, or another worker has it
    job = store.get(engine, job_id)
    ctx = JobContext(engine, job_id, jobs.stopping, float(app.config["JOBS_HEARTBEAT_SECONDS"]))
    outcome, error, result, run_id = "done", None, None, None
    with ctx:
        try:
            ctx.log(f"{job['kind']} {job['module']} on {job['data']}, started by {job['user']} "
                    f"on {store.worker_marker()}")
            work = train if job["kind"] == "train" else score
            result, run_id = work(job, ctx)
        except JobCancelled:
            outcome, error = "cancelled", "cancelled while it ran"
        except WorkerStopping:
            outcome = "requeue"
        except JobError as exc:
            outcome, error = "failed", str(exc)
        except HTTPException as exc:  # the module's own input errors (a bad file, a bad row)
            outcome, error = "failed", exc.description or exc.name
        except SchemaError as exc:  # located problems of the data, worded as the API words them
            outcome, error = "failed", schema_error(exc).description
        except Exception as exc:
            logger.exception("job %s failed", job_id)
            outcome, error = "failed", f"unexpected {type(exc).__name__} on the worker: {exc}"
    ctx.flush() if outcome != "requeue" else None
    log = ctx.drain()
    if outcome == "requeue":
        store.beat(engine, job_id, log=log)
        if store.requeue(engine, job_id, "the worker stopped"):
            jobs.enqueue(job_id)
        return
    if error:
        log += f"{outcome}: {error}\n"
    else:
        log += "done\n"
    store.finish(engine, job_id, outcome, error=error, result=result, run_id=run_id, log=log)
    if outcome == "done" or outcome == "cancelled":
        shutil.rmtree(work_dir(job_id), ignore_errors=True)


# -- where the data is ------------------------------------------------------------------------------
def jobs_dir() -> Path:
    return Path(current_app.config["JOBS_DIR"])


def work_dir(job_id: int) -> Path:
    return jobs_dir() / f"job-{job_id}"


def upload_path(upload_id: int, name: str) -> Path:
    """Where upload ``upload_id`` is stored: a fixed name keeping only the file's type
    (``upload.csv.gz``, ``upload.npz``), never the name a user chose."""
    suffixes = "".join(s.lower() for s in Path(name).suffixes[-2:]
                       if re.fullmatch(r"\.[A-Za-z0-9]{1,5}", s))
    return jobs_dir() / "uploads" / str(upload_id) / f"upload{suffixes}"


def input_path(name: str) -> Path:
    """A file or folder inside ``JOBS_INPUT_DIR``; a :class:`JobError` otherwise."""
    folder = current_app.config.get("JOBS_INPUT_DIR")
    if not folder:
        raise JobError("no input folder is configured (FABLENS_JOBS_INPUT_DIR)")
    root = Path(folder).resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or not path.exists():
        raise JobError(f"input: '{name[:100]}' is not a file or folder in the input folder")
    return path


def job_input(job: dict, ctx: JobContext) -> tuple[Path, str]:
    """The job's data: (path, name in words)."""
    params = job["params"]
    if params.get("upload"):
        found = store.get_upload(current_app.extensions["fablens_db"], params["upload"])
        if found is None:
            raise JobError(f"upload {params['upload']} is gone")
        return upload_path(found["id"], found["name"]), found["name"]
    if params.get("input"):
        return input_path(params["input"]), params["input"]
    return Path(current_app.config["DATA_DIR"]), "the shared data"


def is_zip(path: Path) -> bool:
    """Whether ``path`` is a zip archive to unpack (named .zip, a zip inside)."""
    if not path.is_file() or path.suffix.lower() != ".zip":
        return False
    with open(path, "rb") as handle:
        return handle.read(4) in (b"PK\x03\x04", b"PK\x05\x06")


def unpacked(archive: Path, into: Path, ctx: JobContext, top: bool = True) -> Path:
    """A zip's files written under ``into`` (names checked: nothing outside it, no links), at
    most ``ZIP_MEMBERS`` files; with ``top``, the one top folder when everything is in one
    (else ``into``, so files keep the names they have in the archive)."""
    into.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > ZIP_MEMBERS:
            raise JobError(f"the archive holds {len(infos)} files; at most {ZIP_MEMBERS}")
        for k, info in enumerate(infos):
            parts = [p for p in info.filename.replace("\\", "/").split("/") if p]
            if info.filename.startswith("/") or ".." in parts or not parts \
                    or (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise JobError(f"the archive member '{info.filename[:100]}' is not a plain "
                               f"file inside the archive")
            if parts[0] == "__MACOSX" or parts[-1].startswith("."):
                continue
            target = into.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            if k % 200 == 0:
                ctx.progress(k, len(infos), "files", "unpacking the archive")
                ctx.check()
    entries = [p for p in into.iterdir() if not p.name.startswith(".")]
    return entries[0] if top and len(entries) == 1 and entries[0].is_dir() else into


# -- training ----------------------------------------------------------------------------------------
def option_args(options: dict) -> list[str]:
    """The training command's options from ``{"epochs": 2, "models": ["a", "b"]}``."""
    argv = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, list):
            argv += [flag, *(str(v) for v in value)]
        elif isinstance(value, dict):
            argv += [flag, json.dumps(value)]
        else:
            argv += [flag, str(value)]
    return argv


def parse_progress(line: str) -> dict | None:
    """``epoch 3/20``, ``fold 2/10``, ``features of 40/200 images``: done, total, unit."""
    found = None
    for found in PROGRESS.finditer(line):
        pass
    if found is None:
        return None
    word, done, total, after = found.groups()
    unit = after.lower() if word.lower() == "of" and after else UNITS.get(word.lower(),
                                                                           word.lower())
    return {"done": int(done), "total": int(total), "unit": unit}


def _reader(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _stop(process: subprocess.Popen) -> None:
    """Stop the training process group: SIGTERM, then SIGKILL after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def train(job: dict, ctx: JobContext) -> tuple[dict, None]:
    """Train the module in a child process and add its release as a candidate version."""
    from pipelines.core.artifacts import BundleError
    from pipelines.core.versions import add_to_store, check_release
    from webapp.predictors import load_from

    config = current_app.config
    problem = training_problem()
    if problem:
        raise JobError(problem)
    module = job["module"]
    folder = work_dir(job["id"])
    shutil.rmtree(folder, ignore_errors=True)
    out = folder / "out"
    out.mkdir(parents=True)
    data, name = job_input(job, ctx)
    if data.is_file() and data.suffix.lower() == ".zip":
        data = unpacked(data, folder / "data", ctx)
    command = [*config["JOBS_TRAIN_COMMAND"], module, "--data", str(data),
               "--artifacts", str(out), *option_args(job["params"].get("options") or {})]
    ctx.log("$ " + " ".join(["python -m pipelines.train", *command[len(
        config["JOBS_TRAIN_COMMAND"]):]]).replace(str(folder), "<job>"))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, text=True, errors="replace",
                               cwd=config["HOME_DIR"], env=env, start_new_session=True)
    try:
        os.setpriority(os.PRIO_PROCESS, process.pid, NICE)
    except OSError:
        pass
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(process.stdout, lines), daemon=True).start()
    tail: list[str] = []
    try:
        while True:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                ctx.check()
                continue
            if line is None:
                break
            line = line.rstrip("\n").replace(str(folder), "<job>")
            ctx.log(line)
            tail = (tail + [line])[-5:]
            text = PREFIX.sub("", line)
            found = parse_progress(text)
            ctx.progress(**(found or {}), stage=text[:300])
            ctx.check()
        code = process.wait()
    except BaseException:
        _stop(process)
        raise
    if code != 0:
        last = next((t for t in reversed(tail) if t.strip()), "no output")
        raise JobError(f"training stopped with exit code {code}: {PREFIX.sub('', last)[:300]}")
    release = out / module
    ctx.progress(stage="checking the release and adding it to the registry")
    try:
        check_release(release, module)
        load_from(module, release)  # it must serve before it is a version
        version = add_to_store(release, Path(config["MODEL_STORE"]), module,
                               {"source": f"training job {job['id']}", "by": job["user"],
                                "job": job["id"], "data": name[:200]})
    except (BundleError, KeyError, ValueError, OSError) as exc:
        raise JobError(f"the trained release is not usable: {str(exc)[:300]}") from None
    ctx.log(f"candidate version {version.id} of {module} is in the registry (not live)")
    return {"version": version.id}, None


# -- batch scoring -------------------------------------------------------------------------------------
def results_path(job_id: int) -> Path:
    return jobs_dir() / "results" / f"job-{job_id}.csv.gz"


def score(job: dict, ctx: JobContext) -> tuple[dict, int]:
    """Score the data with the module's batch scorer (here, or on the configured Dask
    scheduler); results CSV on disk, run in History."""
    from webapp import db, metrics
    from webapp.predictors import get_predictor
    from webapp.registry import get_module

    module = job["module"]
    spec = get_module(module)
    if spec.batch is None:
        raise JobError(f"{module} has no batch scoring yet")
    path, name = job_input(job, ctx)
    if is_zip(path):  # a zip of photos or maps: its files, named as in the archive
        path = unpacked(path, work_dir(job["id"]) / "data", ctx, top=False)
    params = job["params"]
    predictor = get_predictor(module)
    release = getattr(predictor, "release_version", None)
    ctx.progress(stage=f"reading {name}")
    scoring = spec.batch(predictor, path, name, {"model": params.get("model"),
                                                 "threshold": params.get("threshold"),
                                                 "work_dir": str(work_dir(job["id"]))})
    scheduler = current_app.config.get("DASK_SCHEDULER")
    target = results_path(job["id"])
    target.parent.mkdir(parents=True, exist_ok=True)
    draft = target.with_name(target.name + ".part")
    started = time.perf_counter()
    with gzip.open(draft, "wb", compresslevel=1) as out:
        if scheduler:
            counts = _on_dask(job, ctx, scoring, path, name, release, scheduler, out)
        else:
            counts = _here(ctx, scoring, out)
    os.replace(draft, target)
    seconds = time.perf_counter() - started
    n_items, n_flagged, labelled, version = counts
    summary = scoring.finish() if scoring.finish and not scheduler else {}
    if "labelled_faulty" in summary:
        labelled = summary["labelled_faulty"]
    run_id = db.record_run(
        module, scoring.model, version or scoring.model_version, f"job {job['id']}: {name}",
        n_items, n_flagged, scoring.threshold, default_threshold=scoring.default_threshold,
        warnings=summary.get("warnings"), labelled_faulty=labelled,
        user=job["user"], release=release, drift=summary.get("drift"))
    if scoring.after_record is not None and not scheduler:
        scoring.after_record(run_id)
    metrics.record_prediction(module, version or scoring.model_version, n_items, n_flagged)
    ctx.log(f"scored {n_items:,} {scoring.unit} in {seconds:.1f} s; {n_flagged:,} flagged at "
            f"{scoring.threshold:.6g}; run {run_id} in History")
    return {"n_items": n_items, "n_flagged": n_flagged, "threshold": scoring.threshold,
            "model": scoring.model, "model_version": version or scoring.model_version,
            "seconds": round(seconds, 1), "warnings": summary.get("warnings") or [],
            **({"dask_scheduler": scheduler} if scheduler else {})}, run_id


def _here(ctx: JobContext, scoring, out) -> tuple[int, int, int | None, None]:
    """The module's chunks, scored in this process, written to ``out`` as they come."""
    from pipelines.core.csvout import csv_bytes

    n_items = n_flagged = labelled = 0
    has_labels = False
    for chunk in scoring.chunks:
        out.write(csv_bytes(chunk.frame, None, header=n_items == 0))
        n_items += chunk.n_items
        n_flagged += chunk.n_flagged
        if chunk.labelled_faulty is not None:
            has_labels, labelled = True, labelled + chunk.labelled_faulty
        ctx.progress(n_items, scoring.total, scoring.unit,
                     f"scored {n_items:,} {scoring.unit}, {n_flagged:,} flagged")
        ctx.check()
    return n_items, n_flagged, labelled if has_labels else None, None


def _on_dask(job: dict, ctx: JobContext, scoring, path: Path, name: str, release: str | None,
             scheduler: str, out) -> tuple[int, int, None, str | None]:
    """The data scored on the Dask cluster at ``scheduler`` (:func:`pipelines.core.batch.score`:
    the module's adapter, the release this worker serves), its partitions' results files
    joined into ``out``. The cluster's workers must see this release, the data and the job's
    folder at the same paths."""
    from pipelines.core import batch
    from webapp.predictors import release_folder

    module, params = job["module"], job["params"]
    folder = work_dir(job["id"]) / "dask"
    ctx.progress(stage=f"scoring {name} on the Dask scheduler at {scheduler}")
    ctx.log(f"scoring on the Dask scheduler at {scheduler}")

    def progress(done: int, total: int) -> None:
        ctx.progress(done, total, "partitions",
                     f"{done:,} of {total:,} partitions scored on Dask")
        ctx.check()

    try:
        summary = batch.score(module, str(path), folder, scheduler=scheduler,
                              release=release_folder(module, release),
                              model=params.get("model"), threshold=params.get("threshold"),
                              overwrite=True, progress=progress)
    except ImportError as exc:
        raise JobError(f"scoring on Dask needs the scale extra (pip install "
                       f"'fablens[scale]'): {exc}") from None
    except batch.BatchError as exc:
        raise JobError(str(exc).replace(str(path), name)) from None
    except (OSError, TimeoutError) as exc:
        raise JobError(f"the Dask scheduler at {scheduler} did not answer ({exc})") from None
    joined(folder, summary["files"], out)
    versions = summary.get("model_versions") or []
    ctx.progress(summary["items"], summary["items"], scoring.unit,
                 f"scored {summary['items']:,} {scoring.unit} in {summary['partitions']:,} "
                 f"partitions on {summary['workers']} Dask workers")
    return summary["items"], summary["flagged"], None, versions[0] if len(versions) == 1 \
        else None


def joined(folder: Path, files: list[str], out) -> None:
    """The partitions' results CSVs as one CSV in ``out``, every row once, under one header:
    the columns of every part, in the order met (a part without one, a batch of maps without
    labels, leaves its cells empty)."""
    import csv

    headers = []
    for name in files:
        with open(folder / name, "rb") as part:
            headers.append(part.readline())
    columns: list[str] = []
    for line in headers:
        columns += [c for c in next(csv.reader([line.decode("utf-8")]), []) if c not in columns]
    header = headers[0] if headers and next(csv.reader([headers[0].decode("utf-8")])) == columns \
        else None
    if headers:
        out.write(header or _csv_line(columns))
    for name, line in zip(files, headers):
        with open(folder / name, "rb") as part:
            part.readline()
            if line == header:
                shutil.copyfileobj(part, out, 1 << 20)
                continue
            index = {c: k for k, c in enumerate(next(csv.reader([line.decode("utf-8")])))}
            text = io.TextIOWrapper(part, encoding="utf-8", newline="")
            for row in csv.reader(text):
                out.write(_csv_line([row[index[c]] if c in index else "" for c in columns]))


def _csv_line(cells: list[str]) -> bytes:
    import csv

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue().encode("utf-8")
