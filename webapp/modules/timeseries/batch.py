"""Batch scoring of sensor histories on disk (a job: ``webapp/jobs``), as the predict API scores
an upload: the same reader (:func:`read_series`), scoring (:func:`score_file`), results table
and CSV columns, events, in-sample warning and drift, a group of whole machines at a time.

A cycle's score depends on its machine's history (the window ending there, the wear-rate
slopes from its first row), so a machine is never cut: the file is read twice, line by line.
The first pass counts each machine's rows (machines in order of first appearance) and packs
whole machines into chunks of about ``CHUNK_ROWS`` rows. The second pass hands each chunk's
rows (with the header) to the upload reader and scorer, exactly as an upload holding those
machines' whole histories. When each machine's rows follow one another (a C-MAPSS file, a
history sorted by machine) the chunks are read straight from the file and the results come in
file order; otherwise the rows are first sorted into one scratch file per chunk, and the
results come chunk by chunk (a chunk's rows in file order). A folder of files (a
month of daily files) is read as one history, files in path order; every file must have the
first one's layout. A located problem names the file and its row there.

Memory: one chunk's rows, and per machine its row count while the file is read.
"""
from __future__ import annotations

import csv
import gzip
import io
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import numpy as np

from pipelines.core.bounded import GZIP_MAGIC, first_line, header_columns
from pipelines.core.problems import LimitError, Problem, SchemaError
from pipelines.timeseries.batch import EXTENSIONS
from pipelines.timeseries.ingest import looks_like_cmapss, machine_column_of, read_series
from pipelines.timeseries.reference import add_range_counts
from pipelines.timeseries.schema import MAX_ROWS, MAX_SENSORS
from webapp.events import record_events
from webapp.modules.timeseries.service import (event_rows, in_sample_warning, results_frame,
                                               score_file as score_series)
from webapp.params import check_threshold_range
from webapp.registry import BatchChunk, BatchScoring
from webapp.uploads import files_on_disk

CHUNK_ROWS = 20_000  # rows of whole machines scored at a time
MAX_LINE = 1024 * 1024  # a longer line is no history row
MAX_MACHINES = 200_000  # machines one job may hold (their row counts are kept while reading)
SPILL_CHARS = 8 * 1024 * 1024  # rows held before they are written to the chunks' scratch files
HEAD_BYTES = 64 * 1024


def _open_text(path: Path):
    with open(path, "rb") as handle:
        gz = handle.read(2) == GZIP_MAGIC
    return io.TextIOWrapper(gzip.open(path, "rb") if gz else open(path, "rb"),
                            encoding="utf-8-sig", newline="")


def _head(path: Path) -> bytes:
    with open(path, "rb") as handle:
        gz = handle.read(2) == GZIP_MAGIC
    with (gzip.open(path, "rb") if gz else open(path, "rb")) as handle:
        return handle.read(HEAD_BYTES)


class _Lines:
    """A text stream's lines, each at most ``MAX_LINE`` characters; ``taken`` holds the ones
    read since it was last cleared (the lines of one CSV record)."""

    def __init__(self, stream, name: str):
        self.stream, self.name, self.taken = stream, name, []

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = self.stream.readline(MAX_LINE)
        if not line:
            raise StopIteration
        if len(line) >= MAX_LINE and not line.endswith(("\n", "\r")):
            raise LimitError([Problem(f"a line longer than {MAX_LINE // 1024} KB; a history "
                                      f"row is one line of numbers", file=self.name)])
        self.taken.append(line)
        return line


def _records(path: Path, name: str, cmapss: bool) -> Iterator[tuple[int, list | str, str]]:
    """``(row, cells or line, text)`` for each row of a file: its data row (1-based, blank
    lines not counted, as the upload reader counts them), its cells (a CSV: the header first,
    as row 0) or line (C-MAPSS), and its text as it is in the file."""
    try:
        with _open_text(path) as stream:
            lines = _Lines(stream, name)
            if cmapss:
                row = 0
                for line in lines:
                    lines.taken.clear()
                    if line.strip():
                        row += 1
                        yield row, line, line
                return
            row = -1
            for cells in csv.reader(lines):
                text = "".join(lines.taken)
                lines.taken.clear()
                if cells:
                    row += 1
                    yield row, cells, text
    except UnicodeDecodeError:
        raise SchemaError([Problem("not UTF-8 text", file=name)]) from None
    except (csv.Error, EOFError, OSError) as exc:
        raise SchemaError([Problem(f"not a readable history ({str(exc)[:120]})",
                                   file=name)]) from None


def _unit(line: str) -> str:
    """A C-MAPSS row's machine, as the reader names it (``1.0`` is unit 1)."""
    token = line.split(None, 1)[0]
    try:
        return str(int(float(token)))
    except (ValueError, OverflowError):
        return token


def _located(exc: SchemaError, rows: np.ndarray, names: list[str]) -> SchemaError:
    """``exc`` with each row numbered in its own file (a chunk's row ``k`` is ``rows[k-1]``:
    file number << 32 | data row)."""
    out = []
    for p in exc.problems:
        if p.row and p.row <= len(rows):
            code = int(rows[p.row - 1])
            p = replace(p, file=names[code >> 32], row=code & 0xFFFFFFFF)
        out.append(p)
    return type(exc)(out)


def score_file(predictor, path: Path, name: str, options: dict) -> BatchScoring:
    """The history at ``path`` (a file, or a folder of files read as one; called ``name``)
    scored a chunk of whole machines at a time at ``options``' model and threshold."""
    model = predictor.get(options.get("model"))  # an unknown model: a 400
    check_threshold_range(options.get("threshold"), model.score_range, model.name)
    threshold = options.get("threshold")
    level = model.threshold if threshold is None else float(threshold)
    scratch = options.get("work_dir")
    kept: dict = {"events": [], "in_sample": [], "drift": None}

    def is_cmapss(sources) -> bool:
        """C-MAPSS text or a CSV: each file's first line says, as an upload's does."""
        kinds = {looks_like_cmapss(_head(f)) for f, _ in sources}
        if len(kinds) > 1:
            raise SchemaError([Problem("the files are not all of one layout; score C-MAPSS "
                                       "text and CSV files apart", file=name)])
        return kinds.pop()

    def machine(cells, cmapss: bool, column: int) -> str:
        if cmapss:
            return _unit(cells)
        return cells[column].strip() if column < len(cells) else ""

    def counted(sources, cmapss: bool):
        """Pass 1: rows per machine (in order of first appearance), whether each machine's
        rows follow one another, the CSV header and the machine column."""
        counts: dict[str, int] = {}
        grouped, last, header, column = True, None, None, 0
        for file, shown in sources:
            for row, cells, text in _records(file, shown, cmapss):
                if not cmapss and row == 0:
                    if header is None:  # checked as an upload's header is, then read
                        header_columns(first_line(text, shown), ",", shown,
                                       max_columns=MAX_SENSORS + 2)
                        column = cells.index(machine_column_of(cells, None, shown))
                        header = text if text.endswith(("\n", "\r")) else text + "\n"
                    elif text.rstrip("\r\n") != header.rstrip("\r\n"):
                        raise SchemaError([Problem(f"its header differs from "
                                                   f"{sources[0][1]}'s; score files of one "
                                                   f"layout together", file=shown)])
                    continue
                key = machine(cells, cmapss, column)
                if key != last:
                    grouped = grouped and key not in counts
                    last = key
                if key not in counts and len(counts) >= MAX_MACHINES:
                    raise LimitError([Problem(f"more than {MAX_MACHINES:,} machines; score "
                                              f"them in several jobs", file=shown)])
                counts[key] = counts.get(key, 0) + 1
        return counts, grouped, header, column

    def buckets(counts: dict[str, int]) -> int:
        """Pack whole machines, in order, into chunks of about ``CHUNK_ROWS`` rows; each
        machine's count becomes its chunk's number. How many chunks."""
        bucket, size = -1, 0
        for machine, n in counts.items():
            if n > MAX_ROWS:
                raise LimitError([Problem(f"machine {machine[:40]} has {n:,} rows; a "
                                          f"machine's history is scored whole, at most "
                                          f"{MAX_ROWS:,} rows", file=name)])
            if bucket < 0 or size + n > CHUNK_ROWS:
                bucket, size = bucket + 1, 0
            counts[machine] = bucket
            size += n
        return bucket + 1

    def rows_of(sources, cmapss, counts, column) -> Iterator[tuple[int, str, int]]:
        """Pass 2: ``(chunk, text, file number << 32 | row)`` for every data row."""
        for number, (file, shown) in enumerate(sources):
            for row, cells, text in _records(file, shown, cmapss):
                if cmapss or row > 0:
                    if not text.endswith(("\n", "\r")):
                        text += "\n"
                    yield counts[machine(cells, cmapss, column)], text, number << 32 | row

    def scored(texts: list[str], rows, header, names) -> BatchChunk:
        data = ((header or "") + "".join(texts)).encode("utf-8")
        rows = np.asarray(rows, dtype=np.int64)
        try:
            series = read_series(data, name, max_bytes=len(data))
            result = score_series(predictor, series, model.name, level)
        except SchemaError as exc:
            raise _located(exc, rows, names) from None
        in_sample = predictor.in_sample_machines(series) or []
        kept["in_sample"] += in_sample
        kept["events"] += event_rows(series, result)
        counts = predictor.drift_counts(series)
        if counts is not None:
            kept["drift"] = add_range_counts(kept["drift"], counts)
        return BatchChunk(results_frame(series, result), len(series),
                          int(result.flagged.sum()), len(in_sample) or None)

    def spilled(n_chunks: int, rows: Iterator, folder: Path):
        """The rows sorted into one scratch file per chunk (text, and their row numbers)."""
        held: dict[int, tuple[list, list]] = {}
        chars = 0

        def flush():
            for bucket, (texts, numbers) in held.items():
                with open(folder / f"{bucket}.txt", "a", encoding="utf-8", newline="") as out:
                    out.write("".join(texts))
                with open(folder / f"{bucket}.rows", "ab") as out:
                    np.asarray(numbers, dtype=np.int64).tofile(out)
            held.clear()

        for bucket, text, number in rows:
            texts, numbers = held.setdefault(bucket, ([], []))
            texts.append(text)
            numbers.append(number)
            chars += len(text)
            if chars >= SPILL_CHARS:
                flush()
                chars = 0
        flush()
        for bucket in range(n_chunks):
            text = (folder / f"{bucket}.txt").read_text(encoding="utf-8")
            yield [text], np.fromfile(folder / f"{bucket}.rows", dtype=np.int64)
            (folder / f"{bucket}.txt").unlink()
            (folder / f"{bucket}.rows").unlink()

    def chunks():
        sources = files_on_disk(path, name, EXTENSIONS)
        names = [shown for _, shown in sources]
        cmapss = is_cmapss(sources)
        counts, grouped, header, column = counted(sources, cmapss)
        scoring.total = sum(counts.values())
        if not counts:  # the reader's own words for an empty file
            data = (header or "").encode("utf-8")
            read_series(data, name, max_bytes=len(data) + 1)
            raise SchemaError([Problem("the file holds no rows", file=name)])
        n_chunks = buckets(counts)
        rows = rows_of(sources, cmapss, counts, column)
        if grouped:  # each machine's rows follow one another: chunks straight from the file
            texts, numbers, current = [], [], 0
            for bucket, text, number in rows:
                if bucket != current:
                    yield scored(texts, numbers, header, names)
                    texts, numbers, current = [], [], bucket
                texts.append(text)
                numbers.append(number)
            yield scored(texts, numbers, header, names)
            return
        Path(scratch or tempfile.gettempdir()).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="timeseries-", dir=scratch) as folder:
            for texts, numbers in spilled(n_chunks, rows, Path(folder)):
                yield scored(texts, numbers, header, names)

    def finish() -> dict:
        warning = in_sample_warning(predictor, kept["in_sample"])
        return {"drift": None if kept["drift"] is None else predictor.drift(counts=kept["drift"]),
                "warnings": [warning] if warning else []}

    def after_record(run_id: int) -> dict:
        return record_events("timeseries", kept["events"], run_id=run_id)

    scoring = BatchScoring(model=model.name, model_version=model.version, threshold=level,
                           default_threshold=float(model.threshold), unit="cycles",
                           chunks=iter(()), finish=finish, after_record=after_record)
    scoring.chunks = chunks()
    return scoring
