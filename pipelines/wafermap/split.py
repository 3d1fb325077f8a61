"""Split a large npz of wafer maps into parts one predict request accepts.

``python -m pipelines.wafermap.split wafer_maps_64.npz --maps 1000 --out parts/`` writes
``wafer_maps_64.part001.npz``, ... in the file's own layout, with its labels and split, so
each part can be sent to ``POST /api/v1/wafermap/predict`` (at most ``WAFERMAP_MAX_MAPS``
maps, 1,000 by default). WM-811K's 49,798 maps become 50 parts.
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Iterator

from pipelines.wafermap.ingest import read_npz, write_npz


def split_npz(source: Path | bytes, maps_per_part: int, file: str | None = None
              ) -> Iterator[tuple[int, bytes]]:
    """``(first map's 1-based number, npz bytes)`` for each part of at most ``maps_per_part``
    maps; the flat layout unless the source holds ``X`` (then ``X``), labels and split kept."""
    if maps_per_part < 1:
        raise ValueError("maps_per_part must be at least 1")
    maps = read_npz(source, file)
    layout = "X" if maps.layout.startswith("npz X") else "flat"
    for start in range(0, len(maps), maps_per_part):
        stop = start + maps_per_part
        buffer = io.BytesIO()
        write_npz(buffer, maps.maps[start:stop],
                  None if maps.labels is None else maps.labels[start:stop], layout=layout,
                  split=None if maps.split is None else maps.split[start:stop])
        yield start + 1, buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.wafermap.split",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("npz", type=Path, help="an npz of maps (either layout)")
    parser.add_argument("--maps", type=int, default=1000, help="maps per part (default 1000)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the parts")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.npz.name.removesuffix(".npz")
    count = 0
    for count, (_, data) in enumerate(split_npz(args.npz, args.maps), start=1):
        (args.out / f"{stem}.part{count:03d}.npz").write_bytes(data)
    print(f"{count} parts of at most {args.maps} maps in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
