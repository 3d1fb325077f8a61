"""A small PatchTST-style forecaster: the anomaly score is its forecast error.

Following PatchTST (Nie et al., 2023) in miniature: each sensor is a separate channel
(channel independence, shared weights); the first ``window - horizon`` cycles of a sensor
are cut into patches of ``patch`` cycles, each embedded linearly with a learned position,
passed through ``layers`` transformer encoder layers (multi-head self-attention written out
with plain operations, so the ONNX export is simple), flattened and mapped to the next
``horizon`` cycles. Trained (mean squared forecast error) on healthy windows only. The
exported graph outputs each sensor's error between the forecast and the window's last
``horizon`` cycles: its mean squared error (``score_on="squared_error"``, the releases before
issue 20) or its signed mean error (``"mean_error"``, the forecast's bias). A forecaster that
learnt healthy engines lags behind a sensor that wears away from them, so its bias persists
over the machine's history while the noise averages out: with ``history_windows`` k the score
is the mean over sensors of the square of that bias averaged over the windows ending in the
machine's last k cycles (see ``onnx_window``).
"""
from __future__ import annotations

from typing import ClassVar

from pipelines.timeseries.detectors.onnx_window import OnnxWindowDetector


class PatchTSTDetector(OnnxWindowDetector):
    """Forecast error of a patch transformer (mean over sensors)."""

    name: ClassVar[str] = "patchtst"

    def __init__(self, *, patch: int = 5, horizon: int = 5, d_model: int = 32, heads: int = 4,
                 layers: int = 2, score_on: str = "squared_error", history_windows: int = 1,
                 epochs: int = 6, batch_size: int = 256, learning_rate: float = 2e-3,
                 n_jobs: int = 1, random_state: int = 0):
        self.patch = patch
        self.horizon = horizon
        self.score_on = score_on
        self.history_windows = history_windows
        self.d_model = d_model
        self.heads = heads
        self.layers = layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _build(self, n_sensors: int, n_steps: int):
        import torch
        from torch import nn

        context = n_steps - self.horizon
        if context < self.patch or self.horizon < 1:
            raise ValueError(f"{self.name}: a window of {n_steps} cycles leaves no context "
                             f"for patches of {self.patch} and a horizon of {self.horizon}")
        n_patches = context // self.patch
        start = context - n_patches * self.patch  # the oldest cycles left over are skipped
        d, heads, patch, horizon = self.d_model, self.heads, self.patch, self.horizon
        error = self._error
        if d % heads:
            raise ValueError(f"{self.name}: d_model {d} is not a multiple of heads {heads}")

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.qkv = nn.Linear(d, 3 * d)
                self.proj = nn.Linear(d, d)
                self.norm1 = nn.LayerNorm(d)
                self.norm2 = nn.LayerNorm(d)
                self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

            def forward(self, z):  # (batch, patches, d)
                q, k, v = self.qkv(self.norm1(z)).chunk(3, dim=-1)
                shape = (-1, n_patches, heads, d // heads)
                q, k, v = (t.reshape(shape).transpose(1, 2) for t in (q, k, v))
                attention = torch.softmax(q @ k.transpose(-2, -1) * (d // heads) ** -0.5, dim=-1)
                mixed = (attention @ v).transpose(1, 2).reshape(-1, n_patches, d)
                z = z + self.proj(mixed)
                return z + self.ff(self.norm2(z))

        class PatchForecaster(nn.Module):
            """Windows (n, cycles, sensors) -> per-sensor forecast error (n, sensors)."""

            def __init__(self):
                super().__init__()
                self.embed = nn.Linear(patch, d)
                self.position = nn.Parameter(torch.zeros(1, n_patches, d))
                self.blocks = nn.Sequential(*[Block() for _ in range(self.n_layers)])
                self.head = nn.Linear(n_patches * d, horizon)

            n_layers = self.layers

            def residual(self, x):
                series = x.transpose(1, 2)  # (n, sensors, cycles)
                past = series[:, :, start:context].reshape(-1, n_patches, patch)
                z = self.blocks(self.embed(past) + self.position)
                forecast = self.head(z.reshape(-1, n_patches * d)).reshape(-1, n_sensors,
                                                                           horizon)
                return forecast - series[:, :, context:]

            def loss(self, x):
                return (self.residual(x) ** 2).mean()

            def forward(self, x):
                return error(self.residual(x), dim=2)

        return PatchForecaster()
