"""A hostile-input corpus for every module's predict and check endpoints (issue 21).

Each body is generated here (no data rows copied), small on the wire and built to cost the
server unbounded work or memory, or to reach a path that once answered 500: thousands of
header columns (repeated or distinct), a header line longer than any file's, an unterminated
quote, rows longer than the header, gzip that expands without limit or is corrupt, an .xlsx
of a million empty rows or one whose XML expands entities, npz arrays that promise more data
than they hold or astronomically many items, zip bombs, JSON bodies that are too large, hold
too many items, hide nesting behind escaped backslashes or carry integers hundreds of digits
long, and a chunked body with no Content-Length.

:func:`file_cases` are files for the multipart field ``file`` of every file endpoint (named
for the module's accepted types); :func:`json_cases` are JSON bodies per JSON endpoint. The
tests send each one and accept only 400, 413 or 415 (or 200 for a body the server may read),
never a 500 and never an answer past the request's time budget.
"""
from __future__ import annotations

import gzip
import io
import json
import struct
import zipfile
import zlib
from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class FileCase:
    """One hostile file: its name, bytes, and the statuses an endpoint may answer."""

    name: str
    filename: str
    data: bytes
    statuses: frozenset[int] = frozenset({400, 413, 415})


@dataclass(frozen=True)
class JsonCase:
    """One hostile request body for a JSON endpoint (``raw`` bytes as sent)."""

    name: str
    raw: bytes
    statuses: frozenset[int] = frozenset({400, 413, 415})


def _gzip_stream(pattern: bytes, total: int) -> bytes:
    """``pattern`` repeated to ``total`` bytes, gzipped as it is made (never held whole)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = pattern * (MIB // len(pattern))
    parts, made = [], 0
    while made < total:
        parts.append(compressor.compress(block))
        made += len(block)
    parts.append(compressor.flush())
    return b"".join(parts)


def _zip(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def xlsx(sheet_xml: bytes, extra: dict[str, bytes] | None = None) -> bytes:
    """A minimal .xlsx workbook whose first sheet is ``sheet_xml``."""
    return _zip({
        "[Content_Types].xml": b'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://'
        b'schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" '
        b'ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default '
        b'Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" '
        b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+'
        b'xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.'
        b'openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>',
        "_rels/.rels": b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://'
        b'schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type='
        b'"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"'
        b' Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": b'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://'
        b'schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.'
        b'openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="S" '
        b'sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": b'<?xml version="1.0" encoding="UTF-8"?><Relationships '
        b'xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship '
        b'Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        b'worksheet" Target="worksheets/sheet1.xml"/></Relationships>',
        "xl/worksheets/sheet1.xml": sheet_xml, **(extra or {})})


def _sheet(rows: bytes, doctype: bytes = b"") -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8"?>' + doctype + b'<worksheet xmlns="http://'
            b'schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>' + rows +
            b"</sheetData></worksheet>")


def _npy(shape: tuple[int, ...], dtype: str = "<f8", data: bytes = b"") -> bytes:
    """An .npy file whose header says ``shape`` and ``dtype``, followed by only ``data``."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data


def csv_header(columns: int, repeated: bool) -> bytes:
    names = (b"a," * columns) if repeated else b",".join(b"c%d" % i for i in range(columns))
    return names.rstrip(b",") + b"\n" + b"1," * (columns - 1) + b"1\n"


def file_cases() -> list[FileCase]:
    """Hostile files; each endpoint gets them under its own accepted names."""
    sensor_row = b"Wafer," + b",".join(b"Sensor-%d" % i for i in range(1, 591)) + b"\n"
    return [
        FileCase("80k repeated column names", "x.csv", csv_header(80_000, repeated=True)),
        FileCase("80k distinct column names", "x.csv", csv_header(80_000, repeated=False)),
        FileCase("a 2 MB header line", "x.csv", b"h" * (2 * MIB) + b"\n1\n"),
        FileCase("an unterminated quote", "x.csv",
                 sensor_row + b'"W1,' + b"1," * 589 + b"1\n" + b'W2,"abc\n' * 3),
        FileCase("rows longer than the header", "x.csv",
                 sensor_row + (b"W1," + b"1," * 600 + b"1\n") * 3),
        FileCase("gzip expanding to 256 MB", "x.csv.gz", _gzip_stream(b"1,", 256 * MIB)),
        FileCase("gzip expanding to 256 MB of text", "x.txt.gz", _gzip_stream(b"1 ", 256 * MIB)),
        FileCase("a corrupt gzip stream", "x.txt.gz",
                 gzip.compress(b"1 2 3\n" * 1000)[:40] + b"\x00garbage" * 50),
        FileCase("an .xlsx of a million empty rows", "x.xlsx", xlsx(_sheet(
            b'<row r="1">' + b"".join(b'<c t="inlineStr"><is><t>%s</t></is></c>' % name
                                       for name in [b"Wafer"] + [b"Sensor-%d" % i for i in
                                                                 range(1, 591)]) + b"</row>"
            + b"<row/>" * 1_000_000))),
        FileCase("an .xlsx that expands entities", "x.xlsx", xlsx(_sheet(
            b'<row r="1"><c r="A1" t="inlineStr"><is><t>&lol9;</t></is></c></row>',
            b'<!DOCTYPE lolz [<!ENTITY lol "lol">'
            + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else
                                                      b"&lol;") * 10) for i in range(1, 10))
            + b"]>"))),
        FileCase("an npz promising 10^12 maps", "x.npz", _zip(
            {"X.npy": _npy((10**12, 64, 64), "|u1", b"\x00" * 4096)})),
        FileCase("an npz whose array holds less than it says", "x.npz", _zip(
            {"X.npy": _npy((10, 64, 64), "|u1", b"\x01" * 100)})),
        FileCase("an npz of data/offsets promising 10^18 items", "x.npz", _zip(
            {"data.npy": _npy((10**18,), "|u1", b"\x01" * 64),
             "offsets.npy": _npy((2,), "<i8", struct.pack("<2q", 0, 10**18)),
             "orig_shape.npy": _npy((1, 2), "<i8", struct.pack("<2q", 10**9, 10**9))})),
        FileCase("a zip bomb", "x.zip", _zip({f"m{i}.csv": b"0" * (64 * MIB) for i in range(4)})),
        FileCase("a zip with 100,000 members", "x.zip",
                 _zip({f"{i}.csv": b"" for i in range(100_000)}, zipfile.ZIP_STORED)),
        FileCase("binary noise", "x.csv", bytes(range(256)) * 400),
    ]


def json_cases(kind: str) -> list[JsonCase]:
    """Hostile JSON bodies for an endpoint whose body is ``kind``: ``instances`` (sensor, 590
    values a row), ``window`` (time-series detect: 30 cycles of 21 sensors), ``windows``
    (detect batch), ``maps`` (wafer map, 64 x 64 grids). Each is well formed where it is not
    hostile, so it reaches the code it aims at."""
    big = b"[" + b"1.5," * (7 * MIB // 4) + b"1]"
    many = b"[" + b"0," * (3 * MIB) + b"0]"
    deep = b"[" * 50_000 + b"]" * 50_000
    backslash = b'"\\\\' + b'\\\\' * 10 + b'"'
    huge = b"1" + b"0" * 400  # beyond any float
    huger = b"9" * 5000  # beyond Python's 4,300-digit int conversion limit

    def row(width: int, last: bytes = b"1") -> bytes:
        return b"[" + b"1," * (width - 1) + last + b"]"

    def window(last: bytes = b"1", cycles: bytes = b"") -> bytes:
        rows = b",".join([row(21)] * 29 + [row(21, last)])
        extra = b', "cycles": [' + b",".join(b"%d" % i for i in range(1, 30)) + b"," + cycles \
            + b"]" if cycles else b""
        return b'{"machine_id": "m", "window": [' + rows + b"]" + extra + b"}"

    grid = b"[" + b",".join([row(64)] * 63 + [row(64, huge)]) + b"]"
    bodies = {
        "instances": {"a 30 MB body": b'{"instances": [' + b",".join([big] * 4) + b"]}",
                      "three million items": b'{"instances": [' + many + b"]}",
                      "nesting behind escaped backslashes": b'{"instances": [' + backslash
                      + b", " + deep + b"]}",
                      "a 400-digit integer": b'{"instances": [' + row(590, huge) + b"]}",
                      "a 5,000-digit integer": b'{"instances": [' + row(590, huger) + b"]}"},
        "window": {"a 30 MB window": b'{"machine_id": "m", "window": ['
                   + b",".join([big] * 4) + b"]}",
                   "three million cycles": b'{"machine_id": "m", "window": [' + b",".join(
                       [b"[1]"] * (3 * 10**6)) + b"]}",
                   "nesting behind escaped backslashes": b'{"machine_id": ' + backslash
                   + b', "window": ' + deep + b"}",
                   "a 400-digit integer in the window": window(huge),
                   "a 5,000-digit integer in the window": window(huger),
                   "a 400-digit integer in the cycles": window(cycles=huge),
                   "a 5,000-digit integer in the cycles": window(cycles=huger)},
        "windows": {"a 30 MB batch": b'{"windows": [{"machine_id": "m", "window": ['
                    + b",".join([big] * 4) + b"]}]}",
                    "a million windows": b'{"windows": [' + b",".join(
                        [b'{"machine_id":"m","window":[[1]]}'] * 10**6) + b"]}",
                    "a 400-digit cycle": b'{"windows": [' + window(cycles=huge) + b"]}"},
        "maps": {"a 30 MB map": b'{"maps": [' + b",".join([big] * 4) + b"]}",
                 "three million maps": b'{"maps": [' + b",".join([b"[[1]]"] * (3 * 10**6))
                 + b"]}",
                 "nesting behind escaped backslashes": b'{"names": [' + backslash
                 + b'], "maps": ' + deep + b"}",
                 "a 400-digit die": b'{"maps": [' + grid + b"]}"},
    }
    return [JsonCase(name, raw) for name, raw in bodies[kind].items()]
