"""Reading sensor histories: the C-MAPSS text layout, its RUL files, and a generic CSV.

* C-MAPSS: 26 whitespace-separated columns, no header (unit, cycle, 3 settings, 21 sensors).
  The model inputs are the 21 sensors; the settings describe the operating condition (FD001
  has one) and are kept aside.
* ``RUL_FD00x.txt``: one integer per line, the true RUL at each test engine's last cycle, in
  engine order.
* Generic CSV with a header: a machine-id column, a time or cycle column and sensor columns.
  Names are free: they are passed in, or guessed from common names (``unit``, ``machine_id``;
  ``cycle``, ``time``, ``timestamp``), else the first two columns. A time column of numbers
  is the cycle; one of dates is ordered as dates and the cycle is the position in the machine.

Files may be gzipped (recognised by their first bytes). Every problem is located by file,
row (1-based data row) and column; cycles must increase within a machine and no sensor value
may be missing. Row and column counts are checked before any array is built.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.core.bounded import (MAX_EXPANDED, first_line, gunzip, header_columns,
                                    is_gzip)
from pipelines.core.problems import (LimitError, Problem, SchemaError, coerce_numeric,
                                     out_of_range)
from pipelines.timeseries.schema import CMAPSS_COLUMNS, MAX_ROWS, MAX_SENSORS, SENSORS

MACHINE_NAMES = ("machine_id", "machine", "unit", "unit_id", "unit_number", "engine", "id",
                 "asset", "asset_id")
TIME_NAMES = ("cycle", "cycles", "time_cycles", "time", "timestamp", "datetime", "date", "t")
MAX_LISTED = 20
DATA_FILE = "train_FD001.txt.gz"  # the training file of the release


@dataclass
class Series:
    """Sensor histories of one or more machines, rows in file order.

    ``values`` is (rows, sensors) float64; ``cycles`` increases within each machine;
    ``timestamps`` holds the time column's text when it was dates (else None).
    """

    source: str
    machines: np.ndarray  # (rows,) machine ids as text
    cycles: np.ndarray  # (rows,) float64
    values: np.ndarray  # (rows, sensors)
    sensors: list[str]
    layout: str  # "cmapss" or "csv"
    timestamps: np.ndarray | None = None
    settings: np.ndarray | None = None
    machine_column: str = "unit"
    time_column: str = "cycle"
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.machines)

    def machine_ids(self) -> list[str]:
        """Machine ids in order of first appearance."""
        _, first = np.unique(self.machines, return_index=True)
        return [str(self.machines[i]) for i in np.sort(first)]

    def groups(self) -> list[tuple[str, np.ndarray]]:
        """``(machine, row indices)`` per machine, in order of first appearance."""
        ids = self.machine_ids()
        order = {m: k for k, m in enumerate(ids)}
        codes = np.array([order[m] for m in self.machines], dtype=np.int64)
        sort = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[sort], np.arange(len(ids) + 1))
        return [(m, sort[bounds[k]:bounds[k + 1]]) for k, m in enumerate(ids)]


def read_bytes(source: Path | bytes, max_bytes: int = MAX_EXPANDED,
               name: str | None = None) -> bytes:
    """The bytes of a file or buffer, gunzipped when they start with the gzip magic (at most
    ``max_bytes`` of them: :func:`pipelines.core.bounded.gunzip`)."""
    data = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
    if is_gzip(data):
        data = gunzip(data, max_bytes, name)
    return data


def _text(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SchemaError([Problem("not UTF-8 text", file=name)]) from None


def _check_rows(text: str, name: str, max_rows: int) -> None:
    n = text.count("\n") + (not text.endswith("\n"))
    if n > max_rows + 1:
        raise LimitError([Problem(f"about {n} lines; at most {max_rows} rows are accepted "
                                  f"in one file", file=name)])


def looks_like_cmapss(data: bytes) -> bool:
    """True when the first line is numbers only, separated by blanks (no header, no commas)."""
    first = data[:4096].lstrip()[:2000]  # already gunzipped (read_series)
    line = first.split(b"\n", 1)[0].strip()
    return bool(line) and b"," not in line and all(
        re.fullmatch(rb"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", tok) for tok in line.split())


def read_cmapss(source: Path | bytes, name: str | None = None,
                max_rows: int = MAX_ROWS) -> Series:
    """A C-MAPSS text file (train or test layout), plain or gzipped."""
    name = name or (Path(source).name if isinstance(source, (str, Path)) else "upload")
    text = _text(read_bytes(source), name)
    _check_rows(text, name, max_rows)
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise SchemaError([Problem("the file holds no rows", file=name)])
    problems = []
    for r, line in enumerate(lines):
        n = len(line.split())
        if n != len(CMAPSS_COLUMNS):
            problems.append(Problem(f"{n} columns; the C-MAPSS layout has {len(CMAPSS_COLUMNS)} "
                                    f"(unit, cycle, 3 settings, 21 sensors)", file=name,
                                    row=r + 1))
            if len(problems) >= MAX_LISTED:
                break
    if problems:
        raise SchemaError(problems)
    frame = pd.read_csv(io.StringIO("\n".join(lines)), sep=r"\s+", header=None, dtype=str,
                        names=CMAPSS_COLUMNS, keep_default_na=False)
    return cmapss_series(frame, name)


def cmapss_series(frame: pd.DataFrame, name: str) -> Series:
    """C-MAPSS rows read as text (``CMAPSS_COLUMNS``) -> :class:`Series`, or SchemaError:
    what :func:`read_cmapss` does once the file is split into cells (the batch scorer reads
    the cells with Dask and calls this on each machine's rows)."""
    values, problems = coerce_numeric(frame, name)
    if problems:
        raise SchemaError(problems)
    problems = out_of_range(values, CMAPSS_COLUMNS, name)
    units = values[:, 0]
    if not problems and (np.any(units != np.round(units))):
        r = int(np.flatnonzero(units != np.round(units))[0])
        problems.append(Problem(f"unit {units[r]:g} is not a whole number", file=name,
                                row=r + 1, column="unit"))
    if problems:
        raise SchemaError(problems)
    series = Series(name, np.array([str(int(u)) for u in units], dtype=object), values[:, 1],
                    values[:, 5:], list(SENSORS), "cmapss", settings=values[:, 2:5])
    check_series(series)
    return series


def read_rul(source: Path | bytes, name: str | None = None) -> np.ndarray:
    """A ``RUL_FD00x.txt`` file: one non-negative number per line, in engine order."""
    name = name or (Path(source).name if isinstance(source, (str, Path)) else "upload")
    text = _text(read_bytes(source), name)
    out, problems = [], []
    for r, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        token = line.split()[0]
        try:
            value = float(token)
        except ValueError:
            value = float("nan")
        if not np.isfinite(value) or value < 0:
            problems.append(Problem(f"'{token}' is not a non-negative number", file=name,
                                    row=r + 1))
        out.append(value)
    if problems or not out:
        raise SchemaError(problems or [Problem("the file holds no RUL values", file=name)])
    return np.asarray(out, dtype=float)


def _pick(columns: list[str], wanted: str | None, names: tuple[str, ...], fallback: int,
          what: str, file: str) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise SchemaError([Problem(f"no {what} column '{wanted}'; the header has "
                                       f"{', '.join(columns[:12])}", file=file)])
        return wanted
    lower = {c.strip().lower(): c for c in columns}
    for candidate in names:
        if candidate in lower:
            return lower[candidate]
    return columns[fallback]


def machine_column_of(columns: list[str], wanted: str | None, file: str) -> str:
    """The machine-id column of a CSV header: ``wanted``, else a common name, else the first."""
    return _pick(columns, wanted, MACHINE_NAMES, 0, "machine", file)


def read_csv_series(source: Path | bytes, name: str | None = None, *,
                    machine_column: str | None = None, time_column: str | None = None,
                    sensors: list[str] | None = None, max_rows: int = MAX_ROWS) -> Series:
    """A generic CSV: a machine column, a time or cycle column, and sensor columns."""
    name = name or (Path(source).name if isinstance(source, (str, Path)) else "upload")
    text = _text(read_bytes(source, name=name), name)
    _check_rows(text, name, max_rows)
    # the header's size, width and names checked before pandas builds (and de-duplicates)
    # any of them: 80,000 repeated names cost it minutes
    header_columns(first_line(text, name), ",", name, max_columns=MAX_SENSORS + 2)
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SchemaError([Problem(f"not a readable CSV ({str(exc).strip()[:120]})",
                                   file=name)]) from None
    return csv_series(frame, name, machine_column=machine_column, time_column=time_column,
                      sensors=sensors)


def csv_series(frame: pd.DataFrame, name: str, *, machine_column: str | None = None,
               time_column: str | None = None, sensors: list[str] | None = None) -> Series:
    """A CSV's rows read as text (every cell a string, no NA conversion) -> :class:`Series`,
    or SchemaError: what :func:`read_csv_series` does once the file is split into cells (the
    batch scorer reads the cells with Dask and calls this on each machine's rows)."""
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    if len(columns) < 3:
        raise SchemaError([Problem(f"{len(columns)} columns; a time series needs a machine "
                                   f"column, a time column and at least one sensor", file=name)])
    if len(columns) > MAX_SENSORS + 2:
        raise LimitError([Problem(f"{len(columns)} columns; at most {MAX_SENSORS} sensors are "
                                  f"accepted", file=name)])
    if len(set(columns)) != len(columns):
        raise SchemaError([Problem("the header names a column twice", file=name)])
    if frame.empty:
        raise SchemaError([Problem("the file holds a header but no rows", file=name)])
    machine = machine_column_of(columns, machine_column, name)
    time = _pick(columns, time_column, TIME_NAMES, 1 if columns[0] == machine else 0,
                 "time", name)
    if machine == time:
        raise SchemaError([Problem(f"the machine and time columns must differ (both "
                                   f"'{machine}')", file=name)])
    rest = [c for c in columns if c not in (machine, time)]
    if sensors is not None:
        missing = [s for s in sensors if s not in rest]
        if missing:
            raise SchemaError([Problem(f"no sensor column '{s}'", file=name) for s in missing])
        rest = list(sensors)
    values, problems = coerce_numeric(frame[rest], name)
    problems += out_of_range(values, rest, name)
    blank = np.argwhere(np.isnan(values))
    for r, c in blank[:5]:
        problems.append(Problem("missing value (a window cannot hold gaps)", file=name,
                                row=int(r) + 1, column=rest[c]))
    machines = frame[machine].str.strip().to_numpy(dtype=object)
    empty = np.flatnonzero(machines == "")
    for r in empty[:5]:
        problems.append(Problem("empty machine id", file=name, row=int(r) + 1, column=machine))
    raw_time = frame[time].str.strip()
    timestamps = None
    numeric = pd.to_numeric(raw_time, errors="coerce")
    if numeric.notna().all():
        cycles = numeric.to_numpy(dtype=float)
    else:
        parsed = pd.to_datetime(raw_time, errors="coerce", utc=True, format="mixed")
        bad = np.flatnonzero(parsed.isna().to_numpy())
        if len(bad) > 0.5 * len(raw_time) and numeric.notna().any():
            bad = np.flatnonzero(numeric.isna().to_numpy())
            for r in bad[:5]:
                problems.append(Problem(f"'{raw_time.iat[r][:30]}' is not a number", file=name,
                                        row=int(r) + 1, column=time))
            cycles = numeric.to_numpy(dtype=float)
        else:
            for r in bad[:5]:
                problems.append(Problem(f"'{raw_time.iat[r][:30]}' is not a date or a number",
                                        file=name, row=int(r) + 1, column=time))
            cycles = ((parsed.dt.tz_convert(None) - pd.Timestamp("1970-01-01"))
                      .dt.total_seconds().to_numpy() if not len(bad)
                      else np.zeros(len(raw_time)))
            timestamps = raw_time.to_numpy(dtype=object)
    if problems:
        raise SchemaError(problems[:MAX_LISTED])
    series = Series(name, machines, cycles, values, rest, "csv", timestamps=timestamps,
                    machine_column=machine, time_column=time)
    check_series(series)
    if timestamps is not None:  # the cycle of a dated row is its position in its machine
        positions = np.empty(len(series))
        for _, rows in series.groups():
            positions[rows] = np.arange(1, len(rows) + 1)
        series.extra["epoch_seconds"] = series.cycles
        series.cycles = positions
    return series


def check_series(series: Series) -> None:
    """Cycles must increase within each machine (rows in file order)."""
    problems = []
    for machine, rows in series.groups():
        steps = np.diff(series.cycles[rows])
        for k in np.flatnonzero(steps <= 0)[:3]:
            r = int(rows[k + 1])
            shown = series.timestamps[r] if series.timestamps is not None else \
                f"{series.cycles[r]:g}"
            before = series.timestamps[rows[k]] if series.timestamps is not None else \
                f"{series.cycles[rows[k]]:g}"
            problems.append(Problem(f"machine {machine}: {series.time_column} {shown} does not "
                                    f"come after {before} (time must increase within a machine)",
                                    file=series.source, row=r + 1, column=series.time_column))
        if len(problems) >= MAX_LISTED:
            break
    if problems:
        raise SchemaError(problems)


def read_series(source: Path | bytes, name: str | None = None, *,
                max_bytes: int = MAX_EXPANDED, **columns) -> Series:
    """Either layout, told apart by the first line (numbers only: C-MAPSS; else a CSV header);
    a gzipped file may expand to ``max_bytes`` at most."""
    name = name or (Path(source).name if isinstance(source, (str, Path)) else "upload")
    data = read_bytes(source, max_bytes, name)
    if looks_like_cmapss(data) and not any(columns.values()):
        return read_cmapss(data, name)
    return read_csv_series(data, name, **columns)


def find_data(path: Path) -> Path:
    """The training file: ``path`` itself, or train_FD001 in it or in its ``cmapss/``."""
    path = Path(path)
    if path.is_file():
        return path
    for folder in (path, path / "cmapss"):
        for name in (DATA_FILE, DATA_FILE[:-3]):
            if (folder / name).is_file():
                return folder / name
    raise FileNotFoundError(f"no {DATA_FILE} in {path} or {path / 'cmapss'}")


def subset(series: Series, machines: list[str]) -> Series:
    """The rows of ``machines`` only."""
    index = np.flatnonzero(np.isin(series.machines, list(machines)))
    return Series(series.source, series.machines[index], series.cycles[index],
                  series.values[index], list(series.sensors), series.layout)


def rul_per_row(series: Series, last_rul: np.ndarray | None = None) -> np.ndarray:
    """True RUL at each row: cycles to the machine's last row, plus its RUL there (test files).

    ``last_rul`` (one per machine, in order of first appearance) is 0 for run-to-failure data.
    """
    out = np.empty(len(series))
    groups = series.groups()
    if last_rul is not None and len(last_rul) != len(groups):
        raise SchemaError([Problem(f"{len(last_rul)} RUL values for {len(groups)} engines; the "
                                   f"RUL file needs one per engine of the test file")])
    for k, (_, rows) in enumerate(groups):
        cycles = series.cycles[rows]
        out[rows] = cycles[-1] - cycles + (0.0 if last_rul is None else last_rul[k])
    return out


def write_cmapss(path: Path, units, cycles, settings, sensors) -> None:
    """Write rows in the C-MAPSS text layout (for pseudo test sets and tests)."""
    table = np.column_stack([units, cycles, settings, sensors])
    with open(path, "w") as handle:
        for row in table:
            handle.write(f"{int(row[0])} {int(row[1])} " +
                         " ".join(f"{v:.4f}".rstrip("0").rstrip(".") if abs(v) < 1e5
                                  else f"{v:.2f}" for v in row[2:]) + "  \n")
