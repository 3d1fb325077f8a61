"""Pipeline modules: every sub-package of ``pipelines`` other than ``core`` is one.

A module's ``__init__`` defines ``MODULE = PipelineModule(...)`` naming its detectors, its
command line and the small examples the contract tests fit every detector on. Nothing heavy
is imported here: the targets are strings, imported when used. A sub-package without a
``MODULE`` (or with one of another name) is a :class:`RegistryError`, never skipped: its
detectors would escape the contract tests.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping


class RegistryError(RuntimeError):
    """A module registry that does not add up: a package without its entry, or the reverse."""


@dataclass(frozen=True)
class PipelineModule:
    """What the core needs to know about a module."""

    name: str
    # model name -> "package.module:Class" of a BaseDetector subclass
    detectors: Mapping[str, str] = field(default_factory=dict)
    # a module with add_arguments(parser, verb) and run(args, verb, progress) -> dict | None
    cli: str | None = None
    # "package.module:function" returning {model: DetectorExample} for the contract tests
    examples: str | None = None
    # the module's batch adapter for ``python -m pipelines.score`` (``pipelines.core.batch``):
    # a module with PREDICTOR, NOUN, EXTENSIONS, partitions(...) and score_partition(...)
    batch: str | None = None

    def load_examples(self) -> dict:
        """The contract examples (small synthetic data and fast parameters per detector)."""
        if self.examples is None:
            return {}
        path, _, func = self.examples.partition(":")
        return getattr(importlib.import_module(path), func)()


@dataclass(frozen=True)
class DetectorExample:
    """A detector the contract tests can fit in seconds: fast parameters and synthetic data."""

    params: dict
    X: object
    y: object = None
    feature_names: list[str] | None = None
    # how close scores must be after save -> load (ONNX export: float32 rounding)
    atol: float = 1e-6


@lru_cache(maxsize=None)
def _discover() -> tuple[PipelineModule, ...]:
    import pipelines

    found = []
    for info in sorted(pkgutil.iter_modules(pipelines.__path__), key=lambda i: i.name):
        if not info.ispkg or info.name == "core":
            continue
        package = importlib.import_module(f"pipelines.{info.name}")
        found.append(_module_of(package, info.name))
    return tuple(found)


def _module_of(package, name: str) -> PipelineModule:
    """The package's ``MODULE``; a :class:`RegistryError` saying what to add otherwise."""
    module = getattr(package, "MODULE", None)
    if not isinstance(module, PipelineModule):
        found = "has none" if module is None else f"has a {type(module).__name__}"
        raise RegistryError(
            f"pipelines.{name} is a pipeline package but {found} for MODULE: add "
            f"`MODULE = PipelineModule(name={name!r}, detectors={{...}}, cli=..., "
            f"examples=...)` (from pipelines.core.modules) to pipelines/{name}/__init__.py, "
            f"or move the package out of pipelines/")
    if module.name != name:
        raise RegistryError(f"pipelines.{name}.MODULE is named {module.name!r}: a module's "
                            f"name is its package's, so set name={name!r}")
    return module


def discover() -> dict[str, PipelineModule]:
    """Every pipeline module, by name (found once per process)."""
    return {module.name: module for module in _discover()}


def get_module(name: str) -> PipelineModule:
    """One pipeline module; a clear error naming the known ones otherwise."""
    modules = discover()
    if name not in modules:
        raise KeyError(f"unknown module '{name}'; known: {', '.join(sorted(modules)) or 'none'}")
    return modules[name]
