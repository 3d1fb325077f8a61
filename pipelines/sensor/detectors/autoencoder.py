"""Dense autoencoder trained on passing wafers only, served through onnxruntime.

Imputation, standardisation and the per-sensor error are inside the exported ONNX graph: its
input is the kept sensors' raw values (NaN allowed), its output each sensor's absolute
reconstruction error. The anomaly score is the mean error; a sensor's share of the error says
which sensors made the wafer look abnormal. torch is imported only to train and export.
"""
from __future__ import annotations

import math

import json
import logging
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np

from pipelines.core.detectors import BaseDetector, FeatureExplanation
from pipelines.core.onnx import onnx_session, torch_to_onnx
from pipelines.sensor.transform import fit_preprocessor

logger = logging.getLogger(__name__)

CLIP = 10.0  # standardised inputs are clipped to +-CLIP so one wild reading cannot dominate


class AutoencoderDetector(BaseDetector):
    """Reconstruction-error anomaly detector (unsupervised: fits on label-0 rows only)."""

    name: ClassVar[str] = "autoencoder"
    allow_nan: ClassVar[bool] = True  # missing sensors are imputed inside the ONNX graph
    score_range: ClassVar[tuple[float, float]] = (0.0, math.inf)  # reconstruction error
    MODEL_FILE: ClassVar[str] = "model.onnx"
    PREPROCESSOR_FILE: ClassVar[str] = "preprocessor.json"

    def __init__(self, *, hidden: tuple[int, ...] = (128, 32), epochs: int = 60,
                 batch_size: int = 64, learning_rate: float = 1e-3, weight_decay: float = 1e-5,
                 dropout: float = 0.1, max_missing: float = 0.5, n_jobs: int = 2,
                 random_state: int = 0):
        self.hidden = tuple(hidden)
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.max_missing = max_missing
        self.n_jobs = n_jobs
        self.random_state = random_state

    # -- training (torch) -------------------------------------------------------------
    def _build(self, n_features: int):
        import torch
        from torch import nn

        pre = self.preprocessor_
        sizes = [n_features, *self.hidden]
        encoder: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            encoder += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(self.dropout)]
        decoder: list[nn.Module] = []
        rev = sizes[::-1]
        for i, (a, b) in enumerate(zip(rev[:-1], rev[1:])):
            decoder += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(rev) - 2 else [])

        class Reconstruction(nn.Module):
            """Raw kept-sensor values -> per-sensor |reconstruction - standardised input|."""

            def __init__(self):
                super().__init__()
                self.register_buffer("median", torch.tensor(pre["median"], dtype=torch.float32))
                self.register_buffer("mean", torch.tensor(pre["mean"], dtype=torch.float32))
                self.register_buffer("scale", torch.tensor(pre["scale"], dtype=torch.float32))
                self.net = nn.Sequential(*encoder, *decoder)

            def standardise(self, x):
                x = torch.where(torch.isnan(x), self.median, x)
                return torch.clamp((x - self.mean) / self.scale, -CLIP, CLIP)

            def forward(self, x):
                z = self.standardise(x)
                return torch.abs(self.net(z) - z)

        return Reconstruction()

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *,
            feature_names: Sequence[str] | None = None) -> "AutoencoderDetector":
        """Fit preprocessing and the network on passing rows (``y == 0``, or all rows if no y)."""
        import torch

        X = self._check_input(X, reset=True, feature_names=feature_names)
        normal = X if y is None else X[np.asarray(y) == 0]
        self.preprocessor_ = fit_preprocessor(normal, self.feature_names_in_,
                                              max_missing=self.max_missing)
        torch.manual_seed(self.random_state)
        torch.set_num_threads(self.n_jobs)
        raw = torch.tensor(normal[:, self.preprocessor_["kept"]], dtype=torch.float32)
        module = self._build(raw.shape[1])
        z_all = module.standardise(raw)
        optimiser = torch.optim.AdamW(module.net.parameters(), lr=self.learning_rate,
                                      weight_decay=self.weight_decay)
        generator = torch.Generator().manual_seed(self.random_state)
        module.train()
        for epoch in range(self.epochs):
            order = torch.randperm(len(z_all), generator=generator)
            total = 0.0
            for start in range(0, len(order), self.batch_size):
                z = z_all[order[start:start + self.batch_size]]
                loss = torch.nn.functional.mse_loss(module.net(z), z)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += loss.item() * len(z)
            if epoch % 20 == 0 or epoch == self.epochs - 1:
                logger.debug("autoencoder epoch %d loss %.4f", epoch, total / len(z_all))
        module.eval()
        self.module_ = module
        self.onnx_ = torch_to_onnx(module, torch.zeros(2, raw.shape[1]), ["x"], ["error"])
        self.session_ = onnx_session(self.onnx_, self.n_jobs)
        return self

    def torch_errors(self, X: np.ndarray) -> np.ndarray:
        """Per-sensor errors from the torch module (only after ``fit``; used to check the export)."""
        import torch

        X = self._check_input(X, reset=False)
        with torch.no_grad():
            x = torch.tensor(X[:, self.preprocessor_["kept"]], dtype=torch.float32)
            return self.module_(x).numpy()

    # -- serving (onnxruntime) ----------------------------------------------------------
    def errors(self, X: np.ndarray) -> np.ndarray:
        """Per-kept-sensor absolute reconstruction error from the ONNX model."""
        X = self._check_input(X, reset=False)
        x = np.ascontiguousarray(X[:, self.preprocessor_["kept"]], dtype=np.float32)
        return self.session_.run(None, {"x": x})[0]

    def score(self, X: np.ndarray) -> np.ndarray:
        """Anomaly score: mean absolute reconstruction error (standardised units)."""
        return self.errors(X).mean(axis=1).astype(float)

    def explain(self, X: np.ndarray) -> FeatureExplanation:
        """Anomaly score and each sensor's share of the reconstruction error (dropped: 0)."""
        errors = self.errors(X)
        share = errors / np.maximum(errors.sum(axis=1, keepdims=True), 1e-12)
        full = np.zeros((errors.shape[0], self.n_features_in_))
        full[:, self.preprocessor_["kept"]] = share
        return FeatureExplanation(errors.mean(axis=1).astype(float), full,
                                  tuple(self.feature_names_in_))

    def save(self, directory: Path) -> dict:
        """Write the ONNX graph and preprocessor; return ``{file: role}`` for the manifest."""
        self.check_is_fitted()
        directory = Path(directory)
        (directory / self.MODEL_FILE).write_bytes(self.onnx_)
        (directory / self.PREPROCESSOR_FILE).write_text(json.dumps(self.preprocessor_))
        return {self.MODEL_FILE: "onnx autoencoder (imputation and scaling inside)",
                self.PREPROCESSOR_FILE: "preprocessor"}

    @classmethod
    def load(cls, directory: Path, manifest: dict, **overrides) -> "AutoencoderDetector":
        """Rebuild a scoring-only detector from a bundle (onnxruntime, no torch)."""
        directory = Path(directory)
        detector = cls._from_manifest(manifest, **overrides)
        detector.preprocessor_ = json.loads((directory / cls.PREPROCESSOR_FILE).read_text())
        detector.onnx_ = (directory / cls.MODEL_FILE).read_bytes()
        detector.session_ = onnx_session(detector.onnx_, detector.n_jobs)
        return detector
