"""Recalibrate a module's threshold on recent data: ``python -m pipelines.recalibrate <module> [options]``."""
from __future__ import annotations

from pipelines.core.cli import main

if __name__ == "__main__":
    raise SystemExit(main("recalibrate"))
