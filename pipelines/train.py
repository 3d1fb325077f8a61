"""Train a module's models: ``python -m pipelines.train <module> [options]`` (see ``--help``)."""
from __future__ import annotations

from pipelines.core.cli import main

if __name__ == "__main__":
    raise SystemExit(main("train"))
