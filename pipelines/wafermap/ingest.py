"""Read wafer maps from npz files, PNG/JPEG images, CSV grids and JSON arrays.

Every reader returns :class:`WaferMaps` (2-D uint8 grids of die codes 0 off-wafer, 1 pass,
2 fail, any sizes) or raises :class:`~pipelines.core.problems.SchemaError` listing what is
wrong and where (file, item = the map's 1-based number in a file of several, grid row and
column, 1-based). Sizes are checked before any large array is built: a side longer than
``MAX_SIDE`` (512) dies is refused, and ``max_maps`` caps the maps in one file.

Accepted encodings:

- **npz** (``numpy.savez``, never unpickled), either layout of WM-811K's files:
  ``X`` (maps, height, width), or ``data`` (all maps flattened and concatenated), ``offsets``
  (maps + 1, map i is ``data[offsets[i]:offsets[i+1]]``) and ``orig_shape`` (maps, 2).
  Optional: ``y`` (class names, or indices into ``classes``/the nine WM-811K classes),
  ``split`` (``train``/``val``/``test`` per map: pass ``split=`` to keep one part),
  ``classes``. Cells must be exactly 0, 1 or 2 (any integer or float dtype).
- **CSV**: one map per file, one grid row per line, cells ``0``/``1``/``2`` separated by
  commas (blanks around cells allowed, no header). Several maps in one file are separated by
  one or more empty lines.
- **JSON**: one map as nested lists (``[[0, 1, 2], ...]``), a list of maps, or an object
  ``{"maps": [...]}``. Cells are the integers 0, 1, 2.
- **PNG / JPEG**, one pixel per die (a larger picture is read as a finer grid and shrunk
  like any large map):
  - grayscale (or colour with equal channels): dark pixels (0-63) are off-wafer, mid-grey
    (64-191) pass and light (192-255) fail dies: the 0/128/255 levels WM-811K maps are often
    stored with (16-bit grey: the same thirds of 0-65535). An image whose values are all 0, 1
    or 2 is read as die codes directly;
  - colour: each pixel takes the code of the nearest colour of :data:`PALETTES`: the FabLens
    page's colours (off-wafer white, pass green, fail red) and matplotlib's default viridis
    colour map as plotted for WM-811K (off-wafer purple, pass teal, fail yellow). More than
    5% of pixels farther than 96 (RGB distance) from every palette colour is refused;
  - transparent pixels (alpha < 128) are off-wafer.

Every map must have at least one on-wafer die (a map entirely off-wafer is refused).
"""
from __future__ import annotations

import io
import math
import json
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from pipelines.core.artifacts import sha256
from pipelines.core.problems import Problem, SchemaError
from pipelines.wafermap.schema import CLASSES, FAIL, MAX_SIDE, MODEL_SIZE, OFF, PASS
from pipelines.wafermap.transform import resize_map

MAX_PROBLEMS = 50
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
EXTENSIONS = (".npz", ".csv", ".json", *IMAGE_EXTENSIONS)
# name -> (off-wafer, pass, fail) RGB colours; images are matched to the nearest of all of them
PALETTES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "fablens": ((255, 255, 255), (76, 175, 80), (229, 57, 53)),
    "viridis": ((68, 1, 84), (33, 145, 140), (253, 231, 37)),
}
GREY_LEVELS = (64, 192)  # below the first: off-wafer; below the second: pass; else fail
COLOUR_TOLERANCE = 96.0
MAX_UNMATCHED = 0.05


@dataclass
class WaferMaps:
    """Wafer maps read from one file: grids of any size, names, optional labels and split."""

    maps: list[np.ndarray]  # 2-D uint8 die codes
    names: list[str]
    labels: np.ndarray | None = None  # class names, one per map
    split: np.ndarray | None = None
    layout: str = ""

    def __len__(self) -> int:
        return len(self.maps)

    def model_input(self, size: int = MODEL_SIZE) -> np.ndarray:
        """(maps, size, size) uint8: every map resized with the fail-keeping resize."""
        out = np.empty((len(self.maps), size, size), dtype=np.uint8)
        for i, grid in enumerate(self.maps):
            out[i] = resize_map(grid, size)
        return out


def _raise(problems: list[Problem]) -> None:
    if problems:
        if len(problems) > MAX_PROBLEMS:
            hidden = len(problems) - MAX_PROBLEMS
            problems = problems[:MAX_PROBLEMS] + [
                Problem(f"{hidden} more problems not listed", file=problems[0].file)]
        raise SchemaError(problems)


def _side_problems(shape: Sequence[int], file: str | None, index: int | None) -> list[Problem]:
    h, w = (int(s) for s in shape)
    if h <= 0 or w <= 0:
        return [Problem(f"the map is empty ({h} x {w})", file=file, index=index)]
    if h > MAX_SIDE or w > MAX_SIDE:
        return [Problem(f"the map is {h} x {w}; at most {MAX_SIDE} x {MAX_SIDE} dies are "
                        f"accepted", file=file, index=index)]
    return []


def check_grid(grid: np.ndarray, file: str | None = None, index: int | None = None,
               max_cells: int = 3) -> list[Problem]:
    """Problems of one map: empty, too large, cells other than 0/1/2, entirely off-wafer."""
    grid = np.asarray(grid)
    if grid.ndim != 2:
        return [Problem(f"a map must be a 2-D grid, got {grid.ndim} dimensions", file=file,
                        index=index)]
    problems = _side_problems(grid.shape, file, index)
    if problems:
        return problems
    bad = (grid != OFF) & (grid != PASS) & (grid != FAIL)
    if bad.any():
        cells = np.argwhere(bad)
        for r, c in cells[:max_cells]:
            problems.append(Problem(f"{_show(grid[r, c])} is not a die code (0 off-wafer, "
                                    f"1 pass, 2 fail)", file=file, index=index,
                                    row=int(r) + 1, column=str(int(c) + 1)))
        if len(cells) > max_cells:
            problems.append(Problem(f"{len(cells) - max_cells} more cells are not 0, 1 or 2",
                                    file=file, index=index))
    elif not (grid != OFF).any():
        problems.append(Problem("the map is entirely off-wafer (no die is 1 or 2)", file=file,
                                index=index))
    return problems


def _show(value) -> str:
    value = value.item() if hasattr(value, "item") else value
    return f"{value:g}" if isinstance(value, float) else repr(value)


def _finish(grids: list[np.ndarray], file: str, layout: str) -> WaferMaps:
    stem = file or "map"
    names = [stem] if len(grids) == 1 else [f"{stem}#{i + 1}" for i in range(len(grids))]
    return WaferMaps([g.astype(np.uint8) for g in grids], names, layout=layout)


# -- npz ----------------------------------------------------------------------------------------
def _npy_header(archive: zipfile.ZipFile, key: str, file: str
                ) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an array in an npz, read from its header without loading it; an
    array whose member holds fewer or more bytes than its shape and dtype say is refused here,
    before anything is read (it would fail, or allocate what it promises, later)."""
    info = archive.getinfo(f"{key}.npy")
    with archive.open(info) as handle:
        version = np.lib.format.read_magic(handle)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read(handle)
        held = info.file_size - handle.tell()
    declared = math.prod(shape) * dtype.itemsize
    if not dtype.hasobject and declared != held:
        raise SchemaError([Problem(f"array '{key}' says it holds {declared:,} bytes "
                                   f"({' x '.join(map(str, shape)) or 'one value'} of "
                                   f"{dtype}) but holds {held:,}; the file is damaged",
                                   file=file)])
    return tuple(shape), dtype


def read_npz(source, file: str | None = None, *, split: str | None = None,
             max_maps: int | None = None) -> WaferMaps:
    """Maps (and labels, split) from an npz in the ``X`` layout or the ``data``/``offsets`` one."""
    file = file or (Path(source).name if isinstance(source, (str, Path)) else "maps.npz")
    raw = Path(source).read_bytes() if isinstance(source, (str, Path)) else source
    raw = raw if isinstance(raw, bytes) else raw.read()
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        keys = {n[:-4] for n in archive.namelist() if n.endswith(".npy")}
        headers = {k: _npy_header(archive, k, file) for k in keys}
    except SchemaError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise SchemaError([Problem(f"not a readable .npz file ({exc})", file=file)]) from None
    if any(dtype.hasobject for _, dtype in headers.values()):
        raise SchemaError([Problem("object arrays are not accepted (npz files are never "
                                   "unpickled)", file=file)])
    if "X" in keys:
        layout, n = "npz X (maps, height, width)", _check_x_header(headers["X"], file, max_maps)
    elif {"data", "offsets", "orig_shape"} <= keys:
        layout = "npz data/offsets/orig_shape"
        n = _check_flat_header(headers, file, max_maps)
    else:
        raise SchemaError([Problem(f"an npz of maps needs 'X', or 'data', 'offsets' and "
                                   f"'orig_shape'; found {sorted(keys) or 'no arrays'}",
                                   file=file)])
    try:
        return _read_npz_arrays(raw, keys, n, file, split, layout)
    except (ValueError, EOFError, OSError, zipfile.BadZipFile) as exc:  # a damaged member
        if isinstance(exc, SchemaError):
            raise
        raise SchemaError([Problem(f"not a readable .npz file ({str(exc)[:120]})",
                                   file=file)]) from None


def _read_npz_arrays(raw: bytes, keys: set[str], n: int, file: str, split: str | None,
                     layout: str) -> WaferMaps:
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        labels = _labels(npz, n, file) if "y" in keys else None
        parts = _split(npz, n, file) if "split" in keys else None
        keep = np.arange(n)
        if split is not None:
            if parts is None:
                raise SchemaError([Problem(f"split '{split}' asked for, but the file has no "
                                           f"'split' array", file=file)])
            keep = np.flatnonzero(parts == split)
            if keep.size == 0:
                raise SchemaError([Problem(f"no map is in split '{split}' (splits: "
                                           f"{sorted(set(parts.tolist()))})", file=file)])
        if "X" in keys:
            maps = _x_maps(npz["X"], keep, file)
        else:
            maps = _flat_maps(npz["data"], npz["offsets"], npz["orig_shape"], keep, file)
    names = [f"{file}#{i + 1}" for i in keep]
    return WaferMaps(maps, names, None if labels is None else labels[keep],
                     None if parts is None else parts[keep], layout)


def _check_x_header(header, file, max_maps) -> int:
    shape, dtype = header
    if len(shape) != 3:
        raise SchemaError([Problem(f"'X' must be (maps, height, width), got shape {shape}",
                                   file=file)])
    if dtype.kind not in "biuf":
        raise SchemaError([Problem(f"'X' must hold numbers, got dtype {dtype}", file=file)])
    problems = _count_problems(shape[0], file, max_maps) + _side_problems(shape[1:], file, None)
    _raise(problems)
    return int(shape[0])


def _check_flat_header(headers, file, max_maps) -> int:
    (data_shape, data_dtype), (off_shape, off_dtype), (shape_shape, shape_dtype) = (
        headers["data"], headers["offsets"], headers["orig_shape"])
    problems = []
    if len(data_shape) != 1 or data_dtype.kind not in "biuf":
        problems.append(Problem(f"'data' must be a 1-D array of numbers, got {data_shape} "
                                f"{data_dtype}", file=file))
    if len(shape_shape) != 2 or shape_shape[1] != 2 or shape_dtype.kind not in "iu":
        problems.append(Problem(f"'orig_shape' must be (maps, 2) integers, got {shape_shape} "
                                f"{shape_dtype}", file=file))
    n = int(shape_shape[0]) if shape_shape else 0
    if off_shape != (n + 1,) or off_dtype.kind not in "iu":
        problems.append(Problem(f"'offsets' must be {n + 1} integers (one more than the maps), "
                                f"got {off_shape} {off_dtype}", file=file))
    problems += _count_problems(n, file, max_maps)
    if data_shape and data_shape[0] > n * MAX_SIDE * MAX_SIDE:
        problems.append(Problem(f"'data' holds {data_shape[0]} cells, more than {n} maps of "
                                f"at most {MAX_SIDE} x {MAX_SIDE}", file=file))
    _raise(problems)
    return n


def _count_problems(n: int, file, max_maps) -> list[Problem]:
    if n == 0:
        return [Problem("the file holds no maps", file=file)]
    if max_maps is not None and n > max_maps:
        return [Problem(f"{n} maps in one file; at most {max_maps} are accepted", file=file)]
    return []


def _labels(npz, n: int, file: str) -> np.ndarray:
    y = npz["y"]
    if y.shape != (n,):
        raise SchemaError([Problem(f"'y' must hold one label per map ({n}), got shape "
                                   f"{y.shape}", file=file)])
    if y.dtype.kind in "iu":
        names = npz["classes"].astype(str) if "classes" in npz.files else np.array(CLASSES)
        bad = np.flatnonzero((y < 0) | (y >= len(names)))
        if bad.size:
            raise SchemaError([Problem(f"label {y[i]} is not a class index (0-{len(names) - 1})",
                                       file=file, index=int(i) + 1) for i in bad[:10]])
        y = names[y]
    y = y.astype(str)
    bad = np.flatnonzero(~np.isin(y, CLASSES))
    if bad.size:
        raise SchemaError([Problem(f"label '{y[i]}' is not one of {', '.join(CLASSES)}",
                                   file=file, index=int(i) + 1) for i in bad[:10]])
    return y


def _split(npz, n: int, file: str) -> np.ndarray:
    parts = npz["split"]
    if parts.shape != (n,):
        raise SchemaError([Problem(f"'split' must hold one entry per map ({n}), got shape "
                                   f"{parts.shape}", file=file)])
    return parts.astype(str)


def _x_maps(X: np.ndarray, keep: np.ndarray, file: str) -> list[np.ndarray]:
    X = X[keep] if len(keep) != len(X) else X
    problems = []
    if X.dtype != np.uint8 or X.max() > FAIL:
        bad = np.flatnonzero(((X != OFF) & (X != PASS) & (X != FAIL)).any(axis=(1, 2)))
        for i in bad[:10]:
            problems += check_grid(X[i], file, int(keep[i]) + 1, max_cells=1)
        if len(bad) > 10:
            problems.append(Problem(f"{len(bad) - 10} more maps hold cells other than 0, 1, 2",
                                    file=file))
    off = np.flatnonzero(~(X != OFF).any(axis=(1, 2)))
    problems += [Problem("the map is entirely off-wafer (no die is 1 or 2)", file=file,
                         index=int(keep[i]) + 1) for i in off[:10]]
    _raise(problems)
    X = X.astype(np.uint8, copy=False)
    return list(X)


def _flat_maps(data, offsets, shapes, keep, file) -> list[np.ndarray]:
    offsets = offsets.astype(np.int64)
    shapes = shapes.astype(np.int64)
    sizes = np.diff(offsets)
    problems = []
    if offsets[0] != 0 or offsets[-1] != len(data) or (sizes < 0).any():
        problems.append(Problem(f"'offsets' must rise from 0 to the length of 'data' "
                                f"({len(data)})", file=file))
    for i in np.flatnonzero((shapes <= 0).any(axis=1) | (shapes > MAX_SIDE).any(axis=1))[:10]:
        problems += _side_problems(shapes[i], file, int(i) + 1)
    for i in np.flatnonzero(shapes.prod(axis=1) != sizes)[:10]:
        if (shapes[i] > 0).all():
            problems.append(Problem(f"'orig_shape' says {shapes[i][0]} x {shapes[i][1]} but "
                                    f"'offsets' give {sizes[i]} cells", file=file,
                                    index=int(i) + 1))
    _raise(problems)
    if data.dtype != np.uint8 or (len(data) and data.max() > FAIL):
        bad_cells = np.flatnonzero((data != OFF) & (data != PASS) & (data != FAIL))
        if bad_cells.size:
            owners = np.unique(np.searchsorted(offsets, bad_cells, side="right") - 1)
            for i in owners[:10]:
                grid = data[offsets[i]:offsets[i + 1]].reshape(shapes[i])
                problems += check_grid(grid, file, int(i) + 1, max_cells=1)
            if len(owners) > 10:
                problems.append(Problem(f"{len(owners) - 10} more maps hold cells other than "
                                        f"0, 1, 2", file=file))
    on_wafer = np.add.reduceat((data != OFF).astype(np.int64), offsets[:-1]) \
        if len(data) else np.zeros(len(sizes))
    for i in np.flatnonzero(on_wafer == 0)[:10]:
        problems.append(Problem("the map is entirely off-wafer (no die is 1 or 2)", file=file,
                                index=int(i) + 1))
    _raise(problems)
    data = data.astype(np.uint8, copy=False)
    return [data[offsets[i]:offsets[i + 1]].reshape(shapes[i]) for i in keep]


def write_npz(path, maps: Sequence[np.ndarray], labels: Sequence[str] | None = None, *,
              layout: str = "flat", split: Sequence[str] | None = None) -> None:
    """Write maps as an npz in either layout (``"flat"``: data/offsets/orig_shape; ``"X"``:
    every map must have the same shape)."""
    arrays: dict[str, np.ndarray] = {"classes": np.array(CLASSES)}
    if layout == "X":
        arrays["X"] = np.stack([np.asarray(m, dtype=np.uint8) for m in maps])
    else:
        arrays["data"] = np.concatenate([np.asarray(m, dtype=np.uint8).ravel() for m in maps])
        arrays["offsets"] = np.concatenate([[0], np.cumsum([np.size(m) for m in maps])])
        arrays["orig_shape"] = np.array([np.shape(m) for m in maps], dtype=np.int16)
    if labels is not None:
        arrays["y"] = np.asarray(labels, dtype=str)
    if split is not None:
        arrays["split"] = np.asarray(split, dtype=str)
    np.savez_compressed(path, **arrays)


class NpzMaps:
    """An npz of maps read a chunk at a time, so a file of 100,000 maps is never whole in
    memory (a batch job's file): the headers, the labels and, for the flat layout, the
    offsets and shapes are read when it is opened (the checks :func:`read_npz` makes before
    any map is built); ``X`` or ``data`` is then read from its member in pieces
    (:meth:`chunks`), each piece checked as :func:`read_npz` checks the whole. Problems are
    located by the map's number in the file. ``split`` is ignored (every map is read)."""

    def __init__(self, path: Path | str, file: str | None = None):
        self.path = Path(path)
        self.file = file or self.path.name
        try:
            with zipfile.ZipFile(self.path) as archive:
                keys = {n[:-4] for n in archive.namelist() if n.endswith(".npy")}
                headers = {k: _npy_header(archive, k, self.file) for k in keys}
        except SchemaError:
            raise
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
            raise SchemaError([Problem(f"not a readable .npz file ({exc})",
                                       file=self.file)]) from None
        if any(dtype.hasobject for _, dtype in headers.values()):
            raise SchemaError([Problem("object arrays are not accepted (npz files are never "
                                       "unpickled)", file=self.file)])
        if "X" in keys:
            self.layout = "npz X (maps, height, width)"
            self.n = _check_x_header(headers["X"], self.file, None)
            self.key = "X"
        elif {"data", "offsets", "orig_shape"} <= keys:
            self.layout = "npz data/offsets/orig_shape"
            self.n = _check_flat_header(headers, self.file, None)
            self.key = "data"
        else:
            raise SchemaError([Problem(f"an npz of maps needs 'X', or 'data', 'offsets' and "
                                       f"'orig_shape'; found {sorted(keys) or 'no arrays'}",
                                       file=self.file)])
        self.shape, self.dtype = headers[self.key]
        self.offsets = self.shapes = None
        try:
            with np.load(self.path, allow_pickle=False) as npz:  # members read when asked
                self.labels = _labels(npz, self.n, self.file) if "y" in keys else None
                if self.key == "data":
                    self.offsets = npz["offsets"].astype(np.int64)
                    self.shapes = npz["orig_shape"].astype(np.int64)
        except (ValueError, EOFError, OSError, zipfile.BadZipFile) as exc:
            if isinstance(exc, SchemaError):
                raise
            raise SchemaError([Problem(f"not a readable .npz file ({str(exc)[:120]})",
                                       file=self.file)]) from None
        if self.offsets is not None and (self.offsets[0] != 0
                                         or self.offsets[-1] != self.shape[0]
                                         or (np.diff(self.offsets) < 0).any()):
            raise SchemaError([Problem(f"'offsets' must rise from 0 to the length of 'data' "
                                       f"({self.shape[0]})", file=self.file)])

    def __len__(self) -> int:
        return self.n

    def chunks(self, maps: int = 1000, cells: int = 4_000_000) -> Iterator[WaferMaps]:
        """The maps in file order, at most ``maps`` (and about ``cells`` dies) at a time;
        names ``file#k``, labels (when the file has them) beside them."""
        with zipfile.ZipFile(self.path) as archive, \
                archive.open(f"{self.key}.npy") as handle:
            version = np.lib.format.read_magic(handle)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            _, fortran, _ = read(handle)
            if fortran and len(self.shape) > 1:
                raise SchemaError([Problem(f"'{self.key}' is stored in Fortran order, which "
                                           f"cannot be read a part at a time; save it with "
                                           f"numpy's default (C) order", file=self.file)])
            start = 0
            while start < self.n:
                stop = self._stop(start, maps, cells)
                yield self._chunk(handle, start, stop)
                start = stop

    def _stop(self, start: int, maps: int, cells: int) -> int:
        if self.offsets is None:
            per_map = max(1, int(self.shape[1]) * int(self.shape[2]))
            return min(self.n, start + max(1, min(maps, cells // per_map)))
        limit = np.searchsorted(self.offsets, self.offsets[start] + cells, side="right") - 1
        return min(self.n, start + maps, max(start + 1, int(limit)))

    def _read(self, handle, count: int) -> np.ndarray:
        size = count * self.dtype.itemsize
        raw = handle.read(size)
        if len(raw) != size:
            raise SchemaError([Problem(f"'{self.key}' ends early; the file is damaged",
                                       file=self.file)])
        return np.frombuffer(raw, dtype=self.dtype)

    def _chunk(self, handle, start: int, stop: int) -> WaferMaps:
        keep = np.arange(start, stop)
        if self.offsets is None:
            h, w = int(self.shape[1]), int(self.shape[2])
            X = self._read(handle, (stop - start) * h * w).reshape(stop - start, h, w)
            grids = _x_maps(X, keep, self.file)
        else:
            first = self.offsets[start]
            data = self._read(handle, int(self.offsets[stop] - first))
            try:
                grids = _flat_maps(data, self.offsets[start:stop + 1] - first,
                                   self.shapes[start:stop], np.arange(stop - start), self.file)
            except SchemaError as exc:  # numbered within the piece: number them in the file
                raise SchemaError([replace(p, index=p.index + start) if p.index else p
                                   for p in exc.problems]) from None
        labels = None if self.labels is None else self.labels[start:stop]
        return WaferMaps(grids, [f"{self.file}#{i + 1}" for i in keep], labels,
                         layout=self.layout)


# -- CSV grids ----------------------------------------------------------------------------------
LABEL_LINE = "label,"


def read_csv_grid(source, file: str | None = None, *, max_maps: int | None = None) -> WaferMaps:
    """One map per block of lines; cells ``0``/``1``/``2`` separated by commas.

    A block may start with a line ``label,<class>`` (``label,Center``): the map's true class,
    so a labelled batch can be scored against its labels. Unlabelled blocks get ``""``.
    """
    file, text = _text(source, file, "map.csv")
    blocks: list[list[tuple[int, str]]] = [[]]
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            blocks[-1].append((number, line))
        elif blocks[-1]:
            blocks.append([])
    blocks = [b for b in blocks if b]
    if not blocks:
        raise SchemaError([Problem("the file holds no map (it is empty)", file=file)])
    _raise(_count_problems(len(blocks), file, max_maps))
    grids, problems, labels = [], [], []
    several = len(blocks) > 1
    for k, block in enumerate(blocks):
        index = k + 1 if several else None
        label = ""
        if block[0][1].strip().lower().startswith(LABEL_LINE):
            number, line = block.pop(0)
            label = line.strip()[len(LABEL_LINE):].strip()
            if label not in CLASSES:
                problems.append(Problem(f"label '{label[:40]}' is not one of "
                                        f"{', '.join(CLASSES)}", file=file, index=index,
                                        row=number))
            if not block:
                problems.append(Problem("a label line with no map under it", file=file,
                                        index=index, row=number))
                continue
        labels.append(label)
        if len(block) > MAX_SIDE:
            problems.append(Problem(f"the map has {len(block)} rows; at most {MAX_SIDE} are "
                                    f"accepted", file=file, index=index))
            continue
        rows, bad = [], 0
        width = None
        for number, line in block:
            cells = [c.strip() for c in line.split(",")]
            if width is None:
                width = len(cells)
                if width > MAX_SIDE:
                    problems.append(Problem(f"the map has {width} columns; at most {MAX_SIDE} "
                                            f"are accepted", file=file, index=index,
                                            row=number))
                    break
            elif len(cells) != width:
                problems.append(Problem(f"{len(cells)} cells in this row, but the map's first "
                                        f"row has {width} (rows must all be the same length)",
                                        file=file, index=index, row=number))
                continue
            codes = []
            for j, cell in enumerate(cells):
                if cell in ("0", "1", "2"):
                    codes.append(int(cell))
                else:
                    codes.append(0)
                    bad += 1
                    if bad <= 3:
                        problems.append(Problem(
                            f"'{cell}' is not a die code (0 off-wafer, 1 pass, 2 fail)"
                            if cell else "empty cell (expected 0, 1 or 2)",
                            file=file, index=index, row=number, column=str(j + 1)))
            rows.append(codes)
        if bad > 3:
            problems.append(Problem(f"{bad - 3} more cells are not 0, 1 or 2", file=file,
                                    index=index))
        if rows and not bad and len(problems) == 0:
            grid = np.array(rows, dtype=np.uint8)
            problems += check_grid(grid, file, index)
            grids.append(grid)
    _raise(problems)
    found = _finish(grids, file, "csv grid")
    if any(labels):
        found.labels = np.array(labels, dtype=str)
    return found


def _text(source, file: str | None, default: str) -> tuple[str, str]:
    if isinstance(source, (str, Path)) and not (isinstance(source, str) and "\n" in source):
        path = Path(source)
        return file or path.name, _decode(path.read_bytes(), file or path.name)
    if isinstance(source, bytes):
        return file or default, _decode(source, file or default)
    return file or default, source


def _decode(raw: bytes, file: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SchemaError([Problem(f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                                   file=file)]) from None


# -- JSON arrays ----------------------------------------------------------------------------------
def read_json_maps(source, file: str | None = None, *, max_maps: int | None = None
                   ) -> WaferMaps:
    """One map (nested lists), a list of maps, or ``{"maps": [...]}``."""
    if isinstance(source, (list, dict)):
        file, document = file or "maps.json", source
    else:
        file, text = _text(source, file, "maps.json")
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SchemaError([Problem(f"not valid JSON ({exc.msg} at line {exc.lineno}, "
                                       f"column {exc.colno})", file=file)]) from None
    return maps_from_lists(document, file, max_maps=max_maps)


def maps_from_lists(document, file: str | None = None, *, max_maps: int | None = None
                    ) -> WaferMaps:
    """Maps from JSON-like lists (what an API body holds); see :func:`read_json_maps`."""
    if isinstance(document, dict):
        if "maps" not in document:
            raise SchemaError([Problem("a JSON object must hold a 'maps' list", file=file)])
        document = document["maps"]
    if not isinstance(document, list) or not document:
        raise SchemaError([Problem("expected a map (a list of rows) or a list of maps, and "
                                   "at least one", file=file)])
    first = document[0]
    single = isinstance(first, list) and (not first or not isinstance(first[0], list))
    items = [document] if single else document
    _raise(_count_problems(len(items), file, max_maps))
    grids, problems = [], []
    for k, item in enumerate(items):
        index = None if single else k + 1
        found = _list_grid(item, file, index)
        if isinstance(found, list):
            problems += found
        else:
            problems += check_grid(found, file, index)
            grids.append(found)
    _raise(problems)
    return _finish(grids, file or "maps.json", "json arrays")


def _list_grid(item, file, index) -> np.ndarray | list[Problem]:
    if not isinstance(item, list) or not item:
        return [Problem("a map must be a non-empty list of rows", file=file, index=index)]
    if len(item) > MAX_SIDE:
        return [Problem(f"the map has {len(item)} rows; at most {MAX_SIDE} are accepted",
                        file=file, index=index)]
    problems: list[Problem] = []
    width = len(item[0]) if isinstance(item[0], list) else None
    if width is not None and width > MAX_SIDE:
        return [Problem(f"the map has {width} columns; at most {MAX_SIDE} are accepted",
                        file=file, index=index)]
    bad = 0
    for r, row in enumerate(item):
        if not isinstance(row, list):
            problems.append(Problem("a row must be a list of die codes", file=file, index=index,
                                    row=r + 1))
            continue
        if len(row) != width:
            problems.append(Problem(f"{len(row)} cells in this row, but the first row has "
                                    f"{width} (rows must all be the same length)", file=file,
                                    index=index, row=r + 1))
            continue
        for c, cell in enumerate(row):
            if type(cell) is not int or cell not in (OFF, PASS, FAIL):
                bad += 1
                if bad <= 3:
                    problems.append(Problem(f"{json.dumps(cell)} is not a die code (0 "
                                            f"off-wafer, 1 pass, 2 fail)", file=file,
                                            index=index, row=r + 1, column=str(c + 1)))
    if bad > 3:
        problems.append(Problem(f"{bad - 3} more cells are not 0, 1 or 2", file=file,
                                index=index))
    if problems:
        return problems
    if width == 0:
        return [Problem("the map is empty (rows without cells)", file=file, index=index)]
    return np.array(item, dtype=np.uint8)


# -- images ---------------------------------------------------------------------------------------
def read_image(source, file: str | None = None) -> WaferMaps:
    """One map from a PNG or JPEG picture (one pixel per die; see the module docstring)."""
    from PIL import Image, UnidentifiedImageError

    file = file or (Path(source).name if isinstance(source, (str, Path)) else "map.png")
    raw = Path(source).read_bytes() if isinstance(source, (str, Path)) else source
    try:
        with Image.open(io.BytesIO(raw)) as image:
            if image.format not in ("PNG", "JPEG"):
                raise SchemaError([Problem(f"a {image.format} image; PNG or JPEG expected",
                                           file=file)])
            width, height = image.size  # read from the header, before decoding
            _raise(_side_problems((height, width), file, None))
            image.load()
            grid = image_to_grid(image, file)
    except SchemaError:
        raise
    except UnidentifiedImageError:
        raise SchemaError([Problem("not a readable PNG or JPEG image (unknown format or "
                                   "corrupt data)", file=file)]) from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise SchemaError([Problem(f"not a readable PNG or JPEG image ({exc})",
                                   file=file)]) from None
    _raise(check_grid(grid, file))
    return _finish([grid], file, "image")


def image_to_grid(image, file: str | None = None) -> np.ndarray:
    """Die codes from a decoded PIL image (grey levels or palette colours, alpha = off-wafer)."""
    if image.mode.startswith("I"):  # 16- or 32-bit grey: codes, or levels of the full range
        raw = np.asarray(image).astype(np.int64)
        if raw.max() <= FAIL and raw.min() >= 0:
            return raw.astype(np.uint8)
        top = 65535 if image.mode.startswith("I;16") else max(int(raw.max()), 1)
        return np.digitize(raw * 255.0 / top, GREY_LEVELS).astype(np.uint8)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info)
    rgba = np.asarray(image.convert("RGBA"), dtype=np.int16)
    rgb, alpha = rgba[..., :3], rgba[..., 3]
    spread = rgb.max(axis=2) - rgb.min(axis=2)
    if spread.max() <= 24:  # grey
        grey = rgb.mean(axis=2)
        if grey.max() <= FAIL and np.all(grey == np.round(grey)):
            grid = grey.astype(np.uint8)
        else:
            grid = np.digitize(grey, GREY_LEVELS).astype(np.uint8)
    else:
        colours = np.array([c for p in PALETTES.values() for c in p], dtype=np.float64)
        codes = np.array([k for p in PALETTES.values() for k in range(len(p))], dtype=np.uint8)
        pixels = rgb.reshape(-1, 3).astype(np.float64)
        distance = np.sqrt(((pixels[:, None, :] - colours[None]) ** 2).sum(axis=2))
        nearest = distance.argmin(axis=1)
        unmatched = distance[np.arange(len(pixels)), nearest] > COLOUR_TOLERANCE
        if has_alpha:
            unmatched &= alpha.reshape(-1) >= 128
        if unmatched.mean() > MAX_UNMATCHED:
            example = tuple(int(v) for v in pixels[np.flatnonzero(unmatched)[0]])
            raise SchemaError([Problem(
                f"{unmatched.mean():.0%} of the pixels match none of the accepted colours "
                f"(e.g. RGB {example}); use grey levels or the FabLens or viridis palette",
                file=file)])
        grid = codes[nearest].reshape(rgb.shape[:2])
    if has_alpha:
        grid = np.where(alpha < 128, OFF, grid).astype(np.uint8)
    return grid


# -- any file -------------------------------------------------------------------------------------
def sniff(raw: bytes, file: str) -> str:
    """The reader for a file: by extension, else by its first bytes."""
    suffix = Path(file).suffix.lower()
    if suffix in EXTENSIONS:
        return ".jpg" if suffix == ".jpeg" else suffix
    head = raw[:8]
    if head.startswith(b"\x89PNG"):
        return ".png"
    if head.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if head.startswith(b"PK\x03\x04"):
        return ".npz"
    if head.lstrip()[:1] in (b"[", b"{"):
        return ".json"
    if head[:1] in (b"0", b"1", b"2"):
        return ".csv"
    raise SchemaError([Problem(f"not a wafer-map file: expected one of "
                               f"{', '.join(EXTENSIONS)}", file=file)])


def read_maps(source, file: str | None = None, *, max_maps: int | None = None,
              split: str | None = None) -> WaferMaps:
    """Maps from any accepted file (path, or bytes with ``file`` naming it)."""
    if isinstance(source, (str, Path)):
        file = file or Path(source).name
        source = Path(source).read_bytes()
    file = file or "upload"
    kind = sniff(source, file)
    if kind == ".npz":
        return read_npz(source, file, split=split, max_maps=max_maps)
    if kind == ".csv":
        return read_csv_grid(source, file, max_maps=max_maps)
    if kind == ".json":
        return read_json_maps(source, file, max_maps=max_maps)
    return read_image(source, file)


# --- the training data: WM-811K's npz, its splits and its reference -------------------------

DATA_FILES = ("wafer_maps_orig.npz", "wafer_maps_64.npz")


def find_data(path: Path) -> Path:
    """The npz to train on: ``path`` itself, or WM-811K's file in it or in its ``wm811k/``."""
    path = Path(path)
    if path.is_file():
        return path
    for folder in (path, path / "wm811k"):
        for name in DATA_FILES:
            if (folder / name).is_file():
                return folder / name
    raise FileNotFoundError(f"no {' or '.join(DATA_FILES)} in {path} or {path / 'wm811k'}")


def class_counts(labels: np.ndarray) -> dict[str, int]:
    """Maps per class, in the model's class order."""
    return {c: int(np.sum(labels == c)) for c in CLASSES}


def load_training_data(path: Path, subset: int | None = None, seed: int = 0
                       ) -> tuple[WaferMaps, WaferMaps, dict]:
    """The train and val splits and the data reference (name, sha256, counts; no path).

    ``subset`` keeps a stratified random sample of that many train maps (quick experiments).
    """
    file = find_data(path)
    train = read_npz(file, split="train")
    val = read_npz(file, split="val")
    if train.labels is None:
        raise ValueError(f"{file.name} has no labels ('y'); cannot train")
    if subset is not None and subset < len(train):
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(train), size=subset, replace=False))
        train = WaferMaps([train.maps[i] for i in keep], [train.names[i] for i in keep],
                          train.labels[keep], train.split[keep], train.layout)
    reference = {"name": "WM-811K labelled subset (MIR Lab, NTU)" if file.name in DATA_FILES
                 else file.stem,
                 "file": file.name, "sha256": sha256(file), "layout": train.layout,
                 "rows": {"train": len(train), "val": len(val)},
                 "class_counts": {"train": class_counts(train.labels),
                                  "val": class_counts(val.labels)}}
    if subset is not None:
        reference["train_subset"] = {"maps": len(train), "seed": seed}
    return train, val, reference
