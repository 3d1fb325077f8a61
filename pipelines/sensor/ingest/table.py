"""Read sensor files (CSV in any common dialect, or .xlsx) and map them to one 590-sensor schema.

Columns are recognised by their header:
- sensors: ``Sensor-1`` .. ``Sensor-590`` (wafer batch files) or ``0`` .. ``589`` (SECOM);
  a file whose headers name no sensor but holds exactly 590 other columns maps by position;
- the wafer id: the first column when its header is blank, ``Unnamed: 0``, ``Wafer``,
  ``Time`` or ``id``; without one, rows are numbered 1, 2, ... (and the result says so);
- labels: ``Good/Bad`` (+1 = bad) or ``Pass/Fail`` (1 = fail);
- anything else (lot, tool, recipe, timestamp, ...) is carried through as text.

Ids and extra columns are read as text, exactly as written (``007`` stays ``007``). CSV files
may use ``,``, ``;`` or tab between cells and ``.`` or ``,`` as the decimal mark; what was
detected is reported. Large files are read in chunks of rows (:func:`open_sensor_file`), so a
caller can score a file without ever holding all of it.

The same code parses training files, prediction batches and user uploads, so what the web app
accepts is exactly what the pipelines accept.
"""
from __future__ import annotations

import csv
import io
import logging
import re
import zipfile
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import IO, Iterator

import numpy as np
import pandas as pd

from pipelines.core import budget
from pipelines.core.bounded import MAX_COLUMNS, check_unique, first_line, header_columns
from pipelines.core.problems import (LimitError, Problem, SchemaError, coerce_numeric,
                                     out_of_range, plural)
from pipelines.sensor.schema import (ID_HEADERS, LABEL_COLUMNS, N_SENSORS, SENSOR_COLUMNS,
                                     sensor_label)

logger = logging.getLogger(__name__)

CHUNK_ROWS = 2000  # rows parsed (and scored) at a time: ~10 MB of float64 per chunk
SNIFF_BYTES = 64 * 1024
DELIMITERS = (",", ";", "\t")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
XLSX_SIGNATURE = b"PK\x03\x04"
MAX_XLSX_EXPANDED = 512 * 1024 * 1024  # uncompressed bytes an .xlsx may expand to
_SENSOR_NAME = re.compile(r"^\s*(?:Sensor-(\d+)|(\d+))\s*$")
_DECIMAL_COMMA = re.compile(r"^\s*[+-]?\d+,\d+(?:[eE][+-]?\d+)?\s*$")


@dataclass
class SensorTable:
    """Sensor readings mapped to the 590-sensor schema.

    ``values`` is (rows, 590) float with NaN for missing cells; ``labels`` is 1 for a failing
    wafer and 0 for a passing one, or None when the file has no label column; ``extra`` holds
    the file's other columns as text; ``first_row`` is the file row number of ``values[0]``.
    """

    ids: list[str]
    values: np.ndarray
    id_column: str
    layout: str
    labels: np.ndarray | None = None
    times: pd.Series | None = None
    warnings: list[Problem] = field(default_factory=list)
    extra: pd.DataFrame | None = None
    first_row: int = 1
    # the file's names of the sensors in schema order; None when they are Sensor-1..590
    file_sensor_columns: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def sensor_labels(self) -> list[str]:
        """Each sensor as the file names it, the model's name beside it where they differ
        (``4 (Sensor-5)`` for a SECOM file, ``Sensor-5`` for a batch file)."""
        return list(_labels(self.file_sensor_columns) or SENSOR_COLUMNS)

    @property
    def n_missing(self) -> int:
        """Number of empty cells (they are imputed before scoring)."""
        return int(np.isnan(self.values).sum())


@dataclass(frozen=True)
class SensorLayout:
    """Which column of a file is what; found from the header alone."""

    columns: tuple[str, ...]
    sensor_columns: tuple[str, ...]  # in schema order: the column read as Sensor-1, -2, ...
    id_column: str | None  # None: the file has none, rows are numbered
    label_column: str | None
    extra_columns: tuple[str, ...]
    layout: str  # "secom" or "batch"

    @property
    def id_name(self) -> str:
        """The name results use for the id column."""
        if self.id_column is None:
            return "row"
        blank = not self.id_column.strip() or self.id_column.lower().startswith("unnamed")
        return "Wafer" if blank else self.id_column

    @cached_property
    def file_sensor_columns(self) -> tuple[str, ...] | None:
        """The sensor columns as the file names them, or None when that is Sensor-1..590."""
        names = tuple(c.strip() for c in self.sensor_columns)
        return None if list(names) == SENSOR_COLUMNS else self.sensor_columns

    @cached_property
    def sensor_labels(self) -> tuple[str, ...] | None:
        """Each sensor as the file names it, with the model's name where they differ; None
        when the file uses the model's names."""
        return _labels(self.file_sensor_columns)

    def text_columns(self) -> list[str]:
        """Columns read as text, never as numbers: the id and the extras."""
        return ([self.id_column] if self.id_column is not None else []) + list(self.extra_columns)


def _labels(file_sensor_columns: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if file_sensor_columns is None:
        return None
    return tuple(sensor_label(c, i) for i, c in enumerate(file_sensor_columns))


@dataclass
class SensorSource:
    """An opened sensor file: its layout, what was detected, and its rows in chunks."""

    file: str
    layout: SensorLayout
    detected: "Detected"
    chunks: Iterator[SensorTable]


# -- the header ---------------------------------------------------------------------------------
def _is_id_header(name: str) -> bool:
    low = name.strip().lower()
    return low in ID_HEADERS or low.startswith("unnamed")


def _sensor_number(name: str) -> int | None:
    """0-based index a sensor-like header names (``Sensor-7`` -> 6, SECOM ``6`` -> 6), or None."""
    match = _SENSOR_NAME.match(name)
    if not match:
        return None
    return int(match.group(1)) - 1 if match.group(1) else int(match.group(2))


def _sensor_index(name: str) -> int | None:
    """The schema index of a sensor header, or None when it names no sensor of the schema."""
    index = _sensor_number(name)
    return index if index is not None and 0 <= index < N_SENSORS else None


def _ranges(indices: list[int]) -> str:
    """``Sensor-3, Sensor-401..Sensor-590`` for a sorted list of 0-based indices (shortened)."""
    parts, start = [], None
    for k, i in enumerate(indices):
        if start is None:
            start = i
        if k + 1 == len(indices) or indices[k + 1] != i + 1:
            parts.append(SENSOR_COLUMNS[start] if start == i
                         else f"{SENSOR_COLUMNS[start]}..{SENSOR_COLUMNS[i]}")
            start = None
    return ", ".join(parts[:4]) + (f" and {len(parts) - 4} more ranges" if len(parts) > 4 else "")


def layout_from_header(columns: list[str], file: str, require_labels: bool = False) -> SensorLayout:
    """Find the id, sensor, label and extra columns of a header; :class:`SchemaError` if it cannot."""
    columns = [str(c) for c in columns]
    unnamed = [k + 1 for k, c in enumerate(columns) if k and not c.strip()]
    if unnamed:
        listed = ", ".join(map(str, unnamed[:5])) + (", ..." if len(unnamed) > 5 else "")
        raise SchemaError([Problem(
            f"the header leaves {plural(len(unnamed), 'column')} without a name (number "
            f"{listed}); only the first column, the wafer id, may be blank", file=file)])
    check_unique(columns, file)
    label = next((c for c in columns if c in LABEL_COLUMNS), None)
    if require_labels and label is None:
        raise SchemaError([Problem("training data needs a label column "
                                   "('Good/Bad' or 'Pass/Fail')", file=file)])
    id_column = columns[0] if columns and _is_id_header(columns[0]) else None
    rest = [c for c in columns if c not in (id_column, label)]
    beyond = [c for c in rest if _sensor_number(c) is not None and _sensor_index(c) is None]
    if beyond:
        raise SchemaError([Problem(
            f"of the file's {len(columns)} columns, {len(beyond)} name sensors the model does "
            f"not have ({beyond[0]}"
            f"{' .. ' + beyond[-1] if len(beyond) > 1 else ''}); sensors run from Sensor-1 to "
            f"Sensor-{N_SENSORS} (or 0 to {N_SENSORS - 1}): remove the others", file=file)])
    named = {c: _sensor_index(c) for c in rest}
    sensors = [c for c in rest if named[c] is not None]
    if not sensors and len(rest) == N_SENSORS:  # no sensor names: map by position
        return SensorLayout(tuple(columns), tuple(rest), id_column, label, (), "batch")
    by_index = {named[c]: c for c in sensors}
    if len(by_index) != N_SENSORS:
        missing = [i for i in range(N_SENSORS) if i not in by_index]
        raise SchemaError([Problem(
            f"expected {N_SENSORS} sensor columns (Sensor-1..Sensor-{N_SENSORS}, or 0..589), "
            f"found {len(by_index)}; missing {_ranges(missing)}. "
            f"Download the template to see the expected header", file=file)])
    extra = tuple(c for c in rest if named[c] is None)
    layout = "batch" if sensors[0].strip().startswith("Sensor-") else "secom"
    return SensorLayout(tuple(columns), tuple(by_index[i] for i in range(N_SENSORS)), id_column,
                        label, extra, layout)


# -- rows ---------------------------------------------------------------------------------------
def _label_to_binary(series: pd.Series, column: str, file: str,
                     first_row: int) -> tuple[np.ndarray, list[Problem]]:
    values, problems = coerce_numeric(series.to_frame(column), file)
    problems = _shift_rows(problems, first_row)
    labels = values[:, 0]
    odd = ~np.isin(labels, (-1.0, 1.0))
    for r in np.flatnonzero(odd)[:20]:
        problems.append(Problem(f"label must be -1 (good) or 1 (bad), got '{series.iat[r]}'",
                                file=file, row=first_row + int(r), column=column))
    return (labels == 1).astype(np.int8), problems


def _shift_rows(problems: list[Problem], first_row: int) -> list[Problem]:
    if first_row == 1:
        return problems
    return [replace(p, row=p.row + first_row - 1) if p.row is not None else p for p in problems]


def _text(series: pd.Series) -> pd.Series:
    """Cells as text exactly as written; numbers from a spreadsheet without a trailing ``.0``."""
    def one(v):
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)
    if series.dtype == object:
        return series.map(lambda v: v if v is None or isinstance(v, str) or v != v else one(v))
    return series.astype("string").astype(object).where(series.notna(), None)


def parse_chunk(frame: pd.DataFrame, layout: SensorLayout, file: str,
                first_row: int = 1) -> SensorTable:
    """Rows of a file (as read, text columns as text) -> :class:`SensorTable`, or SchemaError."""
    values, problems = coerce_numeric(frame[list(layout.sensor_columns)], file)
    problems = _shift_rows(problems, first_row)
    problems += out_of_range(values, list(layout.sensor_columns), file, first_row)
    labels = None
    if layout.label_column is not None:
        labels, label_problems = _label_to_binary(frame[layout.label_column], layout.label_column,
                                                  file, first_row)
        problems += label_problems
    if layout.id_column is not None:
        raw = _text(frame[layout.id_column])
        empty = raw.isna() | raw.fillna("").str.strip().eq("")
        for r in np.flatnonzero(empty.to_numpy(dtype=bool))[:20]:
            problems.append(Problem("the wafer id is empty", file=file, row=first_row + int(r),
                                    column=layout.id_column or "id"))
        ids = raw.fillna("").tolist()
    else:
        ids = [str(first_row + i) for i in range(len(frame))]
    if problems:
        raise SchemaError(problems)
    extra = None
    if layout.extra_columns:
        extra = pd.DataFrame({c: _text(frame[c]) for c in layout.extra_columns},
                             index=range(len(frame)))
    return SensorTable(ids=ids, values=values, id_column=layout.id_name, layout=layout.layout,
                       labels=labels, extra=extra, first_row=first_row,
                       file_sensor_columns=layout.file_sensor_columns)


def parse_sensor_frame(frame: pd.DataFrame, file: str = "upload.csv",
                       require_labels: bool = False) -> SensorTable:
    """Map a whole frame (as read from a file) to a :class:`SensorTable`, or raise SchemaError."""
    if frame.shape[0] == 0:
        raise SchemaError([Problem("the file has a header but no data rows", file=file)])
    layout = layout_from_header(list(frame.columns), file, require_labels)
    return parse_chunk(frame, layout, file)


def concat_tables(tables: list[SensorTable]) -> SensorTable:
    """Chunks of one file, joined back into one table."""
    first = tables[0]
    if len(tables) == 1:
        return first
    labels = None if first.labels is None else np.concatenate([t.labels for t in tables])
    extra = None if first.extra is None else pd.concat([t.extra for t in tables],
                                                       ignore_index=True)
    return SensorTable(ids=[i for t in tables for i in t.ids],
                       values=np.vstack([t.values for t in tables]), id_column=first.id_column,
                       layout=first.layout, labels=labels, extra=extra,
                       file_sensor_columns=first.file_sensor_columns)


# -- files --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CsvDialect:
    """How a CSV file is written: the cell delimiter, the decimal mark, the text encoding."""

    delimiter: str = ","
    decimal: str = "."
    encoding: str = "utf-8"


@dataclass(frozen=True)
class Detected:
    """How a file was read: the one description the parser gives, the check endpoint and the
    predict API send (:meth:`to_dict`), and the page shows (``description``).

    ``format`` is ``csv``, ``xlsx`` or ``json``; ``delimiter`` and ``decimal`` the characters
    found in a CSV; ``id_column`` the header of the id column as written (``""`` for a blank
    first cell, None when there is none); ``layout`` ``batch``, ``secom`` or ``json``.
    """

    format: str
    layout: str
    delimiter: str | None = None
    decimal: str | None = None
    id_column: str | None = None
    numbered_ids: bool = False
    extra_columns: tuple[str, ...] = ()
    # each sensor as the file names it, with the model's name where they differ (SECOM's
    # ``4 (Sensor-5)``); None when the file uses the model's names
    sensor_labels: tuple[str, ...] | None = None

    @property
    def delimiter_name(self) -> str | None:
        return DELIMITER_NAMES.get(self.delimiter) if self.delimiter else None

    @property
    def plain(self) -> bool:
        """A comma-separated CSV with decimal points: what the page's own CSV reader reads."""
        return self.format == "csv" and self.delimiter == "," and self.decimal == "."

    @property
    def needs_normalising(self) -> bool:
        """The page needs the server's comma/point copy to show this file (it is a file, and
        not plain CSV)."""
        return self.format in ("csv", "xlsx") and not self.plain

    def how(self) -> str:
        """``semicolon-separated with decimal commas``: how a CSV was read, "" for plain CSV."""
        if self.format != "csv" or self.plain:
            return ""
        comma = " with decimal commas" if self.decimal == "," else ""
        return f"{self.delimiter_name}-separated{comma}"

    def description(self) -> str:
        """One sentence on how the file was read, for the page."""
        if self.format == "json":
            text = "Read as JSON instances."
        elif self.format == "xlsx":
            text = "Read as an Excel workbook (.xlsx), its first sheet."
        else:
            decimal = "decimal commas" if self.decimal == "," else "decimal points"
            text = f"Read as a CSV file, {self.delimiter_name}-separated with {decimal}."
        if self.numbered_ids:
            text += " No wafer id column: wafers are numbered 1, 2, 3... in file order."
        elif self.id_column is not None:
            where = ("the first column (its header is blank)" if not self.id_column.strip()
                     else f"column '{self.id_column}'")
            text += f" Wafer ids from {where}, kept as written."
        if self.extra_columns:
            listed = ", ".join(self.extra_columns[:10])
            more = f" and {len(self.extra_columns) - 10} more" if len(self.extra_columns) > 10 \
                else ""
            text += f" Carried through to the results as text: {listed}{more}."
        return text

    def to_dict(self) -> dict:
        """The JSON form: the fields, the delimiter's name, the page's flags and the sentence."""
        return {"format": self.format, "layout": self.layout, "delimiter": self.delimiter,
                "delimiter_name": self.delimiter_name, "decimal": self.decimal,
                "id_column": self.id_column, "numbered_ids": self.numbered_ids,
                "extra_columns": list(self.extra_columns),
                "sensor_labels": None if self.sensor_labels is None else list(self.sensor_labels),
                "needs_normalising": self.needs_normalising, "description": self.description()}


def _split_line(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter), [])


def sniff_dialect(head: bytes) -> CsvDialect:
    """The delimiter (``,`` ``;`` or tab, the most frequent in the header), the decimal mark
    (``,`` when data cells look like ``1,5`` and the delimiter is not a comma) and encoding."""
    encoding = "utf-8-sig" if head.startswith(b"\xef\xbb\xbf") else "utf-8"
    text = head.decode(encoding, errors="replace")
    lines = [line for line in text.splitlines()[:20] if line.strip()]
    if not lines:
        return CsvDialect(encoding=encoding)
    header = lines[0]
    delimiter = max(DELIMITERS, key=lambda d: (header.count(d), d == ","))
    decimal = "."
    if delimiter != ",":
        cells = [c for line in lines[1:-1] for c in _split_line(line, delimiter)]
        if any(_DECIMAL_COMMA.match(c) for c in cells):
            decimal = ","
    return CsvDialect(delimiter, decimal, encoding)


def looks_like_xlsx(head: bytes, file: str) -> bool:
    """An Excel workbook: a zip container named ``.xlsx``."""
    return head.startswith(XLSX_SIGNATURE) and file.lower().endswith(".xlsx")


def text_columns(columns: list[str]) -> list[str]:
    """The columns of a CSV header read as text, never as numbers: all but the sensors and the
    label (the id and the extras; sensors mapped by position too, parsed by ``parse_chunk``)."""
    return [c for c in columns if _sensor_index(c) is None and c not in LABEL_COLUMNS]


def _csv_chunks(stream: IO[bytes], dialect: CsvDialect, file: str,
                chunk_rows: int) -> tuple[list[str], Iterator[pd.DataFrame]]:
    """The header and an iterator of row chunks; id and extra columns read as text.

    The reader is made when the first chunk is asked for, so the header is checked
    (:func:`layout_from_header`) before pandas sees it.
    """
    start = stream.tell()
    head = stream.read(SNIFF_BYTES + 1).decode(dialect.encoding, errors="replace")
    stream.seek(start)
    # the header's length and width are checked before it is split, and before pandas sees
    # it: a line of 80,000 names would cost minutes
    header_line = first_line(head, file, SNIFF_BYTES) if head.strip() else ""
    columns = header_columns(header_line, dialect.delimiter, file, MAX_COLUMNS, unique=False)
    if not columns:
        raise SchemaError([Problem("the file is empty", file=file)])
    _check_first_row(head[len(header_line):], columns, dialect.delimiter, file)
    text = text_columns(columns)

    def frames() -> Iterator[pd.DataFrame]:
        # converters, not a dtype mapping: given any dtype mapping pandas wraps every column
        # of every chunk in a Series (a quarter of the read time for 590 columns); a str
        # converter reads the same text, NA cells included (a column whose cells are all
        # empty comes out as float NaN, which parse_chunk's _text makes None like the rest).
        # names=: the columns exactly as the header writes them (pandas would rename a blank
        # first cell 'Unnamed: 0'), so the layout's names are the frame's names
        reader = pd.read_csv(stream, sep=dialect.delimiter, decimal=dialect.decimal,
                             encoding=dialect.encoding, header=0, names=columns,
                             converters={c: str for c in text},
                             chunksize=chunk_rows, low_memory=False, skip_blank_lines=True)
        yield from _guard_csv(reader, file)
    return columns, frames()


def _check_first_row(rest: str, columns: list[str], delimiter: str, file: str) -> None:
    """The first data row may not hold more cells than the header: pandas would take the
    extra ones as a row index and shift every column silently (later rows that do are a
    parser error, which says which line)."""
    lines = rest.lstrip("\r\n").splitlines()
    if len(lines) < 2:  # the row may continue past what was read: leave it to the parser
        return
    cells = _split_line(lines[0], delimiter)
    if len(cells) > len(columns):
        raise SchemaError([Problem(f"{len(cells)} cells, more than the header's "
                                   f"{len(columns)} columns", file=file, row=1)])


def _guard_csv(reader, file: str) -> Iterator[pd.DataFrame]:
    try:
        for frame in reader:
            yield frame
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        detail = str(exc).replace("\n", " ")[:160]
        raise SchemaError([Problem(f"not a readable CSV file ({detail})", file=file)]) from None


def _xlsx_chunks(stream: IO[bytes], file: str, chunk_rows: int,
                 max_rows: int | None = None) -> tuple[list[str], Iterator[pd.DataFrame]]:
    """The first sheet's header and row chunks, streamed (the workbook is never loaded whole).

    Its XML is parsed by openpyxl through defusedxml (entity declarations are refused, so a
    few KB cannot expand to gigabytes), its members' declared sizes are checked first, and
    every row counts toward ``max_rows``, empty ones too: a sheet of a million empty rows is
    refused when it passes the limit rather than read to its end.
    """
    from openpyxl import load_workbook  # only for .xlsx uploads

    def unreadable(exc: Exception) -> SchemaError:
        detail = str(exc).split("\n")[0][:80]
        return SchemaError([Problem(f"not a readable .xlsx workbook ({type(exc).__name__}"
                                    f"{': ' + detail if detail else ''})", file=file)])

    try:
        with zipfile.ZipFile(stream) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
        if expanded > MAX_XLSX_EXPANDED:
            raise LimitError([Problem(f"the workbook expands to {expanded / 2**20:.0f} MB, more "
                                      f"than {MAX_XLSX_EXPANDED / 2**20:.0f} MB; save it as CSV",
                                      file=file)])
        stream.seek(0)
        book = load_workbook(stream, read_only=True, data_only=True)
        rows = book.worksheets[0].iter_rows(values_only=True)
        header = next(rows, None)
    except SchemaError:
        raise
    except Exception as exc:  # whatever a hostile workbook makes openpyxl or its XML raise
        raise unreadable(exc) from None
    if header is None:
        raise SchemaError([Problem("the workbook's first sheet is empty", file=file)])
    columns = ["" if c is None else str(c) for c in header]
    while columns and columns[-1] == "":
        columns.pop()
    if len(columns) > MAX_COLUMNS:
        raise LimitError([Problem(f"the header has {len(columns):,} columns; at most "
                                  f"{MAX_COLUMNS:,} are accepted", file=file)])

    def chunks() -> Iterator[pd.DataFrame]:
        batch: list[tuple] = []
        seen = 0
        try:
            for row in rows:
                seen += 1
                if seen % 10_000 == 0:
                    budget.check()
                if max_rows is not None and seen > max_rows:
                    raise LimitError([Problem(f"the sheet has more than the {max_rows} row "
                                              f"limit (empty rows count too); split the file",
                                              file=file)])
                if all(v is None or v == "" for v in row):
                    continue
                batch.append(row[:len(columns)] + (None,) * (len(columns) - len(row)))
                if len(batch) == chunk_rows:
                    yield pd.DataFrame(batch, columns=columns, dtype=object)
                    batch = []
        except SchemaError:
            raise
        except Exception as exc:
            raise unreadable(exc) from None
        finally:
            book.close()
        if batch:
            yield pd.DataFrame(batch, columns=columns, dtype=object)
    return columns, chunks()


def open_sensor_file(stream: IO[bytes], file: str, chunk_rows: int = CHUNK_ROWS,
                     max_rows: int | None = None, require_labels: bool = False) -> SensorSource:
    """Open a sensor CSV or .xlsx (a seekable binary stream) for reading in chunks.

    The header is checked now; rows are parsed as the chunks are iterated, each chunk raising
    :class:`SchemaError` for its bad cells (rows numbered as in the file), and
    :class:`LimitError` once more than ``max_rows`` rows have been read.
    """
    head = stream.read(SNIFF_BYTES)
    stream.seek(0)
    if not head.strip():
        raise SchemaError([Problem("the file is empty", file=file)])
    if looks_like_xlsx(head, file):
        columns, frames = _xlsx_chunks(stream, file, chunk_rows, max_rows)
        dialect = None
    else:
        dialect = sniff_dialect(head)
        columns, frames = _csv_chunks(stream, dialect, file, chunk_rows)
    try:
        layout = layout_from_header(columns, file, require_labels)
    except SchemaError as exc:
        if dialect is not None and len(columns) < 3:
            exc.problems.insert(0, Problem(
                f"only {plural(len(columns), 'column')} found with the detected "
                f"{DELIMITER_NAMES[dialect.delimiter]} "
                f"delimiter; save the file with comma, semicolon or tab between cells",
                file=file))
            raise SchemaError(exc.problems) from None
        raise
    detected = Detected(format="xlsx" if dialect is None else "csv", layout=layout.layout,
                        delimiter=dialect and dialect.delimiter,
                        decimal=dialect and dialect.decimal, id_column=layout.id_column,
                        numbered_ids=layout.id_column is None,
                        extra_columns=layout.extra_columns, sensor_labels=layout.sensor_labels)
    return SensorSource(file, layout, detected, _tables(frames, layout, file, max_rows))


def _tables(frames: Iterator[pd.DataFrame], layout: SensorLayout, file: str,
            max_rows: int | None) -> Iterator[SensorTable]:
    first_row, any_rows = 1, False
    for frame in frames:
        budget.check()  # between chunks: a request past its time budget stops here
        if max_rows is not None and first_row - 1 + len(frame) > max_rows:
            raise LimitError([Problem(f"more than the {max_rows} row limit; split the file",
                                      file=file)])
        if len(frame):
            any_rows = True
            yield parse_chunk(frame.reset_index(drop=True), layout, file, first_row)
            first_row += len(frame)
    if not any_rows:
        raise SchemaError([Problem("the file has a header but no data rows", file=file)])


def read_sensor_csv(source: str | Path | IO[bytes] | bytes, file: str | None = None,
                    require_labels: bool = False, max_rows: int | None = None) -> SensorTable:
    """Read a whole sensor file (path, bytes or binary stream; ``.gz`` paths too) into one table."""
    name = file or (Path(source).name if isinstance(source, (str, Path)) else "upload.csv")
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.name.endswith(".gz"):
            import gzip
            source = io.BytesIO(gzip.decompress(path.read_bytes()))
        else:
            source = io.BytesIO(path.read_bytes())
    elif isinstance(source, bytes):
        source = io.BytesIO(source)
    opened = open_sensor_file(source, name, max_rows=max_rows, require_labels=require_labels)
    return concat_tables(list(opened.chunks))


def chunk_frame(table: SensorTable, label_column: str | None = None) -> pd.DataFrame:
    """A chunk back as a plain table: id, the file's extra columns, the sensors named as the
    file names them, label."""
    frame = pd.DataFrame(table.values, columns=list(table.file_sensor_columns or SENSOR_COLUMNS))
    at = 0
    if table.id_column != "row":
        frame.insert(0, table.id_column, table.ids)
        at = 1
    if table.extra is not None:
        for k, column in enumerate(table.extra.columns):
            frame.insert(at + k, column, table.extra[column].to_numpy())
    if table.labels is not None:
        frame[label_column or "Good/Bad"] = np.where(table.labels == 1, 1, -1)
    return frame


def table_to_frame(table: SensorTable) -> pd.DataFrame:
    """The table in batch layout: id column, Sensor-1..590 (and Good/Bad when labelled)."""
    frame = pd.DataFrame(table.values, columns=SENSOR_COLUMNS)
    frame.insert(0, table.id_column, table.ids)
    if table.labels is not None:
        frame["Good/Bad"] = np.where(table.labels == 1, 1, -1)
    return frame
