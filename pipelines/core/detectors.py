"""The Detector contract every model honours, typed explanations, and the detector registry.

Modelled on scikit-learn's estimator contract: ``__init__`` only stores keyword parameters
and ``get_params`` reads them from its signature; ``fit`` learns (preprocessing included),
records ``n_features_in_`` and ``feature_names_in_`` and returns self; learned attributes end
in ``_``; scoring before ``fit``, with the wrong number of features or with non-finite values
raises a clear error. Detectors are registered per module and looked up as ``module/model``,
so two modules can each have an "autoencoder".
"""
from __future__ import annotations

import math

import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol, Sequence, runtime_checkable

import numpy as np

# Every model here computes in float32; a finite float64 beyond this would overflow to inf.
FLOAT32_MAX = float(np.finfo(np.float32).max)


class NotFittedError(RuntimeError):
    """A detector was asked to score or explain before ``fit`` (or ``load``)."""


class InvalidInputError(ValueError):
    """Input a detector cannot score: wrong shape, wrong feature count, non-finite values."""


class UnknownDetectorError(KeyError):
    """A detector name that is not registered; the message lists the valid ones."""

    def __str__(self) -> str:
        return self.args[0]


# -- explanations ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Explanation:
    """Scores plus why: each subclass says what the explanation is attached to."""

    scores: np.ndarray  # (rows,) for a score, (rows, classes) for class probabilities

    def __post_init__(self) -> None:
        if self.scores.ndim not in (1, 2):
            raise ValueError(f"scores must be (rows,) or (rows, classes), got {self.scores.shape}")

    def _check_rows(self, values: np.ndarray, ndim: int, what: str) -> None:
        if values.ndim != ndim or values.shape[0] != self.scores.shape[0]:
            raise ValueError(f"{what} must have {ndim} dimensions and one entry per row "
                             f"({self.scores.shape[0]}), got {values.shape}")


@dataclass(frozen=True)
class FeatureExplanation(Explanation):
    """Per feature (sensor rows): each feature's push towards "faulty", (rows, features)."""

    contributions: np.ndarray
    feature_names: tuple[str, ...]

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_rows(self.contributions, 2, "contributions")
        if self.contributions.shape[1] != len(self.feature_names):
            raise ValueError(f"{self.contributions.shape[1]} contributions per row but "
                             f"{len(self.feature_names)} feature names")

    def top(self, k: int = 3) -> np.ndarray:
        """Column indices of each row's ``k`` largest contributions, largest first, (rows, k)."""
        return top_k(self.contributions, k)


@dataclass(frozen=True)
class ClassRegionExplanation(Explanation):
    """Per class and region (wafer maps): class probabilities and a saliency map per row.

    ``regions`` is (rows, height, width): how much each location drove the predicted class.
    """

    classes: tuple[str, ...]
    regions: np.ndarray

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.scores.ndim != 2 or self.scores.shape[1] != len(self.classes):
            raise ValueError(f"scores must be (rows, {len(self.classes)} classes), "
                             f"got {self.scores.shape}")
        self._check_rows(self.regions, 3, "regions")


@dataclass(frozen=True)
class TimeStepExplanation(Explanation):
    """Per time step (windows of a series): each step's share of the score, (rows, steps)."""

    steps: np.ndarray

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_rows(self.steps, 2, "steps")


@dataclass(frozen=True)
class PixelExplanation(Explanation):
    """Per pixel (images): an anomaly map at input resolution, (rows, height, width)."""

    maps: np.ndarray

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_rows(self.maps, 3, "maps")


def top_k(values: np.ndarray, k: int = 3) -> np.ndarray:
    """Column indices of each row's ``k`` largest values, largest first, (rows, k).

    For a few of many columns, ``k`` passes of argmax beat a partition of every row.
    """
    k = min(k, values.shape[1])
    if 0 < k <= 4 and values.shape[1] > 16:
        work = np.array(values, dtype=np.float64)
        rows = np.arange(len(work))
        out = np.empty((len(work), k), dtype=np.intp)
        for i in range(k):
            out[:, i] = np.argmax(work, axis=1)
            work[rows, out[:, i]] = -np.inf
        return out
    part = np.argpartition(-values, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(values, part, axis=1), axis=1)
    return np.take_along_axis(part, order, axis=1)


# -- the contract -------------------------------------------------------------------------------
@runtime_checkable
class Detector(Protocol):
    """What the pipelines and the web app rely on; :class:`BaseDetector` implements the rest."""

    name: ClassVar[str]

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *,
            feature_names: Sequence[str] | None = None) -> "Detector": ...

    def score(self, X: np.ndarray) -> np.ndarray: ...

    def explain(self, X: np.ndarray) -> Explanation: ...

    def get_params(self) -> dict: ...

    def save(self, directory: Path) -> dict: ...

    @classmethod
    def load(cls, directory: Path, manifest: dict, **overrides) -> "Detector": ...


class BaseDetector:
    """Shared behaviour: parameters from the signature, input checks, fitted checks, loading.

    Subclasses set ``name``; ``allow_nan`` when missing values are part of the input (they are
    imputed or handled natively); ``input_ndim`` for inputs that are not a 2-D table;
    ``integer_input`` when the input is codes (wafer-map dies) that arrive as integer arrays,
    which are then checked as they are instead of being copied to float64.
    """

    name: ClassVar[str]
    allow_nan: ClassVar[bool] = False
    input_ndim: ClassVar[int] = 2
    score_range: ClassVar[tuple[float, float]] = (-math.inf, math.inf)  # every score lies in it
    integer_input: ClassVar[bool] = False

    @classmethod
    def param_names(cls) -> list[str]:
        """The keyword parameters of ``__init__``, in order."""
        signature = inspect.signature(cls.__init__)
        return [p.name for p in signature.parameters.values()
                if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]

    def get_params(self) -> dict:
        """Constructor parameters (JSON-ready: tuples become lists), as stored in manifests."""
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in ((k, getattr(self, k)) for k in self.param_names())}

    def set_params(self, **params) -> "BaseDetector":
        """Change constructor parameters; unknown names are an error."""
        unknown = sorted(set(params) - set(self.param_names()))
        if unknown:
            raise ValueError(f"{type(self).__name__} has no parameter(s) {unknown}; "
                             f"valid: {self.param_names()}")
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- checks -----------------------------------------------------------------------------
    def _check_input(self, X, *, reset: bool, feature_names: Sequence[str] | None = None
                     ) -> np.ndarray:
        """Validate ``X`` as a float array; on ``reset`` (fit) learn its feature count and names.

        Features are the last axis (columns of a table, channels of a series or image). With
        ``integer_input``, an integer array keeps its dtype (finite and inside the float32
        range by construction, so those checks are skipped); anything else becomes float64.
        """
        keep = self.integer_input and isinstance(X, np.ndarray) and X.dtype.kind in "iu"
        try:
            X = X if keep else np.asarray(X, dtype=float)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{self.name}: input is not numeric ({exc})") from None
        if X.ndim != self.input_ndim:
            raise InvalidInputError(f"{self.name}: expected a {self.input_ndim}-D array "
                                    f"(rows first), got shape {X.shape}")
        if X.shape[0] == 0:
            raise InvalidInputError(f"{self.name}: no rows to {'fit' if reset else 'score'}")
        flat = X.reshape(-1)  # fmax/fmin skip NaN: two passes, no temporary the size of X
        if not keep and (np.fmax.reduce(flat, initial=-np.inf) > FLOAT32_MAX or
                         np.fmin.reduce(flat, initial=np.inf) < -FLOAT32_MAX):
            with np.errstate(invalid="ignore"):
                bad = np.abs(X) > FLOAT32_MAX  # inf and float32 overflow; NaN compares False
            where = np.argwhere(bad)[0]
            raise InvalidInputError(
                f"{self.name}: {int(bad.sum())} value(s) are infinite or beyond the float32 "
                f"range (first at row {where[0] + 1}, feature {self._feature_label(where[-1])})")
        if not keep and not self.allow_nan and np.isnan(X).any():
            where = np.argwhere(np.isnan(X))[0]
            raise InvalidInputError(f"{self.name}: missing (NaN) values are not allowed "
                                    f"(first at row {where[0] + 1})")
        n_features = X.shape[-1]
        if reset:
            names = [str(n) for n in feature_names] if feature_names is not None else \
                [f"feature_{i + 1}" for i in range(n_features)]
            if len(names) != n_features:
                raise InvalidInputError(f"{self.name}: {len(names)} feature names for "
                                        f"{n_features} features")
            self.n_features_in_ = n_features
            self.feature_names_in_ = names
            self.input_shape_ = tuple(int(s) for s in X.shape[1:])
        else:
            self.check_is_fitted()
            if tuple(X.shape[1:]) != tuple(self.input_shape_):
                raise InvalidInputError(f"{self.name}: expected rows of shape "
                                        f"{tuple(self.input_shape_)}, got {tuple(X.shape[1:])}")
        return X

    def _feature_label(self, j) -> str:
        names = getattr(self, "feature_names_in_", None)
        return names[int(j)] if names is not None and int(j) < len(names) else str(int(j) + 1)

    def check_is_fitted(self) -> None:
        """Raise :class:`NotFittedError` unless ``fit`` or ``load`` has run."""
        if not hasattr(self, "n_features_in_"):
            raise NotFittedError(f"{self.name} is not fitted: call fit() or load a bundle first")

    # -- bundles ----------------------------------------------------------------------------
    @classmethod
    def _from_manifest(cls, manifest: dict, **overrides) -> "BaseDetector":
        """An unfitted detector with the manifest's parameters and schema.

        ``overrides`` win over the manifest; names the detector does not take are ignored, so
        the web app can pass ``n_jobs`` to every model.
        """
        names = cls.param_names()
        params = {k: v for k, v in {**manifest.get("params", {}), **overrides}.items()
                  if k in names}
        detector = cls(**params)
        schema = manifest.get("feature_schema", {})
        detector.feature_names_in_ = list(schema["names"])
        detector.n_features_in_ = len(detector.feature_names_in_)
        detector.input_shape_ = tuple(schema.get("input_shape", [detector.n_features_in_]))
        return detector

    def feature_schema(self) -> dict:
        """What the manifest records about the input: names and per-row shape."""
        self.check_is_fitted()
        return {"names": list(self.feature_names_in_), "input_shape": list(self.input_shape_)}


# -- registry -------------------------------------------------------------------------------------
def registry() -> dict[str, str]:
    """Every registered detector, ``"module/model" -> "package.module:Class"``."""
    from pipelines.core.modules import discover

    return {f"{module.name}/{model}": target for module in discover().values()
            for model, target in module.detectors.items()}


def get_detector_class(module: str, model: str | None = None) -> type:
    """A registered detector class, by ``("sensor", "xgboost")`` or ``"sensor/xgboost"``.

    Imported only when asked for, so serving never imports torch.
    """
    key = module if model is None else f"{module}/{model}"
    known = registry()
    try:
        target = known[key]
    except KeyError:
        prefix = key.split("/")[0] + "/"
        names = sorted(k for k in known if k.startswith(prefix)) or sorted(known)
        raise UnknownDetectorError(f"unknown model '{key}'; choose one of: "
                                   f"{', '.join(names)}") from None
    path, _, cls = target.partition(":")
    return getattr(importlib.import_module(path), cls)
