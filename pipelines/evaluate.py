"""Evaluate a module's models: ``python -m pipelines.evaluate <module> [options]``.

Prints one JSON document on stdout; progress goes to stderr.
"""
from __future__ import annotations

from pipelines.core.cli import main

if __name__ == "__main__":
    raise SystemExit(main("evaluate"))
