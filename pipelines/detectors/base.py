"""The Detector contract every model honours, and the registry that finds them by name."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

# name -> "module:Class"; imported only when asked for, so serving never imports torch.
REGISTRY: dict[str, str] = {
    "xgboost": "pipelines.detectors.xgboost_detector:XGBoostDetector",
    "autoencoder": "pipelines.detectors.autoencoder:AutoencoderDetector",
}


@runtime_checkable
class Detector(Protocol):
    """Scores rows of raw sensor values (NaN allowed); higher means more likely faulty.

    ``__init__`` only stores keyword parameters; ``fit`` learns (preprocessing included) and
    returns self; learned attributes end in ``_``.
    """

    name: ClassVar[str]

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "Detector": ...

    def score(self, X: np.ndarray) -> np.ndarray: ...

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-row, per-sensor share of the score, shape (rows, 590); dropped sensors are 0."""
        ...

    def get_params(self) -> dict: ...

    def save(self, directory: Path) -> dict: ...

    @classmethod
    def load(cls, directory: Path, manifest: dict) -> "Detector": ...


class UnknownDetectorError(KeyError):
    """A detector name that is not registered; the message lists the valid ones."""

    def __str__(self) -> str:
        return self.args[0]


def get_detector_class(name: str) -> type:
    """Look up a registered detector class by name."""
    try:
        target = REGISTRY[name]
    except KeyError:
        raise UnknownDetectorError(
            f"unknown model '{name}'; choose one of: {', '.join(sorted(REGISTRY))}") from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def top_contributors(contributions: np.ndarray, names: list[str], k: int = 3) -> list[list[dict]]:
    """The ``k`` sensors with the largest positive contribution for each row."""
    k = min(k, contributions.shape[1])
    order = np.argsort(-contributions, axis=1)[:, :k]
    return [[{"sensor": names[j], "contribution": float(contributions[r, j])} for j in row]
            for r, row in enumerate(order)]
