"""The one results-CSV writer: every row, numbers as numbers, spreadsheet-formula-safe text.

A text cell that starts with ``= + - @``, a tab or a carriage return could run as a formula
when the file is opened in a spreadsheet, so it is prefixed with ``'`` (OWASP's advice).
Numbers are left alone, whether stored as numbers or as text such as ``-3.5``. Every
download is written here, on the server; the pages only send edited rows back as data, which
must stay exactly as typed, so no formula rule runs in the browser.

A line break inside a cell starts a line too: a reader that breaks rows at a carriage return
(some spreadsheets' importers, a naive split) starts a row with what follows it. So in a text
cell that is not a number, a trigger after a CR or LF gets the apostrophe as well (an id
``W1\r=cmd`` goes out as ``W1\r'=cmd``), and a cell holding a CR is always quoted: Python's
csv writer (under ``DataFrame.to_csv``) quotes a field only for the delimiter, the quote
character or a character of its line terminator (``\n``), so a lone CR went out bare and
split the row for such readers and for History's re-read of the stored CSV.

It lives in the pipelines (no Flask) so that every CSV FabLens writes, the web app's downloads
(``webapp.downloads``) and the batch scorer's results files (``pipelines.core.batch``), goes
through this one writer.
"""
from __future__ import annotations

import csv
import io
import re

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from pipelines.core.problems import NUMBER_PATTERN, is_number_text

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
LINE_BREAKS = "\r\n"
# a trigger right after a line break inside a cell (a break itself only ends the line)
_INNER_TRIGGERS = "".join(t for t in FORMULA_TRIGGERS if t not in LINE_BREAKS)
_LINE_TRIGGER = re.compile(f"(?<=[{LINE_BREAKS}])(?=[{re.escape(_INNER_TRIGGERS)}])")


def neutralise(text: str) -> str:
    """One text cell made safe to open in a spreadsheet: unless it is a number, an apostrophe
    before a trigger that starts it or starts a line inside it."""
    if not text or is_number_text(text):
        return text
    if text.startswith(FORMULA_TRIGGERS):
        text = "'" + text
    return _LINE_TRIGGER.sub("'", text)


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text columns are neutralised (:func:`neutralise`, cell by
    cell only where a trigger starts the cell or a line in it); numeric columns untouched."""
    return _prepared(frame)[0]


SMALL = 64  # rows up to which text cells are checked one by one (pandas' per-column cost
# of the vectorised pass is several milliseconds a column: most of a one-map answer's time)


def _prepared(frame: pd.DataFrame, formula_guard: bool = True,
              small: int = SMALL) -> tuple[pd.DataFrame, bool]:
    """:func:`safe_frame` (``frame`` itself without ``formula_guard``), and whether a column
    name or a text cell holds a carriage return (found in the same pass over each text column:
    the writer must then quote). Frames of at most ``small`` rows go cell by cell through
    :func:`neutralise`, larger ones through the same rule vectorised: the same result."""
    out = frame.copy(deep=False)
    if formula_guard:
        out.columns = [neutralise(str(c)) for c in out.columns]
    carriage_return = any("\r" in str(c) for c in out.columns)
    for i in range(out.shape[1]):
        series = out.iloc[:, i]
        if is_numeric_dtype(series) or is_bool_dtype(series):
            continue
        if len(series) <= small:
            values, changed = series.to_numpy(dtype=object, copy=True), False
            for k, value in enumerate(values):
                if value is None or value is pd.NA or (isinstance(value, float)
                                                       and value != value):
                    continue
                text = str(value)
                carriage_return = carriage_return or "\r" in text
                if formula_guard and (safe := neutralise(text)) != text:
                    values[k], changed = safe, True
            if changed:
                out.isetitem(i, pd.Series(values, index=series.index, name=series.name))
            continue
        text = series.astype("string")
        cr = text.str.contains("\r", regex=False).fillna(False).to_numpy(bool)
        carriage_return = carriage_return or bool(cr.any())
        if not formula_guard:
            continue
        starts = text.str.startswith(FORMULA_TRIGGERS).fillna(False).to_numpy(bool)
        breaks = np.flatnonzero(cr | text.str.contains("\n", regex=False).fillna(False)
                                .to_numpy(bool))
        inner = np.zeros(len(text), dtype=bool)
        if breaks.size:  # rare: the regular expression only where a line break is
            inner[breaks] = text.iloc[breaks].str.contains(_LINE_TRIGGER).fillna(False) \
                .to_numpy(bool)
        candidates = np.flatnonzero(starts | inner)
        if not candidates.size:
            continue
        numbers = text.iloc[candidates].str.fullmatch(NUMBER_PATTERN).fillna(False).to_numpy(bool)
        risky = candidates[~numbers]
        if not risky.size:
            continue
        fixed = text.iloc[risky]
        fixed = fixed.where(~starts[risky], "'" + fixed).str.replace(_LINE_TRIGGER, "'",
                                                                      regex=True)
        values = text.to_numpy(dtype=object, copy=True)
        values[risky] = fixed.to_numpy(dtype=object)
        mask = np.zeros(len(text), dtype=bool)
        mask[risky] = True
        out.isetitem(i, series.where(~mask, pd.Series(values, index=series.index)))
    return out, carriage_return


FLAGGED = "flagged"  # the shared name of a results CSV's decision, beside each module's own word


def with_flagged(frame: pd.DataFrame, flag: str) -> pd.DataFrame:
    """``frame`` (changed in place) with a ``flagged`` column right after the module's own
    ``flag`` column (``is_fault``, ``is_anomaly``, ``needs_review``), holding the same values:
    one word in every module's results CSV, the old one kept as an alias."""
    frame.insert(frame.columns.get_loc(flag) + 1, FLAGGED, frame[flag])
    return frame


def csv_bytes(frame: pd.DataFrame, float_decimals: int | None = 6, header: bool = True,
              formula_guard: bool = True) -> bytes:
    """Every row of ``frame`` as formula-safe CSV bytes (floats rounded to ``float_decimals``);
    ``header=False`` for a later piece of a file written chunk by chunk. ``formula_guard=False``
    only for text that is no download: the page's editable copy of the user's own file, sent
    back to be scored (an apostrophe there would change the user's ids).

    Cells are quoted as little as needed, except when a text cell or a column name holds a
    carriage return, the one line break the csv writer leaves bare: then every text cell is
    (``csv.QUOTE_NONNUMERIC``; numeric columns stay bare), in this piece only."""
    safe, carriage_return = _prepared(frame, formula_guard)
    if float_decimals is not None:
        floats = [c for c in safe.columns if safe[c].dtype.kind == "f"]
        if floats:
            safe[floats] = safe[floats].round(float_decimals)
    buffer = io.StringIO()
    safe.to_csv(buffer, index=False, header=header,
                quoting=csv.QUOTE_NONNUMERIC if carriage_return else csv.QUOTE_MINIMAL)
    return buffer.getvalue().encode()
