"""Batch scoring on Dask: a month of data, partition by partition, with the serving predictors.

:func:`score` is the one entry point (``python -m pipelines.score`` is its command line, and
the jobs queue calls it when a Dask scheduler is configured). It

1. finds the input files (a folder, searched recursively, a glob, or a list of paths);
2. asks the module's batch adapter (``pipelines.<module>.batch``, named by its
   ``PipelineModule.batch``) for a Dask collection of input partitions: ``dask.dataframe``
   for tables (sensor rows) and histories (time series, shuffled so that each machine's
   whole history is in one partition), ``dask.bag`` for wafer maps and photos;
3. scores every partition on a worker with the module's predictor, the class the web app
   serves with (loaded once per worker process from the release folder, hash-checked), via
   the adapter's ``score_partition`` -> the module's results table
   (``pipelines.<module>.results``, the predict API's results CSV);
4. writes one results file per partition on the worker (``part-00000.csv`` or ``.parquet``;
   CSV through the one formula-safe writer, :mod:`pipelines.core.csvout`, exact scores),
   each atomically (a temporary name, then renamed), and
5. writes ``summary.json``: items, flagged, partitions, files, seconds, the release version
   (content id) every worker scored with, the model versions, the model and threshold asked
   for.

By default a ``LocalCluster`` of worker processes on this machine runs it; ``scheduler``
(``tcp://host:8786``) sends it to any Dask scheduler, whose workers must import this
package and read the release folder and the inputs at the same paths, and write the output
folder (a shared file system).

Dask is imported only inside functions, so importing this module (or an adapter) costs
nothing; the web app never imports it (its memory budget).
"""
from __future__ import annotations

import glob
import importlib
import json
import logging
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pandas as pd

from pipelines.core.csvout import FLAGGED, csv_bytes
from pipelines.core.modules import get_module

logger = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
FORMATS = ("csv", "parquet")
PART_PREFIX = "part-"

_PREDICTORS: dict[tuple, tuple[object, str]] = {}
_PREDICTORS_LOCK = threading.Lock()


class BatchError(ValueError):
    """A batch that cannot start: no inputs, a module without a batch adapter, an output
    folder holding an earlier run's results, an unknown format."""


def adapter(module: str):
    """The module's batch adapter (``PipelineModule.batch``), imported."""
    spec = get_module(module)
    if spec.batch is None:
        raise BatchError(f"module '{module}' has no batch scoring")
    return importlib.import_module(spec.batch)


def batch_modules() -> list[str]:
    """The modules that can be scored in batch."""
    from pipelines.core.modules import discover

    return sorted(name for name, m in discover().items() if m.batch)


def _has_extension(path: Path, extensions: Sequence[str]) -> bool:
    name = path.name.lower()
    return any(name.endswith(ext) for ext in extensions)


def find_inputs(inputs: str | Path | Sequence[str | Path], extensions: Sequence[str]
                ) -> tuple[list[Path], Path]:
    """The input files, sorted, and the folder their names are given relative to.

    ``inputs``: a folder (every file under it with one of ``extensions``), a glob pattern
    (``**`` allowed), one file, or a list of files."""
    if isinstance(inputs, (str, Path)):
        path = Path(inputs)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file()
                           and _has_extension(p, extensions))
            root = path
        elif path.is_file():
            files, root = [path], path.parent
        else:
            files = sorted(Path(p) for p in glob.glob(str(inputs), recursive=True)
                           if Path(p).is_file() and _has_extension(Path(p), extensions))
            root = Path(os.path.commonpath([str(p.parent) for p in files])) if files else path
    else:
        files = sorted(Path(p) for p in inputs)
        missing = [str(p) for p in files if not p.is_file()]
        if missing:
            raise BatchError(f"no such input file(s): {', '.join(missing[:5])}")
        root = Path(os.path.commonpath([str(p.parent) for p in files])) if files else Path(".")
    if not files:
        raise BatchError(f"no input files in {inputs} (accepted: {', '.join(extensions)})")
    return [p.resolve() for p in files], root.resolve()


def relative_name(path: Path | str, root: Path | str) -> str:
    """A file's name as results show it: its path under the input folder."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).name


def _check_output(output: Path, overwrite: bool) -> None:
    output.mkdir(parents=True, exist_ok=True)
    earlier = sorted(p for p in output.iterdir()
                     if p.name == SUMMARY_FILE or p.name.startswith(PART_PREFIX))
    if earlier and not overwrite:
        raise BatchError(f"{output} holds results of an earlier run ({earlier[0].name}, ...); "
                         f"choose an empty folder, or overwrite")
    for p in earlier:
        p.unlink()


def load_predictor(module: str, release: str, threads: int):
    """The module's predictor for ``release`` with ``threads`` model threads, and the release's
    version id: loaded once per process (a worker scores every partition with it)."""
    from pipelines.core.versions import version_id

    key = (module, str(release), int(threads))
    with _PREDICTORS_LOCK:
        if key not in _PREDICTORS:
            cls = _predictor_class(adapter(module))
            _PREDICTORS[key] = (cls(Path(release), n_jobs=int(threads)),
                                version_id(Path(release)))
        return _PREDICTORS[key]


def warm(module: str, release: str, threads: int = 1) -> str:
    """Load the predictor in this process now (``client.run(warm, ...)`` on every worker, so
    the first partitions do not wait for it); the release's version id."""
    return load_predictor(module, release, threads)[1]


def _predictor_class(batch_adapter):
    path, _, name = batch_adapter.PREDICTOR.partition(":")
    return getattr(importlib.import_module(path), name)


def write_results(frame: pd.DataFrame, output: Path, number: int, fmt: str) -> Path:
    """One partition's results as ``part-<number>.<fmt>`` in ``output``, written under a
    temporary name and renamed, so a reader never sees half a file (a retried task rewrites
    it whole)."""
    path = Path(output) / f"{PART_PREFIX}{number:05d}.{fmt}"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    if fmt == "csv":
        tmp.write_bytes(csv_bytes(frame, float_decimals=None))
    else:
        frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path


def run_partition(module: str, release: str, threads: int, part, number: int, output: str,
                  fmt: str, model: str | None, threshold: float | None,
                  context: dict | None = None) -> dict:
    """Score one partition on a worker and write its results file; what the summary needs.
    ``context``: what the adapter's ``partitions`` said its ``score_partition`` needs."""
    started = time.perf_counter()
    predictor, version = load_predictor(module, release, threads)
    results = adapter(module).score_partition(predictor, part, model=model,
                                              threshold=threshold, **(context or {}))
    out = {"partition": number, "items": int(len(results)), "release_version": version,
           "file": None, "flagged": 0, "model_versions": []}
    if len(results):
        out["file"] = write_results(results, Path(output), number, fmt).name
        out["flagged"] = int(results[FLAGGED].sum())
        out["model_versions"] = sorted(map(str, pd.unique(results["model"])))
    out["seconds"] = time.perf_counter() - started
    return out


@contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None,
                threads_per_worker: int = 1) -> Iterator[object]:
    """A ``distributed.Client``: to ``scheduler`` when given, else to a new ``LocalCluster``
    of ``workers`` processes (default: one per core), closed on exit."""
    from distributed import Client, LocalCluster

    if scheduler:
        client = Client(scheduler)
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1,
                           threads_per_worker=threads_per_worker, processes=True,
                           dashboard_address=None, silence_logs=logging.WARNING)
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def score(module: str, inputs: str | Path | Sequence[str | Path], output: str | Path, *,
          scheduler: str | None = None, client=None, workers: int | None = None,
          threads_per_worker: int = 1, model_threads: int = 1, release: str | Path | None = None,
          model: str | None = None, threshold: float | None = None, fmt: str = "csv",
          partition_size: int | None = None, partitions: int | None = None,
          overwrite: bool = False, options: dict | None = None,
          progress: Callable[[int, int], None] | None = None) -> dict:
    """Score every item of ``inputs`` with ``module``'s release on Dask; the summary.

    ``client`` (a ``distributed.Client``) is used as it is; else ``scheduler`` (an address)
    or a ``LocalCluster`` of ``workers`` processes with ``threads_per_worker`` threads each.
    ``release`` is the release folder (default: the committed ``artifacts/<module>``),
    loaded on each worker with ``model_threads`` threads per model; ``model`` and
    ``threshold`` as in the predict API (for wafer maps, ``threshold`` is the review level).
    ``partition_size`` and ``partitions`` shape the partitions (see each adapter), and
    ``options`` holds the adapter's own keywords (time series: ``machine_column``, ...).
    ``progress(done, total)`` is called as partitions finish. Writes the results files and
    ``summary.json`` into ``output`` and returns the summary (also on failure, nothing is
    left half-written: a failed partition raises its error, naming its file)."""
    if fmt not in FORMATS:
        raise BatchError(f"format must be one of {', '.join(FORMATS)}, not '{fmt}'")
    started = time.perf_counter()
    batch = adapter(module)
    if release is None:
        from pipelines.core import locations

        release = locations.artifacts_dir(os.environ) / module
    release = Path(release).resolve()
    from pipelines.core.versions import version_id

    version = version_id(release)  # a folder that is no release fails here, before any work
    files, root = find_inputs(inputs, batch.EXTENSIONS)
    output = Path(output).resolve()
    _check_output(output, overwrite)
    made = batch.partitions(files, root, partition_size=partition_size, partitions=partitions,
                            **(options or {}))
    collection, context = made if isinstance(made, tuple) else (made, {})
    with (_given(client) if client is not None
          else dask_client(scheduler, workers, threads_per_worker)) as active:
        parts = _score_collection(active, collection, context, module, release, model_threads,
                                  output, fmt, model, threshold, progress)
        n_workers = len(active.scheduler_info().get("workers", {}))
        address = active.scheduler.address if active.scheduler else scheduler
    versions = sorted({p["release_version"] for p in parts})
    if versions != [version]:
        raise BatchError(f"the workers scored with release(s) {versions}, not {version} in "
                         f"{release}: every worker must read the same release folder")
    summary = {
        "module": module, "noun": batch.NOUN,
        "items": sum(p["items"] for p in parts),
        "flagged": sum(p["flagged"] for p in parts),
        "partitions": len(parts), "files": [p["file"] for p in parts if p["file"]],
        "input_files": len(files), "format": fmt,
        "seconds": round(time.perf_counter() - started, 3),
        "release_version": version,
        "model_versions": sorted({m for p in parts for m in p["model_versions"]}),
        "model": model, "threshold": threshold,
        "workers": n_workers, "scheduler": address,
    }
    (output / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


@contextmanager
def _given(client):
    yield client


def _score_collection(client, collection, context, module, release, threads, output, fmt,
                      model, threshold, progress) -> list[dict]:
    """Each partition of ``collection`` scored and written by :func:`run_partition` on the
    cluster, its summary back (in partition order)."""
    import uuid

    import dask
    from distributed import as_completed

    run = uuid.uuid4().hex[:12]  # keys of this run only: a client never reuses another's
    pieces = collection.to_delayed()
    tasks = [dask.delayed(run_partition, pure=False)(
        module, str(release), threads, piece, number, str(output), fmt, model, threshold,
        context, dask_key_name=f"fablens-score-{module}-{run}-{number}")
        for number, piece in enumerate(pieces)]
    futures = client.compute(tasks)
    done, out = 0, []
    try:
        for future in as_completed(futures):
            out.append(future.result())
            done += 1
            if progress is not None:
                progress(done, len(futures))
    finally:
        client.cancel(futures)  # after a failure, the rest stops (done ones: nothing to do)
    return sorted(out, key=lambda p: p["partition"])
