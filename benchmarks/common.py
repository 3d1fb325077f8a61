"""What every benchmark shares: generated sensor batches and one way to report results.

Each benchmark prints its results as JSON, writes them to ``benchmarks/out/<name>.json`` and,
with ``--markdown PATH`` (``-`` for stderr), a Markdown snippet for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "benchmarks" / "out"

logger = logging.getLogger(__name__)


def sample_model() -> dict:
    """The release's sample statistics (``sample_model.json``), hash-checked by the predictor."""
    from pipelines.sensor.predict import SensorPredictor

    return SensorPredictor(ROOT / "artifacts" / "sensor").sample_model


def sensor_csv(rows: int, seed: int = 1, model: dict | None = None) -> bytes:
    """A generated batch CSV (Wafer, Sensor-1..590) of ``rows`` synthetic wafers."""
    from pipelines.sensor.samples import sensor_sample

    frame = sensor_sample(model or sample_model(), n_rows=rows, seed=seed)
    return frame.to_csv(index=False).encode()


def log_to_stderr() -> None:
    """Send log records to stderr, so that stdout holds only the JSON results (the app logs to
    stdout only when nothing configured logging before it)."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def add_markdown_option(parser: argparse.ArgumentParser) -> None:
    """``--markdown PATH``: also write the Markdown snippet (``-``: stderr; stdout has the JSON)."""
    parser.add_argument("--markdown", metavar="PATH",
                        help="write a Markdown snippet for BENCHMARKS.md ('-' for stderr)")


def emit(name: str, results: dict, markdown: list[str], markdown_path: str | None) -> None:
    """Print ``results`` as JSON, save them to ``benchmarks/out/<name>.json``, write the snippet."""
    OUT_DIR.mkdir(exist_ok=True)
    text = json.dumps(results, indent=2)
    (OUT_DIR / f"{name}.json").write_text(text + "\n")
    print(text)
    if markdown_path == "-":
        print("\n".join(markdown), file=sys.stderr)
    elif markdown_path:
        Path(markdown_path).write_text("\n".join(markdown) + "\n")
        logger.info("wrote %s", markdown_path)
