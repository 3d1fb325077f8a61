"""The predictor base: load one module's release once, pick a model, say what a threshold means."""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pipelines.core.artifacts import BundleError, load_release
from pipelines.core.cards import metric_rows, model_card
from pipelines.core.detectors import UnknownDetectorError
from pipelines.core.thresholds import (false_alarm_curve, measured_false_alarm_rate,
                                       rate_on_curve)

logger = logging.getLogger(__name__)


class ModelUnavailableError(RuntimeError):
    """A model of the release did not load (its bundle is broken), so it cannot score.

    The rest of the release serves: the web app answers this with a 503 naming the model and
    the reason, not a 500, and not a 400 (the request itself was right)."""

    def __init__(self, model: str, reason: str, others: list[str] | None = None):
        message = f"model '{model}' is unavailable: {reason}"
        if others is not None:
            message += (f"; the default model cannot serve, name another: {', '.join(others)}"
                        if others else "; no other model of this release can serve")
        super().__init__(message)
        self.model, self.reason = model, reason


@dataclass
class LoadedModel:
    """A fitted detector with its bundle manifest."""

    name: str
    detector: object
    manifest: dict

    @property
    def threshold(self) -> float:
        """The default threshold, chosen at the manifest's target false-alarm rate."""
        return float(self.manifest["threshold"]["value"])

    @property
    def target_far(self) -> float:
        return float(self.manifest["threshold"]["target_false_alarm_rate"])

    @property
    def role(self) -> str:
        return self.manifest.get("role", "classifier")

    @property
    def version(self) -> str:
        return self.manifest.get("version", self.name)

    @property
    def shown(self) -> bool:
        """Offered on the page and scored beside the decider (a release may keep a model for
        the API only, marked ``"shown": false``)."""
        return bool(self.manifest.get("shown", True))

    @property
    def measured_far(self) -> float | None:
        """The false-alarm rate measured on normal validation data at the default threshold,
        where training recorded it (see ``core.thresholds``)."""
        return measured_false_alarm_rate(self.manifest["threshold"])

    @property
    def false_alarm_curve(self) -> dict[str, list[float]]:
        """Threshold -> share of normal validation rows flagged, through the measured rate at
        the default threshold (see ``core.thresholds``)."""
        measured = self.measured_far
        return false_alarm_curve(self.manifest["threshold"]["normal_score_quantiles"],
                                 None if measured is None else (self.threshold, measured))

    @property
    def score_range(self) -> tuple[float, float]:
        """Lowest and highest score the model can give (a threshold outside it is meaningless)."""
        return tuple(getattr(self.detector, "score_range", (-float("inf"), float("inf"))))

    def false_alarm_rate(self, threshold: float) -> float:
        """The false-alarm figure of ``threshold``: the share of normal validation rows it
        flags (measured at the default threshold, read off the curve elsewhere). The one
        source of that figure: the pages show it, and read other thresholds off the same
        curve."""
        return rate_on_curve(self.false_alarm_curve, threshold)

    def describe(self) -> dict:
        """What a page or API client needs to know about this model (no machine paths).

        ``false_alarm_rate`` is the default threshold's figure, ``target_far`` the target it
        was chosen for."""
        curve = self.false_alarm_curve
        return {"name": self.name, "model": self.manifest.get("model"), "role": self.role,
                "version": self.version, "threshold": self.threshold,
                "target_far": self.target_far,
                "false_alarm_rate": rate_on_curve(curve, self.threshold),
                "far_measured": self.measured_far is not None, "far_curve": curve,
                "score_range": [v if math.isfinite(v) else None for v in self.score_range],
                "metrics": self.manifest.get("metrics", {})}


class Predictor:
    """Loads every model of a module's release from ``artifacts/<module>/``.

    A model whose bundle does not load costs only itself: it is left out of ``models`` and
    kept in ``unavailable`` (``{model: reason}``); asking for it (by name, or by default when
    it is the default) raises :class:`ModelUnavailableError`, while the other models serve as
    before. A release none of whose models loads, or whose shared files are broken, fails.

    Subclasses set ``module`` (and ``feature_names`` when every model must take the same
    schema) and add the module's ``predict``. ``overrides`` replace detector parameters at
    load time (the serving thread count).
    """

    module: ClassVar[str]
    feature_names: ClassVar[list[str] | None] = None
    item_noun: ClassVar[str] = "rows"  # what one scored item is called on the Models page
    normal_items: ClassVar[str] = "normal validation items"  # what a false alarm is made of
    # the command that sets the threshold again on recent normal items, where the module has one
    recalibrate_command: ClassVar[str | None] = None

    def __init__(self, module_dir: Path, **overrides):
        self.module_dir = Path(module_dir)
        broken: dict[str, str] = {}
        release, loaded = load_release(self.module_dir, self.feature_names, broken=broken,
                                       **overrides)
        if release.get("module") != self.module:
            raise BundleError(f"{self.module_dir} holds module '{release.get('module')}', "
                              f"not '{self.module}'")
        self.release = release
        self.models: dict[str, LoadedModel] = {
            name: LoadedModel(name, detector, manifest)
            for name, (detector, manifest) in loaded.items()}
        self.unavailable: dict[str, str] = broken
        if not self.models:
            raise BundleError(f"the {self.module} release in {self.module_dir} lists no models"
                              if not broken else "no model of the release loads: " +
                              "; ".join(f"{n}: {r}" for n, r in broken.items()))
        # the release's choice even when it is broken: then a default request is a 503, never
        # silently another model
        self.default_model = release.get("default_model") or release["models"][0]
        logger.info("loaded %s models %s", self.module, sorted(self.models))

    def get(self, name: str | None) -> LoadedModel:
        """The model that decides: ``name`` or the release's default; a
        :class:`ModelUnavailableError` when its bundle did not load."""
        chosen = name or self.default_model
        if isinstance(chosen, str) and chosen in self.unavailable:
            raise ModelUnavailableError(chosen, self.unavailable[chosen],
                                        None if name else sorted(self.models))
        if not isinstance(chosen, str) or chosen not in self.models:
            raise UnknownDetectorError(f"unknown model '{chosen}'; choose one of: "
                                       f"{', '.join(sorted(self.models))}")
        return self.models[chosen]

    def unavailable_models(self) -> list[dict]:
        """Each model that did not load, ``{"name", "reason", "default"}``, the default first:
        what the pages and readiness say about it."""
        order = sorted(self.unavailable, key=lambda n: n != self.default_model)
        return [{"name": n, "reason": self.unavailable[n], "default": n == self.default_model}
                for n in order]

    def module_file(self, name: str) -> Path:
        """A module-level file of the release (hash-checked when the release was loaded)."""
        if name not in self.release.get("files", {}):
            raise BundleError(f"the {self.module} release has no file '{name}'")
        return self.module_dir / name

    def module_json(self, name: str) -> dict:
        """A module-level JSON file of the release."""
        return json.loads(self.module_file(name).read_text())

    def describe(self) -> list[dict]:
        """Every model's description, the default first."""
        order = sorted(self.models, key=lambda n: n != self.default_model)
        return [self.models[n].describe() | {"default": n == self.default_model} for n in order]

    def card(self, name: str) -> dict:
        """The Models page card of one model (``core.cards``); modules add what only they
        know (more protocols, what the threshold means)."""
        return model_card(self.models[name], default=name == self.default_model,
                          noun=self.item_noun, normal=self.normal_items, release=self.release)

    def cards(self) -> list[dict]:
        """Every model's card, the default first, with its side-by-side metric rows."""
        order = sorted(self.models, key=lambda n: n != self.default_model)
        out = []
        for name in order:
            card = self.card(name)
            card["rows"] = metric_rows(card["columns"])
            card["intervals"] = any(cell and cell.get("ci") for row in card["rows"]
                                    for cell in row["cells"])
            out.append(card)
        return out
