"""Shared base of the window networks: trained with torch, exported to ONNX, served by onnxruntime.

A subclass builds a torch module whose ``forward`` maps standardised windows (windows, cycles,
sensors) to one error per sensor (windows, sensors), inside the exported graph so serving
cannot drift from training. What that error is, is the ``score_on`` parameter:

* ``"squared_error"``: the mean squared error per sensor (reconstruction error for the
  autoencoder, forecast error for the forecaster): it measures noise as much as wear;
* ``"mean_error"``: the signed mean error per sensor (reconstruction or forecast minus the
  readings): an offset that the per-cycle noise averages out of, kept only when it persists.
  Each sensor's mean error on the training windows is subtracted inside the graph, so a
  healthy machine's averages 0 whatever bias a fit leaves, and a flag level chosen on other
  fits of the same recipe (out of fold) holds for this one.

Scores come from a machine's history of windows (``history_windows``, k): each sensor's error
is averaged over the windows ending in the machine's last k cycles
(``transform.machine_window_mean``: cycles before its first count as 0), and the score is the
mean over sensors of that average (``squared_error``) or of its square (``mean_error``).
With k = 1 a window is scored alone. ``explain`` gives each sensor's share of the score. The
windows of one machine, one per cycle in cycle order, are passed with ``machines=`` (their
machine ids); without it every window is a machine of its own (its history is that one
window, so with k > 1 its error counts 1/k).

Training minimises the mean squared error with Adam on mini-batches whatever ``score_on``
says; the torch module is kept after ``fit`` so the export can be compared with it
(``torch_errors``, ``parity_``).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, ClassVar, Sequence

import numpy as np

from pipelines.core.detectors import BaseDetector, FeatureExplanation, InvalidInputError
from pipelines.core.onnx import onnx_session, torch_to_onnx
from pipelines.timeseries.transform import machine_window_mean

CHUNK = 256  # windows per onnxruntime call (bounds serving memory)
SCORE_ON = ("squared_error", "mean_error")


def sensor_shares(errors: np.ndarray, machines: np.ndarray, history_windows: int,
                  score_on: str) -> np.ndarray:
    """(windows, sensors): each sensor's share of each window's score, from per-window
    ``errors`` of windows listed machine by machine (``machines``): the errors averaged over
    the windows ending in the machine's last ``history_windows`` cycles, squared for
    ``mean_error``, divided by the number of sensors (the shares sum to the score)."""
    mean = machine_window_mean(errors, machines, history_windows)
    per_sensor = mean ** 2 if score_on == "mean_error" else mean
    return per_sensor / per_sensor.shape[1]


def _centred(module, offset):
    """``module`` with ``offset`` subtracted from its per-sensor errors (a torch module)."""
    from torch import nn

    class Centred(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module
            self.register_buffer("offset", offset.detach().clone().float())

        def forward(self, x):
            return self.inner(x) - self.offset

    return Centred()


class OnnxWindowDetector(BaseDetector):
    """Base for window networks; subclasses define ``_build`` and their parameters.

    Subclasses' ``__init__`` must store ``score_on``, ``history_windows``, ``epochs``,
    ``batch_size``, ``learning_rate``, ``n_jobs`` and ``random_state``.
    """

    input_ndim: ClassVar[int] = 3
    score_range: ClassVar[tuple[float, float]] = (0.0, float("inf"))
    MODEL_FILE: ClassVar[str] = "model.onnx"
    HISTORY_FILE: ClassVar[str] = "history.json"
    fit_progress: ClassVar[bool] = True  # fit takes a ``progress`` callback

    def _build(self, n_sensors: int, n_steps: int):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def uses_machines(self) -> bool:
        """Whether a window's score depends on its machine's earlier windows (k > 1)."""
        return int(self.history_windows) > 1

    def _check_params(self) -> None:
        if self.score_on not in SCORE_ON:
            raise ValueError(f"{self.name}: score_on must be one of {SCORE_ON}, got "
                             f"{self.score_on!r}")
        if int(self.history_windows) < 1:
            raise ValueError(f"{self.name}: history_windows must be at least 1")

    def _error(self, residual, dim: int):
        """The per-sensor error the graph outputs, from (prediction - readings)."""
        if self.score_on == "mean_error":
            return residual.mean(dim=dim)
        return (residual ** 2).mean(dim=dim)

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *,
            feature_names: Sequence[str] | None = None,
            progress: Callable[[str], None] | None = None) -> "OnnxWindowDetector":
        """Train on (healthy) windows; ``y`` is ignored (unsupervised)."""
        import torch

        self._check_params()
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
                loss = module.loss(data[order[start:start + self.batch_size]])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += loss.item()
                batches += 1
            history.append(round(total / max(batches, 1), 5))
            progress(f"{self.name} epoch {epoch + 1}/{self.epochs}: loss {history[-1]:.4f} "
                     f"[{time.perf_counter() - started:.0f}s]")
        module.eval()
        self.module_ = _centred(module, self._offset(module, data))
        self.history_ = history
        self.error_offset_ = [round(float(v), 6) for v in self.module_.offset]
        self.onnx_ = torch_to_onnx(self.module_, torch.zeros(2, *self.input_shape_),
                                   ["windows"], ["errors"])
        self.session_ = onnx_session(self.onnx_, self.n_jobs)
        return self

    def _offset(self, module, data):
        """Each sensor's mean error on the training windows for ``mean_error`` (zeros for
        ``squared_error``): subtracted inside the exported graph, so a healthy machine's
        error averages 0 whatever bias a fit leaves, and a flag level chosen on other fits
        (out of fold) holds for this one."""
        import torch

        with torch.no_grad():
            if self.score_on != "mean_error":
                return torch.zeros(data.shape[2])
            total = sum(module(data[s:s + 4096]).sum(dim=0) for s in range(0, len(data), 4096))
            return total / len(data)

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
        """(windows, sensors) per-sensor error of each window alone, from the ONNX graph."""
        X = self._check_input(X, reset=False)
        out = [self.session_.run(None, {"windows": np.ascontiguousarray(
            X[s:s + CHUNK], dtype=np.float32)})[0] for s in range(0, len(X), CHUNK)]
        return np.concatenate(out).astype(float)

    def explain_errors(self, errors: np.ndarray, machines: np.ndarray | None = None
                       ) -> FeatureExplanation:
        """Score and each sensor's share of it from per-window ``errors`` (:meth:`errors`) of
        windows listed machine by machine (``machines``: their machine ids; None: each
        window its own machine)."""
        errors = np.asarray(errors, dtype=float)
        if machines is None:
            machines = np.arange(len(errors))
        elif len(machines) != len(errors):
            raise InvalidInputError(f"{self.name}: {len(machines)} machine ids for "
                                    f"{len(errors)} windows")
        share = sensor_shares(errors, machines, int(self.history_windows), self.score_on)
        return FeatureExplanation(share.sum(axis=1), share, tuple(self.feature_names_in_))

    def score(self, X: np.ndarray, machines: np.ndarray | None = None) -> np.ndarray:
        """Each window's score from its machine's history (see the module doc; higher is
        more anomalous)."""
        return self.explain(X, machines).scores

    def explain(self, X: np.ndarray, machines: np.ndarray | None = None) -> FeatureExplanation:
        """Score and each sensor's share of it (shares sum to the score)."""
        return self.explain_errors(self.errors(X), machines)

    def save(self, directory: Path) -> dict:
        """Write the ONNX graph and the training history; ``{file: role}`` for the manifest."""
        self.check_is_fitted()
        directory = Path(directory)
        (directory / self.MODEL_FILE).write_bytes(self.onnx_)
        (directory / self.HISTORY_FILE).write_text(json.dumps(
            {"loss": getattr(self, "history_", None),
             "error_offset": getattr(self, "error_offset_", None)}) + "\n")
        return {self.MODEL_FILE: f"onnx {self.name} (per-sensor {self.score_on.replace('_', ' ')}"
                                 f" inside)",
                self.HISTORY_FILE: "training loss per epoch; the per-sensor mean error on "
                                   "the training windows, subtracted inside the graph"}

    @classmethod
    def load(cls, directory: Path, manifest: dict, **overrides) -> "OnnxWindowDetector":
        """Rebuild a scoring-only detector (onnxruntime, no torch) from a bundle."""
        directory = Path(directory)
        detector = cls._from_manifest(manifest, **overrides)
        history = json.loads((directory / cls.HISTORY_FILE).read_text())
        detector.history_ = history["loss"]
        if history.get("error_offset") is not None:
            detector.error_offset_ = history["error_offset"]
        detector.onnx_ = (directory / cls.MODEL_FILE).read_bytes()
        detector.session_ = onnx_session(detector.onnx_, detector.n_jobs)
        return detector
