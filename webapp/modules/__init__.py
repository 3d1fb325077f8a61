"""The module registry: one line per FabLens module, ready or planned.

Adding a ready module is a package ``webapp.modules.<name>`` whose ``MODULE`` is a
:class:`webapp.registry.ModuleSpec`, and replacing its ``planned(...)`` line below with its
name. The types and lookups live in :mod:`webapp.registry` (re-exported here for the modules'
packages).
"""
from __future__ import annotations

from webapp.registry import (ModuleExamples, ModuleSpec, ResultsDecision,  # noqa: F401
                             UploadExample, check_pipelines, get_module, planned, ready_modules,
                             registered, registry_problems)

REGISTRY: tuple[str | ModuleSpec, ...] = (
    "sensor",
    "wafermap",
    "timeseries",
    "inspection",
)
