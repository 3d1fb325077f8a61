"""The one results-CSV writer: every row, numbers as numbers, spreadsheet-formula-safe text.

A text cell that starts with ``= + - @``, a tab or a carriage return could run as a formula
when the file is opened in a spreadsheet, so it is prefixed with ``'`` (OWASP's advice).
Numbers are left alone, whether stored as numbers or as text such as ``-3.5``. The pages
receive ``FORMULA_TRIGGERS`` and ``NUMBER_PATTERN`` from the server and apply the same rule.
"""
from __future__ import annotations

import io
import json
import zlib
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
from flask import Request, Response
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from pipelines.core.problems import NUMBER_PATTERN, is_number_text

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """One text cell made safe to open in a spreadsheet."""
    if text and text.startswith(FORMULA_TRIGGERS) and not is_number_text(text):
        return "'" + text
    return text


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text columns are neutralised; numeric columns untouched."""
    out = frame.copy(deep=False)
    for column in out.columns:
        series = out[column]
        if is_numeric_dtype(series) or is_bool_dtype(series):
            continue
        text = series.astype("string")
        starts = np.flatnonzero(text.str.startswith(FORMULA_TRIGGERS).fillna(False).to_numpy(bool))
        if not starts.size:
            continue
        numbers = text.iloc[starts].str.fullmatch(NUMBER_PATTERN).fillna(False).to_numpy(bool)
        risky = np.zeros(len(text), dtype=bool)
        risky[starts[~numbers]] = True
        if risky.any():
            out[column] = series.where(~risky, "'" + text)
    out.columns = [neutralise(str(c)) for c in out.columns]
    return out


FLAGGED = "flagged"  # the shared name of a results CSV's decision, beside each module's own word


def with_flagged(frame: pd.DataFrame, flag: str) -> pd.DataFrame:
    """``frame`` (changed in place) with a ``flagged`` column right after the module's own
    ``flag`` column (``is_fault``, ``is_anomaly``, ``needs_review``), holding the same values:
    one word in every module's results CSV, the old one kept as an alias."""
    frame.insert(frame.columns.get_loc(flag) + 1, FLAGGED, frame[flag])
    return frame


def csv_bytes(frame: pd.DataFrame, float_decimals: int | None = 6, header: bool = True) -> bytes:
    """Every row of ``frame`` as formula-safe CSV bytes (floats rounded to ``float_decimals``);
    ``header=False`` for a later piece of a file written chunk by chunk."""
    safe = safe_frame(frame)
    if float_decimals is not None:
        floats = [c for c in safe.columns if safe[c].dtype.kind == "f"]
        if floats:
            safe[floats] = safe[floats].round(float_decimals)
    buffer = io.StringIO()
    safe.to_csv(buffer, index=False, header=header)
    return buffer.getvalue().encode()


class ChunkedCsv:
    """A results CSV written piece by piece as chunks are scored (header once), and gzipped
    as it goes for the run record, so no pass over the whole file is left for the end."""

    def __init__(self, float_decimals: int | None = None, gzip_level: int = 1):
        self.float_decimals = float_decimals
        self._parts: list[bytes] = []
        self._gzip_parts: list[bytes] = []
        self._compressor = zlib.compressobj(gzip_level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def add(self, frame: pd.DataFrame) -> None:
        """Append ``frame``'s rows (same columns as the first piece)."""
        data = csv_bytes(frame, self.float_decimals, header=not self._parts)
        self._parts.append(data)
        self._gzip_parts.append(self._compressor.compress(data))

    def data(self) -> bytes:
        """The whole CSV."""
        return b"".join(self._parts)

    def gzipped(self) -> bytes:
        """The whole CSV as one gzip stream (call once, after the last piece)."""
        self._gzip_parts.append(self._compressor.flush())
        return b"".join(self._gzip_parts)


def csv_response(frame: pd.DataFrame, filename: str, float_decimals: int | None = 6) -> Response:
    """A download of ``frame`` as ``filename`` (every row, formula-safe)."""
    return csv_download(csv_bytes(frame, float_decimals), filename)


def csv_download(data: bytes, filename: str) -> Response:
    """CSV bytes already written by :func:`csv_bytes`, as a download named ``filename``."""
    return Response(data, mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename={filename}"})


def wants_csv(request: Request) -> bool:
    """A predict request asks for the results CSV (``?format=csv`` or ``Accept: text/csv``)."""
    return request.args.get("format") == "csv" or request.accept_mimetypes.best == "text/csv"


def json_stream(head: dict, key: str, pages: Iterable[list[dict]]) -> Response:
    """A JSON object ``head`` plus ``key``: a long list, written page by page.

    The list is never serialised whole, so a 100,000-row answer costs one page of memory.
    """
    def generate() -> Iterator[str]:
        opening = json.dumps(head, allow_nan=False)[:-1]
        yield opening + (", " if head else "") + json.dumps(key) + ": ["
        first = True
        for page in pages:
            body = json.dumps(page, allow_nan=False)[1:-1]
            if body:
                yield ("" if first else ", ") + body
                first = False
        yield "]}"
    return Response(generate(), mimetype="application/json")
