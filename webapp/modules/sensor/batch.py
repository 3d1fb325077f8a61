"""Batch scoring of a sensor file on disk (a job: ``webapp/jobs``), as the predict API scores
an upload: the same reader (:func:`open_sensor_file`, ``CHUNK_ROWS`` rows at a time, the next
chunk read while one is scored), the same predictor call, results table and CSV columns
(:mod:`pipelines.sensor.results`), the same drift record and warnings. Only one chunk's rows
are alive at a time: the job writes each chunk's results to disk and drops them, so a file of
any length scores in the memory of a few chunks.
"""
from __future__ import annotations

import gzip
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.core.detectors import InvalidInputError
from pipelines.sensor.ingest.table import CHUNK_ROWS, open_sensor_file
from pipelines.sensor.predict import SensorPredictor
from pipelines.sensor.results import results_csv_frame, with_extras
from webapp.errors import InputError
from webapp.modules.sensor.parsing import _guarded
from webapp.modules.sensor.service import prefetched, run_drift, scoring_warnings
from webapp.params import check_threshold_range
from webapp.registry import BatchChunk, BatchScoring


def count_rows(path: Path) -> int | None:
    """Lines after the header of a plain CSV (a cheap pass over the bytes); None for a
    compressed file or a workbook, whose rows are not counted ahead."""
    if path.suffix.lower() in (".gz", ".xlsx") or not path.is_file():
        return None
    lines, last = 0, b"\n"
    with open(path, "rb") as stream:
        while block := stream.read(1 << 22):
            lines += block.count(b"\n")
            last = block[-1:]
    return max(lines - 1 + (last != b"\n"), 0)


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")


def score_file(predictor: SensorPredictor, path: Path, name: str, options: dict) -> BatchScoring:
    """The file at ``path`` (called ``name``) scored chunk by chunk at ``options``' model and
    threshold (the module's defaults when None)."""
    decider = predictor.get(options.get("model"))
    check_threshold_range(options.get("threshold"), decider.score_range, decider.name)
    threshold = decider.threshold if options.get("threshold") is None \
        else float(options["threshold"])
    drift = predictor.drift_counter()
    seen: dict = {"names": None, "in_sample": [], "detected": None, "ids": 0}

    def prepare(table):
        drift.update(table.values)
        return table, predictor.in_sample(table.values)

    def chunks():
        if path.is_dir():
            raise InputError(f"{name}: a sensor scoring job reads one CSV file (plain or .gz), "
                             f"not a folder or an archive; a folder of files scores on Dask "
                             f"(FABLENS_DASK_SCHEDULER) or one job per file")
        with _open(path) as stream, ThreadPoolExecutor(1, thread_name_prefix="fablens-batch") \
                as helper:
            opened = open_sensor_file(stream, name, chunk_rows=CHUNK_ROWS)
            for table, in_sample in prefetched(_guarded(opened.chunks, opened.detected),
                                               prepare, helper):
                try:
                    results = predictor.predict(table, threshold=threshold, model=decider.name)
                except InvalidInputError as exc:
                    raise InputError(f"{name}: {exc}") from None
                results["in_sample"] = in_sample
                seen["names"] = table.sensor_labels
                seen["in_sample"].append(np.asarray(in_sample, dtype=bool))
                results = with_extras(results, table)
                yield BatchChunk(results_csv_frame(results, threshold, decider.version),
                                 len(results), int(results["is_fault"].sum()),
                                 int(results["label"].sum()) if "label" in results else None)

    def finish() -> dict:
        report = drift.result(seen["names"])
        in_sample = np.concatenate(seen["in_sample"]) if seen["in_sample"] else np.zeros(0, bool)
        return {"drift": run_drift(report),
                "warnings": scoring_warnings(pd.DataFrame({"in_sample": in_sample}), report)}

    return BatchScoring(model=decider.name, model_version=decider.version, threshold=threshold,
                        default_threshold=decider.threshold, unit="rows", chunks=chunks(),
                        total=count_rows(path), finish=finish)
