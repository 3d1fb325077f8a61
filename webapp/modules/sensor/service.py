"""Scoring a sensor request chunk by chunk, and what the results say beyond the scores.

Only one chunk of sensor values (``CHUNK_ROWS`` rows) is alive at a time; what is kept for
the whole file is the compact results table (ids, scores, decision, top sensors, labels and
the file's extra columns).
"""
from __future__ import annotations

import contextvars
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterator, TypeVar

import numpy as np
import pandas as pd

from pipelines.core.detectors import InvalidInputError
from pipelines.core.drift import drift_record
from pipelines.sensor.ingest.table import SensorTable
from pipelines.sensor.predict import SCORE_COLUMNS, SensorPredictor
from pipelines.sensor.results import results_csv_frame, with_extras
from webapp.downloads import ChunkedCsv
from webapp.errors import InputError
from webapp.modules.sensor.parsing import SensorRequest, file_warnings
from webapp.params import check_threshold_range

logger = logging.getLogger(__name__)

T = TypeVar("T")

# share of readings outside the training 1st-99th percentile range worth a warning (the
# training data itself has about 2% there by construction)
DRIFT_WARNING = 0.05

@dataclass
class ScoredRun:
    """A whole request scored: the results table and what the page and History need."""

    results: pd.DataFrame
    model: str
    model_version: str
    threshold: float
    default_threshold: float
    score_column: str
    n_missing: int
    extra_columns: list[str]
    has_labels: bool
    drift: dict | None = None
    warnings: list[str] = field(default_factory=list)
    csv: ChunkedCsv | None = None  # the results CSV (exact scores), written as chunks came

    @property
    def n_flagged(self) -> int:
        return int(self.results["is_fault"].sum())


def _warnings(req: SensorRequest, results: pd.DataFrame) -> list[str]:
    return list(req.warnings) + file_warnings(req.detected, results["id"])


def score_request(predictor: SensorPredictor, req: SensorRequest) -> ScoredRun:
    """Score every chunk of ``req``; a 400 for an unknown model or a bad threshold."""
    decider = predictor.get(req.model)  # an unknown model: a 400 (webapp.errors)
    check_threshold_range(req.threshold, decider.score_range, decider.name)
    threshold = decider.threshold if req.threshold is None else req.threshold
    parts, n_missing, extra, has_labels, names = [], 0, [], False, None
    csv = ChunkedCsv(float_decimals=None)  # History re-decides it later: exact scores
    drift = predictor.drift_counter()

    def prepare(table: SensorTable) -> tuple[SensorTable, np.ndarray]:
        """Row checks that need no model, done in the parsing thread beside the scoring."""
        drift.update(table.values)
        return table, predictor.in_sample(table.values)

    with ThreadPoolExecutor(1, thread_name_prefix="fablens-chunks") as helper:
        for table, in_sample in prefetched(req.chunks, prepare, helper):
            try:
                results = predictor.predict(table, threshold=threshold, model=decider.name)
            except InvalidInputError as exc:
                raise InputError(f"{req.source}: {exc}") from None
            results["in_sample"] = in_sample
            n_missing += int(results["imputed_cells"].sum())
            has_labels = table.labels is not None
            names = table.sensor_labels
            extra = [] if table.extra is None else list(table.extra.columns)
            parts.append(with_extras(results, table))
            # here, while the helper reads the next chunk: parsing is the longer half now that
            # scoring is cheap (it was written on the helper while scoring was the longer)
            csv.add(results_csv_frame(parts[-1], threshold, decider.version))
    results = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    report = drift.result(names)
    return ScoredRun(results=results, model=decider.name, model_version=decider.version,
                     threshold=threshold, default_threshold=decider.threshold,
                     score_column=SCORE_COLUMNS[decider.role], n_missing=n_missing,
                     extra_columns=extra, has_labels=has_labels, drift=report,
                     warnings=_warnings(req, results) + scoring_warnings(results, report),
                     csv=csv)


def prefetched(chunks: Iterator[SensorTable], prepare: Callable[[SensorTable], T],
               helper: ThreadPoolExecutor) -> Iterator[T]:
    """``prepare(chunk)`` for each chunk, the next one read and prepared by ``helper`` (one
    thread) while the caller scores this one.

    Parsing and hashing hold the GIL only part of the time and the models release it, so on
    two cores a large file is read and scored at once. At most two chunks are alive. Work the
    caller submits to ``helper`` in the meantime runs after the next chunk is read, in the
    order submitted. Each step runs in a copy of the caller's context, so the request's time
    budget
    (:mod:`pipelines.core.budget`) stops the reading too.
    """
    iterator = iter(chunks)

    def step():
        table = next(iterator, None)
        return None if table is None else prepare(table)

    def submit():  # in a copy of the caller's context: its time budget goes along
        return helper.submit(contextvars.copy_context().run, step)

    future = submit()
    while (item := future.result()) is not None:
        future = submit()
        yield item


def scoring_warnings(results: pd.DataFrame, drift: dict) -> list[str]:
    """What the scores themselves warn about: rows the model was trained on, unusual data."""
    out = []
    seen = int(results["in_sample"].sum())
    if seen:
        out.append(f"{seen} of {len(results)} rows match wafers the model was trained on: their "
                   f"scores are in-sample and look better than scores of new wafers would.")
    if drift["share_outside"] > DRIFT_WARNING:
        names = ", ".join(d["sensor"] for d in drift["top_drifted"][:3])
        out.append(f"{100 * drift['share_outside']:.0f}% of the readings lie outside the training "
                   f"data's 1st-99th percentile range (about 2% would be usual); scores may be "
                   f"unreliable. Most drifted: {names}.")
    return out


def run_drift(report: dict) -> dict:
    """The run's drift record (:func:`pipelines.core.drift.drift_record`) from the batch's
    drift report (:class:`pipelines.sensor.rows.DriftCounter`): statistic
    ``share_outside_range``, the share of observed readings outside their sensor's training
    1st-99th percentile range, alerting at ``DRIFT_WARNING`` (the level of the warning too);
    detail: the share imputed and the most drifted sensors."""
    share = report["share_outside"]
    return drift_record(
        "share_outside_range", share, DRIFT_WARNING,
        f"readings outside the training 1st-99th percentile range: {100 * share:.1f}% "
        f"(alert at {100 * DRIFT_WARNING:.0f}%)",
        {"share_imputed": report["share_imputed"], "top_drifted": report["top_drifted"]})
