"""Problems with an input, located by file, row and column, and the numeric-cell rule.

Validation lists every problem at once instead of stopping at the first. ``NUMBER_PATTERN`` is
the one definition of "a number in a text cell": the parsers here use it, the results-CSV
writer uses it to leave numbers alone, and the pages receive it from the server.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from pandas.api.types import is_numeric_dtype

# A decimal number with optional sign, fraction and exponent; surrounding blanks allowed.
# Written so that Python's ``re`` and JavaScript's ``RegExp`` read it the same way.
NUMBER_PATTERN = r"^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$"
_NUMBER = re.compile(NUMBER_PATTERN)


def is_number_text(text: str) -> bool:
    """True when ``text`` is a plain decimal number (see ``NUMBER_PATTERN``)."""
    return bool(_NUMBER.match(text))


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 column``, ``3 columns`` (``words`` for an irregular plural), with a thousands comma."""
    return f"{n:,} {word if n == 1 else words or word + 's'}"


class SchemaError(ValueError):
    """Input does not fit a schema; ``problems`` lists every issue found."""

    def __init__(self, problems: list["Problem"]):
        self.problems = problems
        first = problems[0].text() if problems else "invalid input"
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        super().__init__(first + more)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, located as precisely as we can."""

    message: str
    file: str | None = None
    row: int | None = None  # 1-based data row (the header is not counted)
    column: str | None = None
    path: str | None = None  # where in a JSON body, e.g. ``instances[3][17]``
    index: int | None = None  # 1-based item within a file holding several (a map in an npz)

    def to_dict(self) -> dict:
        """The problem as a JSON-ready dict without empty fields."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def text(self) -> str:
        """One line naming file, item, row and column: ``a.csv, row 3, column Sensor-7: ...``."""
        where = [p for p in (self.file, self.path, self.index and f"item {self.index}",
                             self.row and f"row {self.row}",
                             self.column and f"column {self.column}") if p]
        return (", ".join(where) + ": " if where else "") + self.message


def coerce_numeric(frame: pd.DataFrame, file: str | None = None, max_problems: int = 50,
                   max_per_column: int = 3) -> tuple[np.ndarray, list[Problem]]:
    """Convert a frame to a float matrix, reporting each cell that is present but not a number.

    Empty cells become NaN: missing values are allowed (a model imputes them or refuses them).
    Columns that pandas already parsed as numbers are copied as they are, so the common case
    stays fast; text cells must match ``NUMBER_PATTERN``. At most ``max_per_column`` cells are
    listed per column (then a count), ``max_problems`` in all.
    """
    if all(is_numeric_dtype(t) and t != bool for t in frame.dtypes):
        return frame.to_numpy(dtype=float, na_value=np.nan), []
    values = np.empty(frame.shape, dtype=float)
    problems: list[Problem] = []
    for j in range(frame.shape[1]):
        col = frame.iloc[:, j]
        if is_numeric_dtype(col) and col.dtype != bool:
            values[:, j] = col.to_numpy(dtype=float, na_value=np.nan)
            continue
        text = col.astype("string").str.strip().fillna("")
        ok = text.str.fullmatch(NUMBER_PATTERN) | text.eq("")
        number = pd.to_numeric(text.where(ok & text.ne(""), None), errors="coerce")
        values[:, j] = number.to_numpy(dtype=float, na_value=np.nan)
        bad = np.flatnonzero(~ok.to_numpy(dtype=bool))
        name = str(frame.columns[j])
        for r in bad[:max_per_column]:
            problems.append(Problem(f"'{text.iat[r]}' is not a number", file=file,
                                    row=int(r) + 1, column=name))
        if len(bad) > max_per_column:
            problems.append(Problem(f"{len(bad) - max_per_column} more non-numeric cells in "
                                    f"this column", file=file, column=name))
    if len(problems) > max_problems:
        hidden = len(problems) - max_problems
        problems = problems[:max_problems] + [Problem(f"{hidden} more problems not listed",
                                                      file=file)]
    return values, problems


# The largest magnitude a model input may hold: models compute in float32.
FLOAT32_MAX = float(np.finfo(np.float32).max)


class LimitError(SchemaError):
    """Input is larger than a stated limit (rows, cells, size): refused before it is built."""


def out_of_range(values: np.ndarray, columns: list[str], file: str | None = None,
                 first_row: int = 1, limit: float = FLOAT32_MAX,
                 max_problems: int = 20) -> list[Problem]:
    """A problem for each cell that is infinite or beyond ``±limit`` (NaN is missing, not bad).

    ``first_row`` is the 1-based row number of ``values[0]`` in the file, so chunks of a
    large file report rows as they are in the file.
    """
    with np.errstate(invalid="ignore"):
        bad = np.abs(values) > limit  # NaN compares False; inf is caught
    if not bad.any():
        return []
    rows, cols = np.nonzero(bad)
    problems = [Problem(f"{values[r, c]:g} is not a finite number within ±{limit:.3g}",
                        file=file, row=first_row + int(r), column=columns[c])
                for r, c in zip(rows[:max_problems], cols[:max_problems])]
    if len(rows) > max_problems:
        problems.append(Problem(f"{len(rows) - max_problems} more out-of-range cells", file=file))
    return problems
