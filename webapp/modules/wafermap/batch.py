"""Batch scoring of wafer maps on disk (a job: ``webapp/jobs``), as the predict API scores an
upload: the same readers and checks per file, the same scoring (:func:`score_maps`), results
table and CSV columns, drift and warnings, a chunk of maps at a time.

The data is one file (an npz, a CSV grid, a JSON file, an image) or a folder of them (an
input folder, or a zip the job unpacked), files in path order, named by their path under the
folder as a zip's members are in an upload. An **npz** is read ``CHUNK_MAPS`` maps at a time
from its member (:class:`pipelines.wafermap.ingest.NpzMaps`: the count, labels and shapes come
from its headers and small arrays), so a 100,000-map file is never whole in memory; it is
checked through once before its first map is scored, so a damaged map refuses the whole file
(left out with its reason, as an upload's file would be) and never half of it. Any other file
is read whole by the upload reader and may be at most the request limit
(``MAX_CONTENT_LENGTH``). Only one chunk's maps and results are alive at a time; what is kept
for the whole job is each map's predicted class and fail-die density (for drift).
"""
from __future__ import annotations

from pathlib import Path

from flask import current_app

from pipelines.core.problems import Problem, SchemaError
from pipelines.wafermap.ingest import EXTENSIONS, LABEL_LINE, NpzMaps, sniff
from pipelines.wafermap.reference import fail_density
from pipelines.wafermap.schema import NO_PATTERN
from webapp.modules.wafermap.parsing import WafermapRequest, _read_file, check_review_level
from webapp.modules.wafermap.service import results_frame, score_maps
from webapp.registry import BatchChunk, BatchScoring
from webapp.uploads import Rejections, UploadedBytes, files_on_disk

CHUNK_MAPS = 1000  # maps scored at a time (the predictor takes them 128 at a time)
CHUNK_CELLS = 4_000_000  # and about this many dies: a chunk of large maps holds fewer
HEAD = 8


def _kind(path: Path, name: str) -> str:
    with open(path, "rb") as handle:
        return sniff(handle.read(HEAD), name)


def _has_label_line(path: Path) -> bool:
    """Whether a CSV grid holds a ``label,<class>`` line (read line by line)."""
    with open(path, "rb") as handle:
        return any(line.strip().lower().startswith(LABEL_LINE.encode()) for line in handle)


def _checked(reader: NpzMaps) -> NpzMaps:
    """The npz, every map checked (read through once, a chunk at a time)."""
    for _ in reader.chunks(CHUNK_MAPS, CHUNK_CELLS):
        pass
    return reader


def _whole_file(path: Path, name: str, limit: int):
    """A file that is not an npz, read as an upload's file is (at most the request limit)."""
    size = path.stat().st_size
    if size > limit:
        raise SchemaError([Problem(f"{size:,} bytes; a file of maps other than an npz may be "
                                   f"at most {limit:,} (the request limit): split it, or send "
                                   f"the maps as an npz", file=name)])
    read, _ = _read_file(UploadedBytes(name, path.read_bytes()), 2**62, limit)
    return read


def score_file(predictor, path: Path, name: str, options: dict) -> BatchScoring:
    """The maps of ``path`` (called ``name``) classified chunk by chunk at ``options``' model
    and review level (the module's defaults when None)."""
    model = predictor.get(options.get("model"))  # an unknown model: a 400
    level = options.get("threshold")
    check_review_level(level)
    level = float(predictor.review_level if level is None else level)
    limit = int(current_app.config["MAX_CONTENT_LENGTH"])
    rejections = Rejections()
    kept: dict = {"classes": [], "densities": [], "n": 0}

    def opened() -> tuple[list, bool]:
        """Each file with its reader (an npz's headers read), and whether any has labels."""
        sources, labelled, total = [], False, 0
        for file, shown in files_on_disk(path, name, EXTENSIONS):
            kind = rejections.attempt(shown, _kind, file, shown)
            if kind is None:
                continue
            if kind == ".npz":
                reader = rejections.attempt(shown, NpzMaps, file, shown)
                if reader is None:
                    continue
                labelled = labelled or reader.labels is not None
                total = None if total is None else total + len(reader)
            else:
                reader = None
                labelled = labelled or (kind == ".csv" and _has_label_line(file))
                total = total + 1 if total is not None and kind in (".png", ".jpg") else None
            sources.append((file, shown, kind, reader))
        scoring.total = total
        return sources, labelled

    def scored(maps, names, labels, labelled: bool) -> BatchChunk:
        req = WafermapRequest(name, maps, names, "", review_level=level, model=model.name)
        run = score_maps(predictor, req)
        frame = results_frame(run, names, labels if labelled else None, first=kept["n"] + 1)
        kept["n"] += len(maps)
        kept["classes"] += [r["class"] for r in run.records]
        kept["densities"] += [fail_density(m) for m in maps]
        faulty = sum(1 for label in labels if label and label != NO_PATTERN) if labelled \
            else None
        return BatchChunk(frame, len(maps), run.n_review, faulty)

    def chunks():
        sources, labelled = opened()
        maps, names, labels = [], [], []
        for file, shown, kind, reader in sources:
            if reader is not None:  # an npz: checked whole, then scored a chunk at a time
                if rejections.attempt(shown, _checked, reader) is None:
                    continue
                if maps:
                    yield scored(maps, names, labels, labelled)
                    maps, names, labels = [], [], []
                for part in reader.chunks(CHUNK_MAPS, CHUNK_CELLS):
                    yield scored(part.maps, part.names, [""] * len(part) if part.labels is None
                                 else part.labels.tolist(), labelled)
                continue
            read = rejections.attempt(shown, _whole_file, file, shown, limit)
            if read is None:
                continue
            maps += read.maps
            names += read.names
            labels += [""] * len(read.maps) if read.labels is None else read.labels.tolist()
            if len(maps) >= CHUNK_MAPS or sum(m.size for m in maps) >= CHUNK_CELLS:
                yield scored(maps, names, labels, labelled)
                maps, names, labels = [], [], []
        if maps:
            yield scored(maps, names, labels, labelled)
        rejections.raise_if_all_rejected(kept["n"], f"{name} holds no maps")

    def finish() -> dict:
        return {"drift": predictor.drift(kept["classes"], densities=kept["densities"]),
                "warnings": rejections.warnings()}

    scoring = BatchScoring(model=model.name, model_version=model.version, threshold=level,
                           default_threshold=float(predictor.review_level), unit="maps",
                           chunks=iter(()), finish=finish)
    scoring.chunks = chunks()
    return scoring
