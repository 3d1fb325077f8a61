"""A generated bad-input corpus for the sensor check endpoint and predict API (issue 6).

Every case is built here from the 590-sensor schema and synthetic values (no data rows are
copied). A case is one request: a file upload (``file`` + ``filename``), a JSON body
(``body``) or raw request bytes (``raw``), plus what the server must answer:

- ``status``: the set of acceptable HTTP statuses (never 500).
- ``needles``: each must appear (case-insensitive) in the headline message or a problem; a
  tuple inside ``needles`` lists alternatives, one of which must appear.
- ``where``: one problem must carry these items (``row``/``column`` for files, ``path`` for
  JSON bodies), e.g. ``{"row": 2, "column": "Sensor-3"}`` or ``{"path": "instances[0][4]"}``.
- for accepted files and bodies (200): ``warning`` (a needle in ``warnings``), ``ids`` (the
  predictions' ids, exactly), ``extra`` (each prediction's ``extra``), ``detected`` (items of
  ``detected``) and ``frame`` (the numbers the server must have read).

``file_cases()`` go through ``POST /sensor/check`` (when ``check``) and the predict API as a
multipart upload; ``json_cases()`` go through the predict API only.
"""
from __future__ import annotations

import gzip
import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines.sensor.schema import N_SENSORS, SENSOR_COLUMNS

Needle = str | tuple[str, ...]
DEEP = 100_000  # nesting levels of the deep-JSON cases
SMALL_MAX_ROWS = 10  # MAX_ROWS of the too-many-rows cases (kept small to stay fast)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))


@dataclass
class Case:
    """One request of the corpus and what the answer must hold."""

    name: str
    status: frozenset[int]
    needles: tuple[Needle, ...] = ()
    where: dict | None = None
    file: bytes | None = None
    filename: str = "batch.csv"
    body: Any = None
    raw: bytes | None = None
    content_type: str = "application/json"
    form: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    check: bool = True
    warning: str | None = None
    ids: tuple[str, ...] | None = None
    extra: dict | None = None
    detected: dict | None = None
    frame: pd.DataFrame | None = None

    @property
    def kind(self) -> str:
        """``file`` (multipart upload), ``raw`` (request bytes as given) or ``json``."""
        return "file" if self.file is not None else "raw" if self.raw is not None else "json"

    def request_bytes(self) -> bytes:
        """The body of a JSON or raw case (NaN and Infinity written as JSON literals)."""
        return self.raw if self.raw is not None else json.dumps(self.body).encode()


# ---------------------------------------------------------------- building blocks


def sensor_frame(n_rows: int = 5, seed: int = 0) -> pd.DataFrame:
    """A batch-layout frame of synthetic readings: Wafer, Sensor-1..590."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n_rows, N_SENSORS)).round(4), columns=SENSOR_COLUMNS)
    frame.insert(0, "Wafer", [f"W-{i + 1}" for i in range(n_rows)])
    return frame


def with_cell(frame: pd.DataFrame, row: int, column: str, text: Any) -> pd.DataFrame:
    """A copy of ``frame`` with the cell at 1-based data ``row`` replaced by ``text``."""
    out = frame.astype(object)
    out.loc[row - 1, column] = text
    return out


def to_csv(frame: pd.DataFrame, sep: str = ",", decimal: str = ".") -> bytes:
    """The frame as CSV bytes with the given delimiter and decimal mark."""
    return frame.to_csv(index=False, sep=sep, decimal=decimal).encode()


def to_xlsx(frame: pd.DataFrame) -> bytes:
    """The frame as an .xlsx workbook (one sheet, header in row 1), written with openpyxl."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append([str(c) for c in frame.columns])
    for row in frame.itertuples(index=False):
        sheet.append([None if isinstance(v, float) and v != v else v for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def one_row(value: Any = 0.0, at: int | None = None, fill: float = 0.0) -> list:
    """One JSON instance of 590 numbers, ``value`` at index ``at``."""
    row: list = [fill] * N_SENSORS
    if at is not None:
        row[at] = value
    return row


def row_text_with(literal: str, at: int) -> str:
    """One JSON instance as text with a raw ``literal`` (``1e400``, ``Infinity``) at ``at``."""
    cells = ["0.5"] * N_SENSORS
    cells[at] = literal
    return "[" + ",".join(cells) + "]"


def nested(depth: int, open_: str = "[", close: str = "]", inner: str = "") -> str:
    """``depth`` levels of JSON nesting as text."""
    return open_ * depth + inner + close * depth


def _status(*codes: int) -> frozenset[int]:
    return frozenset(codes)


BAD = _status(400)


# ---------------------------------------------------------------- file uploads


def _cell_cases() -> list[Case]:
    """Non-finite, beyond-float32 and non-numeric cells, each located by row and column."""
    base = sensor_frame(4)
    texts = {"inf": "inf", "minus_inf": "-inf", "Infinity": "Infinity",
             "minus_Infinity": "-Infinity", "plus_inf": "+inf", "INF": "INF", "1e39": "1e39",
             "minus_1e39": "-1e39",
             "float32_edge": "3.5e38", "1e400": "1e400", "minus_1e400": "-1e400",
             "true": "true", "text": "abc"}
    cases = []
    for k, (name, text) in enumerate(texts.items()):
        column = SENSOR_COLUMNS[2 + 7 * k]
        filename = f"cell_{name}.csv"
        cases.append(Case(f"csv_cell_{name}", BAD, needles=(filename,),
                          where={"row": 2, "column": column},
                          file=to_csv(with_cell(base, 2, column, text)), filename=filename))
    bools = base.astype(object)
    bools["Sensor-4"] = ["TRUE", "FALSE", "TRUE", "FALSE"]
    cases.append(Case("csv_boolean_column", BAD, needles=("bools.csv",),
                      where={"column": "Sensor-4"}, file=to_csv(bools), filename="bools.csv"))
    return cases


def _missing_cases() -> list[Case]:
    """Missing-value spellings: the usual ones are missing cells; odd ones are never a 500."""
    usual = sensor_frame(6).astype(object)
    for r, text in enumerate(["NaN", "nan", "NA", "N/A", "null", ""]):
        usual.loc[r, SENSOR_COLUMNS[r]] = text
    odd = with_cell(sensor_frame(3), 2, "Sensor-30", "NAN")
    return [
        Case("csv_nan_usual_spellings_are_missing", _status(200), file=to_csv(usual),
             filename="nan_spellings.csv"),
        Case("csv_nan_odd_spelling", _status(200, 400), needles=("nan_odd.csv",),
             where={"row": 2, "column": "Sensor-30"}, file=to_csv(odd), filename="nan_odd.csv"),
    ]


def _file_format_cases() -> list[Case]:
    """Empty, header-only, binary and compressed files; ragged rows."""
    header = ",".join(["Wafer", *SENSOR_COLUMNS]).encode() + b"\n"
    rng = np.random.default_rng(3)
    noise = bytes(rng.integers(0, 256, size=2048, dtype=np.uint8))
    ragged = to_csv(sensor_frame(4)).splitlines()
    ragged[3] += b",9.9"  # data row 3 has one cell too many
    return [
        Case("empty_file", BAD, needles=("empty.csv",), file=b"", filename="empty.csv"),
        Case("blank_file", BAD, needles=("blank.csv",), file=b"\n \n\t\n", filename="blank.csv"),
        Case("header_only", BAD, needles=("header.csv",), file=header, filename="header.csv"),
        Case("png_renamed_csv", _status(415), needles=("photo.csv",), file=PNG,
             filename="photo.csv"),
        Case("random_bytes_csv", _status(415), needles=("export.csv",), file=b"\x00" + noise,
             filename="export.csv"),
        Case("gzip_renamed_csv", _status(400, 415), needles=("packed.csv",),
             file=gzip.compress(to_csv(sensor_frame(3))), filename="packed.csv"),
        Case("ragged_row", BAD, needles=("ragged.csv", ("row 3", "line 4")),
             file=b"\n".join(ragged) + b"\n", filename="ragged.csv"),
    ]


def _size_cases() -> list[Case]:
    """Too many rows (a small MAX_ROWS), too few and too many columns, too many problems."""
    narrow = sensor_frame(3).iloc[:, :401]
    more = pd.DataFrame(0.5, index=range(3),
                        columns=[f"Sensor-{k}" for k in range(N_SENSORS + 1, 801)])
    wide = pd.concat([sensor_frame(3), more], axis=1)
    junk = pd.DataFrame("x", index=range(30), columns=SENSOR_COLUMNS)
    junk.insert(0, "Wafer", [f"J-{i}" for i in range(30)])
    return [
        Case("too_many_rows", _status(413), needles=("many.csv", str(SMALL_MAX_ROWS)),
             file=to_csv(sensor_frame(SMALL_MAX_ROWS + 1)), filename="many.csv",
             config={"MAX_ROWS": SMALL_MAX_ROWS}),
        Case("400_sensor_columns", BAD, needles=("narrow.csv",),
             file=to_csv(narrow), filename="narrow.csv"),
        # refused, or carried as extra columns with a warning naming them
        Case("800_sensor_columns", _status(200, 400), needles=("wide.csv",),
             warning="Sensor-591", file=to_csv(wide), filename="wide.csv"),
        Case("every_cell_bad", BAD, needles=("junk.csv",), where={"row": 1},
             file=to_csv(junk), filename="junk.csv"),
    ]


def _delimiter_cases() -> list[Case]:
    """Semicolons, tabs and decimal commas: sniffed, said in ``detected``, errors mention them."""
    frame = sensor_frame(4, seed=5)
    bad = with_cell(frame, 2, "Sensor-5", "abc")
    return [
        Case("semicolon_bad_cell", BAD, needles=("semi.csv", ("semicolon", "delimiter")),
             where={"row": 2, "column": "Sensor-5"}, file=to_csv(bad, sep=";"),
             filename="semi.csv"),
        Case("semicolon_decimal_comma", _status(200), file=to_csv(frame, ";", ","),
             filename="eu.csv", detected={"delimiter": ";", "decimal": ","}, frame=frame),
        Case("semicolon_decimal_point", _status(200), file=to_csv(frame, ";"),
             filename="semi_ok.csv", detected={"delimiter": ";", "decimal": "."}, frame=frame),
        Case("tab_delimited", _status(200), file=to_csv(frame, "\t"), filename="tabs.csv",
             detected={"delimiter": "\t", "decimal": "."}, frame=frame),
        Case("tab_decimal_comma", _status(200), file=to_csv(frame, "\t", ","),
             filename="tabs_eu.txt", detected={"delimiter": "\t", "decimal": ","}, frame=frame),
        Case("utf8_bom", _status(200), file=b"\xef\xbb\xbf" + to_csv(frame), filename="bom.csv",
             detected={"delimiter": ","}, frame=frame),
    ]


def _id_cases() -> list[Case]:
    """Ids as text exactly, duplicates, no id column, extra non-sensor columns."""
    ids = ("007", "0008", "1.10", "1e3", "12345678901234567890")
    text_ids = sensor_frame(len(ids), seed=2)
    text_ids["Wafer"] = list(ids)
    dup = sensor_frame(4, seed=3)
    dup["Wafer"] = ["W-1", "W-2", "W-2", "W-4"]
    no_id = sensor_frame(3, seed=4).drop(columns="Wafer")
    extra = sensor_frame(2, seed=6)
    extras = {"timestamp": ["2008-07-19 11:55:00", "2008-07-19 12:32:00"], "lot": ["0042", "L-7"],
              "tool": ["T1", "T2"], "recipe": ["R 2.10", "R 3"]}
    extra.insert(1, "timestamp", extras["timestamp"])
    extra.insert(2, "lot", extras["lot"])
    extra["tool"] = extras["tool"]
    extra["recipe"] = extras["recipe"]
    return [
        Case("ids_kept_as_text", _status(200), file=to_csv(text_ids), filename="ids.csv",
             ids=ids, frame=text_ids),
        Case("duplicate_ids", _status(200), file=to_csv(dup), filename="dup.csv",
             warning="duplicate", ids=("W-1", "W-2", "W-2", "W-4")),
        Case("no_id_column", _status(200), file=to_csv(no_id), filename="noid.csv",
             warning="number", ids=("1", "2", "3"), detected={"id_column": None,
                                                             "numbered_ids": True}),
        Case("extra_columns", _status(200), file=to_csv(extra), filename="extra.csv",
             extra={k: tuple(v) for k, v in extras.items()}, ids=("W-1", "W-2"),
             detected={"extra_columns": sorted(extras)}),
    ]


def _xlsx_cases() -> list[Case]:
    """Excel workbooks: a good one (ids as text), a bad cell, a boolean cell, a broken file."""
    frame = sensor_frame(3, seed=8)
    frame["Wafer"] = ["007", "0008", "1.10"]
    rng = np.random.default_rng(9)
    return [
        Case("xlsx_ok", _status(200), file=to_xlsx(frame), filename="book.xlsx",
             ids=("007", "0008", "1.10"), detected={"format": "xlsx"}, frame=frame),
        Case("xlsx_text_cell", BAD, needles=("text.xlsx",), where={"row": 3, "column": "Sensor-9"},
             file=to_xlsx(with_cell(frame, 3, "Sensor-9", "abc")), filename="text.xlsx"),
        Case("xlsx_boolean_cell", BAD, needles=("bool.xlsx",),
             where={"row": 1, "column": "Sensor-12"},
             file=to_xlsx(with_cell(frame, 1, "Sensor-12", True)), filename="bool.xlsx"),
        Case("xlsx_broken", _status(400, 415), needles=("broken.xlsx",),
             file=b"PK\x03\x04" + bytes(rng.integers(0, 256, 512, dtype=np.uint8)),
             filename="broken.xlsx"),
    ]


def _form_option_cases() -> list[Case]:
    """Wrong ``model`` / ``threshold`` form fields next to a good upload (API only)."""
    good = to_csv(sensor_frame(3, seed=10))
    thresholds = {"abc": "abc", "true": "true", "nan": "nan", "inf": "inf", "1e400": "1e400",
                  "minus_5": "-5", "above_1": "2"}
    cases = [Case(f"form_threshold_{name}", BAD, needles=("threshold",), file=good,
                  form={"threshold": value}, check=False) for name, value in thresholds.items()]
    cases.append(Case("form_model_unknown", BAD, needles=("model",), file=good,
                      form={"model": "magic"}, check=False))
    return cases


def file_cases() -> list[Case]:
    """Every upload case (multipart field ``file``)."""
    return (_cell_cases() + _missing_cases() + _file_format_cases() + _size_cases()
            + _delimiter_cases() + _id_cases() + _xlsx_cases() + _form_option_cases())


# ---------------------------------------------------------------- JSON bodies


def _json_number_cases() -> list[Case]:
    """Non-finite and beyond-float32 numbers, booleans, text and lists where numbers belong."""
    raw = {"1e400": ("1e400", 4), "minus_1e400": ("-1e400", 5), "Infinity": ("Infinity", 6),
           "minus_Infinity": ("-Infinity", 7)}
    cases = [Case(f"json_{name}", BAD, where={"path": f"instances[0][{at}]"},
                  raw=b'{"instances": [' + row_text_with(lit, at).encode() + b"]}")
             for name, (lit, at) in raw.items()]
    cases.append(Case("json_5000_digit_cell", BAD, needles=(("instances[0][3]", "digits",
                                                              "number"),),
                      raw=b'{"instances": [' + row_text_with("9" * 5000, 3).encode() + b"]}"))
    cases.append(Case("json_NaN_literal", _status(200, 400), where={"path": "instances[0][8]"},
                      raw=b'{"instances": [' + row_text_with("NaN", 8).encode() + b"]}"))
    values = {"1e39": (1e39, 9), "minus_1e39": (-1e39, 10), "float32_edge": (3.5e38, 11),
              "true": (True, 12), "false": (False, 13), "text": ("abc", 14),
              "numeric_text": ("1.5e3x", 15), "list": ([1.0], 16), "object": ({"v": 1}, 17),
              "huge_int": (10**400, 18), "int_beyond_float32": (10**39, 19)}
    for name, (value, at) in values.items():
        cases.append(Case(f"json_cell_{name}", BAD, where={"path": f"instances[1][{at}]"},
                          body={"instances": [one_row(), one_row(value, at)]}))
    for name, value in {"true": True, "1e39": 1e39, "text": "x"}.items():
        cases.append(Case(f"json_dict_cell_{name}", BAD, needles=("Sensor-9", "instances[0]"),
                          body={"instances": [{"Sensor-1": 0.1, "Sensor-9": value}]}))
    return cases


def _json_shape_cases() -> list[Case]:
    """Wrong types for ``instances``, rows and ``ids``; missing keys; deep nesting."""
    cases = [Case(f"json_instances_{name}", BAD, needles=("instances",), body={"instances": v})
             for name, v in {"number": 5, "text": "abc", "object": {}, "null": None, "true": True,
                             "empty": []}.items()]
    cases += [Case(f"json_row_{name}", BAD, needles=("instances[0]",), body={"instances": [v]})
              for name, v in {"number": 5, "text": "x", "null": None, "short": [1.0, 2.0],
                              "long": one_row() + [1.0]}.items()]
    cases += [Case(f"json_body_{name}", BAD, needles=("instances",), body=v)
              for name, v in {"number": 5, "text": "x", "null": None, "true": True,
                              "no_instances": {"rows": [one_row()]}}.items()]
    cases += [Case(f"json_ids_{name}", BAD, needles=("ids",), body={"instances": [one_row()],
                                                                    "ids": v})
              for name, v in {"number": 5, "text": "abc", "too_few": [], "nested": [[1]],
                              "object": [{"a": 1}]}.items()]
    deep = {"instances": "{\"instances\": " + nested(DEEP) + "}",
            "body": nested(DEEP),
            "objects": nested(DEEP, '{"a":', "}", "1"),
            "threshold": "{\"instances\": [" + row_text_with("0", 0) + "], \"threshold\": "
                         + nested(DEEP, '{"a":', "}", "1") + "}",
            "cell": "{\"instances\": [[" + nested(DEEP) + "]]}"}
    cases += [Case(f"json_deep_{name}", _status(400, 413), needles=(("nest", "deep"),),
                   raw=text.encode()) for name, text in deep.items()]
    cases.append(Case("json_1000_levels", BAD, needles=(("instances", "nest", "deep"),),
                      raw=("{\"instances\": " + nested(1000) + "}").encode()))
    return cases


def _json_option_cases() -> list[Case]:
    """Wrong types and values for ``model`` and ``threshold``."""
    rows = [one_row(0.1)]
    models = {"list": [], "object": {}, "number": 5, "true": True, "false": False,
              "unknown": "magic"}
    cases = [Case(f"json_model_{name}", BAD, needles=("model",),
                  body={"instances": rows, "model": v}) for name, v in models.items()]
    thresholds = {"true": True, "false": False, "text": "abc", "list": [], "object": {},
                  "minus_5": -5, "above_1": 2.0, "huge": 1e300}
    cases += [Case(f"json_threshold_{name}", BAD, needles=("threshold",),
                   body={"instances": rows, "threshold": v}) for name, v in thresholds.items()]
    row = row_text_with("0.1", 0)
    literals = {"NaN": "NaN", "1e400": "1e400", "Infinity": "Infinity", "huge_int": "9" * 400,
                "5000_digits": "9" * 5000}
    for name, literal in literals.items():
        cases.append(Case(f"json_threshold_{name}", BAD, needles=("threshold",),
                          raw=f'{{"instances": [{row}], "threshold": {literal}}}'.encode()))
    cases.append(Case("json_threshold_negative_autoencoder", BAD, needles=("threshold",),
                      body={"instances": rows, "model": "autoencoder", "threshold": -0.5}))
    cases += [Case(f"json_threshold_edge_{v}", _status(200), body={"instances": rows,
                                                                    "threshold": v})
              for v in (0.0, 1.0)]
    return cases


def _json_syntax_cases() -> list[Case]:
    """Invalid JSON (400, never 415), empty bodies, too many rows, ids kept and duplicated."""
    row = row_text_with("0.1", 0)
    invalid = {"truncated": f'{{"instances": [{row}'.encode(),
               "single_quotes": b"{'instances': []}",
               "trailing": f'{{"instances": [{row}]}} extra'.encode(),
               "not_utf8": b'{"instances": [\xff\xfe]}',
               "bare_word": b"instances"}
    cases = [Case(f"invalid_json_{name}", BAD, needles=("JSON",), raw=raw)
             for name, raw in invalid.items()]
    cases += [Case("empty_body_json", BAD, needles=("JSON",), raw=b""),
              Case("empty_body_no_type", BAD, needles=("JSON",), raw=b"", content_type="")]
    cases.append(Case("json_too_many_rows", _status(413), needles=(str(SMALL_MAX_ROWS),),
                      body={"instances": [one_row(0.1)] * (SMALL_MAX_ROWS + 1)},
                      config={"MAX_ROWS": SMALL_MAX_ROWS}))
    ids = ("007", "0008", "1.10")
    cases.append(Case("json_ids_kept_as_text", _status(200), ids=ids,
                      body={"instances": [one_row(0.1)] * 3, "ids": list(ids)}))
    cases.append(Case("json_duplicate_ids", _status(200), warning="duplicate",
                      ids=("A", "A", "B"),
                      body={"instances": [one_row(0.1)] * 3, "ids": ["A", "A", "B"]}))
    return cases


def json_cases() -> list[Case]:
    """Every JSON / raw-body case for ``POST /api/v1/sensor/predict``."""
    return _json_number_cases() + _json_shape_cases() + _json_option_cases() + _json_syntax_cases()


def empty_rows_body(n_rows: int = 200_000) -> bytes:
    """``{"instances": [[],[],...]}``: about 0.6 MB that must be refused before arrays are built."""
    return b'{"instances": [' + b",".join([b"[]"] * n_rows) + b"]}"
