"""Sensor rows in batch (``python -m pipelines.score sensor``): ``dask.dataframe`` partitions.

Inputs: CSV files (plain or ``.gz``; comma, semicolon or tab, ``.`` or ``,`` decimals, as the
first file's head is detected) or parquet files, every file with the first file's header.
Dask cuts the files into line-aligned blocks (``dask.bytes.read_bytes``, what
``dask.dataframe.read_csv`` builds on) and each block is read into a partition by the web
app's own CSV reader (the id and extra columns as text, the sensors as numbers, a bad cell
kept for the parser to locate), then parsed and scored by the same code as an upload
(``parse_chunk``, :meth:`SensorPredictor.predict`, the predict API's results table). The
reader is the web app's rather than ``read_csv``'s own because Dask fixes one dtype per
column for every partition: a cell that is not a number would then fail the whole job
unlocated, where the web app names its file, row and column.

Partitions: a plain CSV is cut into blocks of ``partition_size`` bytes (default 64 MB, about
12,000 rows of 590 sensors); a gzipped file, a file without a wafer id column (its rows are
numbered 1, 2, ... in the file, as uploads are), or a parquet file (``dask.dataframe.from_map``
over ``pandas.read_parquet``) is one partition. Rows are scored independently, so
the results do not depend on where a partition starts; the ``source_file`` column says which
file each row came from. In a file read in blocks, the row numbers of a located problem
count from its block's first row.
"""
from __future__ import annotations

import gzip
import io
import warnings
from pathlib import Path

import pandas as pd

from pipelines.core.batch import BatchError, relative_name
from pipelines.sensor.ingest.table import (SNIFF_BYTES, _csv_chunks, _split_line,
                                           layout_from_header, parse_chunk, sniff_dialect)
from pipelines.sensor.results import results_csv_frame, with_extras

PREDICTOR = "pipelines.sensor.predict:SensorPredictor"
NOUN = "rows"
EXTENSIONS = (".csv", ".csv.gz", ".parquet")
BLOCK_BYTES = 64 * 2**20
PATH_COLUMN = "__fablens_path"  # the file each row came from


def _head(path: Path) -> bytes:
    if path.name.lower().endswith(".gz"):
        with gzip.open(path) as handle:
            return handle.read(SNIFF_BYTES)
    with open(path, "rb") as handle:
        return handle.read(SNIFF_BYTES)


def _header_line(path: Path) -> bytes:
    """The file's first line, as bytes (with its line ending)."""
    return _head(path).splitlines(keepends=True)[0] if _head(path).strip() else b""


def partitions(files: list[Path], root: Path, *, partition_size: int | None = None,
               partitions: int | None = None):
    """A ``dask.dataframe`` of the files' rows, as the web app reads them, with each row's
    file (its name under ``root``) in ``PATH_COLUMN``."""
    import dask
    import dask.dataframe as dd
    from dask.bytes import read_bytes

    parquet = [f for f in files if f.name.lower().endswith(".parquet")]
    if parquet and len(parquet) != len(files):
        raise BatchError("give CSV files or parquet files, not both")
    if parquet:
        import pyarrow.parquet as pq

        layout_from_header(list(pq.read_schema(files[0]).names), files[0].name)
        return dd.from_map(_read_parquet, [(str(f), relative_name(f, root)) for f in files],
                           enforce_metadata=False)
    head = _head(files[0])
    dialect = sniff_dialect(head)
    header = _header_line(files[0])
    columns = _split_line(header.decode(dialect.encoding, errors="replace").rstrip("\r\n"),
                          dialect.delimiter)
    layout = layout_from_header(columns, files[0].name)  # a bad header fails here, once
    for f in files[1:]:
        if _header_line(f) != header:
            raise BatchError(f"{relative_name(f, root)}: its header differs from "
                             f"{relative_name(files[0], root)}'s; score files of one layout "
                             f"together")
    pieces = []
    for f in files:
        whole = layout.id_column is None or f.name.lower().endswith(".gz")
        _, blocks = read_bytes(str(f), delimiter=b"\n", sample=False,
                               blocksize=None if whole else (partition_size or BLOCK_BYTES),
                               compression="gzip" if f.name.lower().endswith(".gz") else None)
        name = relative_name(f, root)
        pieces += [dask.delayed(_read_block)(block, header, k > 0, name, dialect)
                   for k, block in enumerate(blocks[0])]
    meta = pd.DataFrame({c: pd.Series(dtype=object) for c in columns + [PATH_COLUMN]})
    return dd.from_delayed(pieces, meta=meta, verify_meta=False)


def _read_block(block: bytes, header: bytes, add_header: bool, name: str,
                dialect) -> pd.DataFrame:
    """One block of a file read as the web app reads an upload (``_csv_chunks``)."""
    data = header + block if add_header else block
    _, frames = _csv_chunks(io.BytesIO(data), dialect, name, chunk_rows=2**31 - 1)
    read = [f for f in frames if len(f)]
    frame = read[0] if len(read) == 1 else pd.concat(read, ignore_index=True) if read \
        else pd.DataFrame(columns=_split_line(header.decode(dialect.encoding, "replace")
                                              .rstrip("\r\n"), dialect.delimiter))
    with warnings.catch_warnings():  # one column more on the reader's frame: cheap
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        frame[PATH_COLUMN] = name
    return frame


def _read_parquet(item: tuple[str, str]) -> pd.DataFrame:
    """One parquet file, with its name under the input folder on every row."""
    path, name = item
    frame = pd.read_parquet(path)
    frame[PATH_COLUMN] = name
    return frame


def score_partition(predictor, frame: pd.DataFrame, *, model: str | None = None,
                    threshold: float | None = None) -> pd.DataFrame:
    """The predict API's results table of one partition's rows, with ``source_file``."""
    if not len(frame):
        return pd.DataFrame()
    frame = frame.reset_index(drop=True)
    sources = frame.pop(PATH_COLUMN).astype(str).to_numpy()
    file = sources[0] if len(set(sources)) == 1 else f"{sources[0]} ..."
    layout = layout_from_header(list(frame.columns), file)
    table = parse_chunk(frame, layout, file)
    results = predictor.predict(table, threshold=threshold, model=model)
    chosen, version = results.attrs["threshold"], results.attrs["model_version"]
    results["in_sample"] = predictor.in_sample(table.values)
    out = results_csv_frame(with_extras(results, table), chosen, version)
    out["source_file"] = pd.Series(sources, dtype="string")
    return out
