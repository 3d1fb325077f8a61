"""The record of evaluate runs: a test set is meant to be scored once, at the end.

Every evaluate run that scores test data appends one JSON line to
``evaluations/<module>.jsonl`` in the repository (or the file given): when it ran, each data
file by name and sha256 (the first one names the test data), the part of the file scored
(``--split``), the release that scored it and its headline figures. The run's JSON document
says how many runs that file (and part) has had, this one included; the committed lines show
how often a visible test set was looked at.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from pipelines.core.artifacts import sha256

EVALUATIONS_DIR = Path(__file__).resolve().parents[2] / "evaluations"


def record_file(module: str) -> Path:
    """The repository's record of ``module``'s evaluate runs."""
    return EVALUATIONS_DIR / f"{module}.jsonl"


def record_run(record: Path, files: dict[str, Path], release: dict, figures: dict, *,
               part: str | None = None) -> dict:
    """Append one line to ``record``: ``files`` (``{role: path}``, the test data first) by
    name and sha256, ``part``, the release (``created``, ``default_model``) and ``figures``.
    Returns ``{"file", "runs_on_this_test_file", "test_sha256"}``: how many lines the record
    holds for the first file's content and this part, this one included."""
    record = Path(record)
    data = {role: {"file": Path(path).name, "sha256": sha256(Path(path))}
            for role, path in files.items()}
    first = next(iter(data))
    digest = data[first]["sha256"]
    line = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **data,
            **({"part": part} if part is not None else {}),
            "release": {k: release.get(k) for k in ("created", "default_model")}, **figures}
    earlier = 0
    if record.exists():
        for text in record.read_text().splitlines():
            if not text.strip():
                continue
            seen = json.loads(text)
            if seen.get(first, {}).get("sha256") == digest and seen.get("part") == part:
                earlier += 1
    record.parent.mkdir(parents=True, exist_ok=True)
    with record.open("a") as f:
        f.write(json.dumps(line) + "\n")
    return {"file": str(record), "runs_on_this_test_file": earlier + 1, "test_sha256": digest}
