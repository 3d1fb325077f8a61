"""Bounded reading: limits on work and memory checked while bytes are read, before anything
large is built from them.

A small upload can cost unbounded work: a few hundred KB of gzip expand to gigabytes, a
header of 80,000 repeated names sends a parser's de-duplication quadratic, a line with no end
is read whole. Every reader of uploaded text goes through these few functions, so the limits
are one rule in one place:

- :func:`gunzip`: gzip expanded in pieces, stopping with :class:`LimitError` as soon as the
  output passes ``limit`` bytes (a corrupt stream is a :class:`SchemaError`);
- :func:`first_line`: the header line, which must end within ``max_bytes``;
- :func:`header_columns`: the header's cells, counted by their delimiters before anything is
  split, and checked for a repeated name in one pass.

The limits are parameters; the web app passes its configuration, the command line the
defaults below, which fit any file the project's datasets hold.
"""
from __future__ import annotations

import csv
import zlib

from pipelines.core.problems import LimitError, Problem, SchemaError

GZIP_MAGIC = b"\x1f\x8b"
MAX_EXPANDED = 512 * 1024 * 1024  # bytes a gzip file may expand to (train_FD001: 3.5 MB)
MAX_HEADER_BYTES = 64 * 1024  # a 590-sensor header is about 6 KB
MAX_COLUMNS = 2_000  # a SECOM file has 591; ids, labels and extras stay far below this
PIECE_IN = 64 * 1024  # compressed bytes fed to the decompressor at a time
PIECE = 1024 * 1024  # most bytes it may return at a time


def is_gzip(data: bytes) -> bool:
    return data[:2] == GZIP_MAGIC


def gunzip(data: bytes, limit: int = MAX_EXPANDED, file: str | None = None) -> bytes:
    """``data`` gunzipped (several members, as ``gzip`` writes them, included), refused with a
    :class:`LimitError` once the output passes ``limit`` bytes: input is fed a piece at a time
    and output drawn at most a piece at a time, so never more than ``limit`` plus a piece is
    held and no piece of input is copied twice."""
    out, size = [], 0
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def take(chunk: bytes) -> None:
        nonlocal size
        out.append(chunk)
        size += len(chunk)
        if size > limit:
            raise LimitError([Problem(
                f"the gzip file expands to more than {limit / 2**20:g} MB (the limit on what "
                f"one upload may hold); split it, or send it uncompressed", file=file)])

    try:
        pending = memoryview(data)
        while pending:
            piece, pending = bytes(pending[:PIECE_IN]), pending[PIECE_IN:]
            while piece:
                take(decompressor.decompress(piece, PIECE))
                piece = decompressor.unconsumed_tail
                if decompressor.eof:  # another gzip member may follow
                    rest = decompressor.unused_data + bytes(pending)
                    if not rest.strip(b"\x00"):
                        return b"".join(out)
                    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    pending, piece = memoryview(rest), b""
        if not decompressor.eof:
            raise SchemaError([Problem("not a readable gzip file (the stream ends early)",
                                       file=file)])
    except zlib.error as exc:
        raise SchemaError([Problem(f"not a readable gzip file ({exc})", file=file)]) from None
    return b"".join(out)


def first_line(text: str, file: str | None = None, max_bytes: int = MAX_HEADER_BYTES) -> str:
    """The first line of ``text`` (the header), which must end within ``max_bytes``
    characters; a :class:`LimitError` otherwise (a line with no end is never split)."""
    end = -1
    for newline in ("\n", "\r"):
        found = text.find(newline, 0, max_bytes + 1)
        if found != -1 and (end == -1 or found < end):
            end = found
    if end == -1:
        if len(text) <= max_bytes:
            return text
        raise LimitError([Problem(f"the header line is longer than {max_bytes // 1024} KB "
                                  f"(a header of 590 sensors is about 6 KB); is this a file "
                                  f"with a header row?", file=file)])
    return text[:end]


def header_columns(line: str, delimiter: str, file: str | None = None,
                   max_columns: int = MAX_COLUMNS, unique: bool = True) -> list[str]:
    """The cells of a header ``line``: their number checked from the delimiters before the line
    is split (:class:`LimitError` beyond ``max_columns``), and with ``unique`` a repeated name
    refused (:class:`SchemaError`) in one pass."""
    if line.count(delimiter) + 1 > max_columns:
        raise LimitError([Problem(f"the header has {line.count(delimiter) + 1:,} columns; at "
                                  f"most {max_columns:,} are accepted", file=file)])
    columns = next(csv.reader([line], delimiter=delimiter), [])
    if unique:
        check_unique(columns, file)
    return columns


def check_unique(columns: list[str], file: str | None = None) -> None:
    """A :class:`SchemaError` naming the first header name that repeats (one pass)."""
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            raise SchemaError([Problem(f"the header repeats column '{name[:60]}'; every column "
                                       f"needs its own name", file=file, column=name[:60])])
        seen.add(name)
