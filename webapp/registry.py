"""The module registry's types and lookups: what the platform knows about each module.

The list itself is ``REGISTRY`` in ``webapp/modules/__init__.py`` (one line per module, ready
or planned); everything the platform needs to read it lives here, so platform code
(``pagekit``, ``runs``, ``predictors``, ``prediction``, ``api``, ``access``) imports this
module and never the modules' package. It feeds the navigation, the home cards, blueprint
registration, model loading, ``/api/v1/models`` and the contract tests. A ready module is a
package ``webapp.modules.<name>`` whose ``MODULE`` is a :class:`ModuleSpec`. The registry and
the pipeline packages must agree (:func:`check_pipelines`, run by ``create_app`` and the
contract tests): a ready module serves the pipeline module of its name, and every pipeline
module is listed, ready or planned.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable, Iterator

from flask import Blueprint


@dataclass(frozen=True)
class UploadExample:
    """A file the module's predict API accepts (or refuses, with ``needle`` in the message)."""

    filename: str
    data: bytes
    n_rows: int | None = None
    needle: str | None = None


@dataclass(frozen=True)
class ModuleExamples:
    """Requests the contract tests send to every ready module.

    ``good`` must name some rows with text starting ``=``, ``+``, ``-`` or ``@`` so the
    results CSV shows its formula guard; ``bad`` must be refused with a 4xx naming the problem.
    """

    good: UploadExample
    bad: UploadExample


@dataclass(frozen=True)
class ResultsDecision:
    """How a module's stored results CSV marks a flagged item, so History can re-decide it.

    ``flag`` is the True/False column, ``threshold`` the column holding the level it was
    decided at; an item is flagged when its score is at or above the threshold, or below it
    when ``below`` (a confidence under a "needs review" level). ``verdict`` names a column
    that says the same in words (``verdict_words``: flagged, normal), re-decided alike.
    """

    flag: str = "is_fault"
    threshold: str = "threshold"
    below: bool = False
    # an optional column that words the decision (flagged word, normal word), re-worded too
    verdict: str | None = None
    verdict_words: tuple[str, str] = ("flagged", "normal")
    # the column holding the upload's own label, where it gave one (shadow scoring compares
    # each version with it, webapp/shadow.py), and the column compared with it: None for a
    # binary module (the flag, against a label meaning faulty), else a class column
    label: str | None = "label"
    predicted: str | None = None


@dataclass
class BatchChunk:
    """One scored chunk of a batch job: its rows of the results CSV and their counts."""

    frame: object  # a pandas DataFrame: the rows as the module's results CSV holds them
    n_items: int
    n_flagged: int
    labelled_faulty: int | None = None  # items the file's own labels mark faulty (None: none)


@dataclass
class BatchScoring:
    """A module's batch scorer over one file or folder (``ModuleSpec.batch``): what decides,
    and the scored chunks, read and scored one at a time (nothing is read before the first
    chunk is asked for, so a job that scores on Dask uses only what decides). ``finish()``,
    after the last chunk, gives the run's ``drift`` and ``warnings`` (and ``labelled_faulty``
    when the chunks could not count it); ``after_record(run_id)``, once the run is recorded,
    stores what hangs off it (the time series' events). ``total``: items in the file, when
    known cheaply (the chunks may set it once they know)."""

    model: str
    model_version: str | None
    threshold: float
    default_threshold: float | None
    unit: str  # what an item is: rows, maps, photos
    chunks: Iterator[BatchChunk]
    total: int | None = None
    finish: Callable[[], dict] | None = None
    after_record: Callable[[int], object] | None = None


@dataclass(frozen=True)
class ModuleSpec:
    """What the web app knows about a module."""

    name: str
    title: str
    blurb: str
    blueprints: tuple[Blueprint, ...] = ()
    predictor: Callable[..., object] | None = None  # (module_dir, n_jobs=...) -> Predictor
    page: str | None = None  # endpoint of the module page
    predict: str | None = None  # endpoint of the predict API (multipart "file", ?format=csv)
    examples: Callable[[object], ModuleExamples] | None = field(default=None, repr=False)
    decision: ResultsDecision = ResultsDecision()
    # (predictor, path, file name, {"model", "threshold"}) -> BatchScoring: the module's own
    # parsing and scoring over a file (or a folder of files: an input folder, an unpacked zip)
    # on disk, chunk by chunk (batch jobs, webapp/jobs)
    batch: Callable[..., BatchScoring] | None = field(default=None, repr=False)

    @property
    def ready(self) -> bool:
        """A module is ready when it has a predictor and a page; planned ones are only listed."""
        return self.predictor is not None and self.page is not None


def planned(name: str, title: str, blurb: str) -> ModuleSpec:
    """A module shown as coming soon: in the navigation and on the home page, nothing else."""
    return ModuleSpec(name=name, title=title, blurb=blurb)


def registered() -> list[ModuleSpec]:
    """Every module in registry order, ready ones imported from their packages."""
    from webapp import modules  # the list, read now (a test may add a module to it)

    specs = []
    for entry in modules.REGISTRY:
        if isinstance(entry, str):
            entry = importlib.import_module(f"webapp.modules.{entry}").MODULE
        specs.append(entry)
    return specs


def registry_problems(specs: list[ModuleSpec], pipelines: list[str]) -> list[str]:
    """What does not match between the web modules ``specs`` and the pipeline module names."""
    listed = {spec.name for spec in specs}
    problems = [f"web module '{spec.name}' is ready but there is no pipeline module "
                f"'{spec.name}' (pipelines/{spec.name}/__init__.py with MODULE = "
                f"PipelineModule(name='{spec.name}', ...)); list it as planned(...) until "
                f"there is" for spec in specs if spec.ready and spec.name not in pipelines]
    problems += [f"pipeline module '{name}' has no web module: add '{name}' (a package "
                 f"webapp/modules/{name}/ with MODULE = ModuleSpec(...)) or planned('{name}', "
                 f"title, blurb) to REGISTRY in webapp/modules/__init__.py"
                 for name in pipelines if name not in listed]
    return problems


def check_pipelines(specs: list[ModuleSpec] | None = None) -> None:
    """Raise :class:`pipelines.core.modules.RegistryError` naming every mismatch between the
    web registry and the pipeline packages (a package without ``MODULE`` is one too)."""
    from pipelines.core import modules as pipeline_modules

    problems = registry_problems(registered() if specs is None else specs,
                                 sorted(pipeline_modules.discover()))
    if problems:
        raise pipeline_modules.RegistryError("the module registry does not add up: "
                                             + "; ".join(problems))


def ready_modules() -> list[ModuleSpec]:
    """The modules that serve pages and predictions."""
    return [spec for spec in registered() if spec.ready]


def get_module(name: str) -> ModuleSpec:
    """The ready module called ``name``."""
    for spec in ready_modules():
        if spec.name == name:
            return spec
    raise KeyError(f"no ready module '{name}'")
