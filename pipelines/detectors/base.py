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

    def explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores and each sensor's contribution to them, (rows,) and (rows, 590), in one pass.

        Dropped sensors contribute 0; a larger contribution pushed the row towards "faulty".
        """
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


def top_k(contributions: np.ndarray, k: int = 3) -> np.ndarray:
    """Column indices of each row's ``k`` largest contributions, largest first, (rows, k)."""
    k = min(k, contributions.shape[1])
    part = np.argpartition(-contributions, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(contributions, part, axis=1), axis=1)
    return np.take_along_axis(part, order, axis=1)
