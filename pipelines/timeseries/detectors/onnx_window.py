"""Shared base of the window networks: trained with torch, exported to ONNX, served by onnxruntime.

A subclass builds a torch module whose ``forward`` maps standardised windows (windows, cycles,
sensors) to each sensor's error (windows, sensors): reconstruction error for the autoencoder,
forecast error for the forecaster. That error computation is inside the exported graph, so
serving cannot drift from training. The score is the mean over sensors; ``explain`` gives each
sensor's share of it (its error divided by the number of sensors, summing to the score).
Training minimises the mean error with Adam on mini-batches; the torch module is kept after
``fit`` so the export can be compared with it (``torch_errors``, ``parity_``).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, ClassVar, Sequence

import numpy as np

from pipelines.core.detectors import BaseDetector, FeatureExplanation
from pipelines.core.onnx import onnx_session, torch_to_onnx

CHUNK = 256  # windows per onnxruntime call (bounds serving memory)


class OnnxWindowDetector(BaseDetector):
    """Base for window networks; subclasses define ``_build`` and their parameters.

    Subclasses' ``__init__`` must store ``epochs``, ``batch_size``, ``learning_rate``,
    ``n_jobs`` and ``random_state``.
    """

    input_ndim: ClassVar[int] = 3
    score_range: ClassVar[tuple[float, float]] = (0.0, float("inf"))
    MODEL_FILE: ClassVar[str] = "model.onnx"
    HISTORY_FILE: ClassVar[str] = "history.json"
    fit_progress: ClassVar[bool] = True  # fit takes a ``progress`` callback

    def _build(self, n_sensors: int, n_steps: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *,
            feature_names: Sequence[str] | None = None,
            progress: Callable[[str], None] | None = None) -> "OnnxWindowDetector":
        """Train on (healthy) windows; ``y`` is ignored (unsupervised)."""
        import torch

        X = self._check_input(X, reset=True, feature_names=feature_names).astype(np.float32)
        progress = progress or (lambda s: None)
        torch.manual_seed(self.random_state)
        torch.set_num_threads(self.n_jobs)
        generator = torch.Generator().manual_seed(self.random_state)
        module = self._build(X.shape[2], X.shape[1])
        optimiser = torch.optim.Adam(module.parameters(), lr=self.learning_rate)
        data = torch.from_numpy(X)
        history, started = [], time.perf_counter()
        for epoch in range(self.epochs):
            module.train()
            order = torch.randperm(len(data), generator=generator)
            total, batches = 0.0, 0
            for start in range(0, len(data), self.batch_size):
                loss = module(data[order[start:start + self.batch_size]]).mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += loss.item()
                batches += 1
            history.append(round(total / max(batches, 1), 5))
            progress(f"{self.name} epoch {epoch + 1}/{self.epochs}: loss {history[-1]:.4f} "
                     f"[{time.perf_counter() - started:.0f}s]")
        module.eval()
        self.module_ = module
        self.history_ = history
        self.onnx_ = torch_to_onnx(module, torch.zeros(2, *self.input_shape_), ["windows"],
                                   ["errors"])
        self.session_ = onnx_session(self.onnx_, self.n_jobs)
        return self

    def torch_errors(self, X: np.ndarray) -> np.ndarray:
        """Per-sensor errors from the torch module (only after ``fit``; to check the export)."""
        import torch

        X = self._check_input(X, reset=False).astype(np.float32)
        with torch.no_grad():
            return self.module_(torch.from_numpy(X)).numpy()

    def parity_(self, X: np.ndarray) -> float:
        """Largest absolute difference between torch and ONNX per-sensor errors on ``X``."""
        return float(np.abs(self.torch_errors(X) - self.errors(X)).max())

    def errors(self, X: np.ndarray) -> np.ndarray:
        """(windows, sensors) per-sensor error from the ONNX graph."""
        X = self._check_input(X, reset=False)
        out = [self.session_.run(None, {"windows": np.ascontiguousarray(
            X[s:s + CHUNK], dtype=np.float32)})[0] for s in range(0, len(X), CHUNK)]
        return np.concatenate(out).astype(float)

    def score(self, X: np.ndarray) -> np.ndarray:
        """Mean per-sensor error of each window (higher is more anomalous)."""
        return self.errors(X).mean(axis=1)

    def explain(self, X: np.ndarray) -> FeatureExplanation:
        """Score and each sensor's share of it (its error / number of sensors)."""
        errors = self.errors(X)
        share = errors / errors.shape[1]
        return FeatureExplanation(share.sum(axis=1), share, tuple(self.feature_names_in_))

    def save(self, directory: Path) -> dict:
        """Write the ONNX graph and the training history; ``{file: role}`` for the manifest."""
        self.check_is_fitted()
        directory = Path(directory)
        (directory / self.MODEL_FILE).write_bytes(self.onnx_)
        (directory / self.HISTORY_FILE).write_text(json.dumps(
            {"loss": getattr(self, "history_", None)}) + "\n")
        return {self.MODEL_FILE: f"onnx {self.name} (per-sensor error inside)",
                self.HISTORY_FILE: "training loss per epoch"}

    @classmethod
    def load(cls, directory: Path, manifest: dict, **overrides) -> "OnnxWindowDetector":
        """Rebuild a scoring-only detector (onnxruntime, no torch) from a bundle."""
        directory = Path(directory)
        detector = cls._from_manifest(manifest, **overrides)
        detector.history_ = json.loads((directory / cls.HISTORY_FILE).read_text())["loss"]
        detector.onnx_ = (directory / cls.MODEL_FILE).read_bytes()
        detector.session_ = onnx_session(detector.onnx_, detector.n_jobs)
        return detector
