"""LSTM autoencoder over standardised windows; the anomaly score is the reconstruction error.

An LSTM encoder reads the window (cycles, sensors) into its last hidden state; that state,
repeated at every cycle, drives an LSTM decoder and a linear layer back to the sensors.
Trained (mean squared reconstruction error over the whole window) on healthy windows only, so
windows unlike them reconstruct worse. The exported graph outputs each sensor's error over
the window's last ``recent`` cycles: its mean squared error (``score_on="squared_error"``,
``recent=30``: the whole window, the releases before issue 20) or its signed mean error
(``"mean_error"``: the offset of the reconstruction from the readings, which the per-cycle
noise averages out of; the score is the mean over sensors of its square).
"""
from __future__ import annotations

from typing import ClassVar

from pipelines.timeseries.detectors.onnx_window import OnnxWindowDetector


class LSTMAutoencoderDetector(OnnxWindowDetector):
    """Reconstruction error of an LSTM autoencoder (mean over sensors)."""

    name: ClassVar[str] = "lstm_autoencoder"

    def __init__(self, *, hidden: int = 32, recent: int = 30,
                 score_on: str = "squared_error", history_windows: int = 1, epochs: int = 15,
                 batch_size: int = 128, learning_rate: float = 3e-3, n_jobs: int = 1,
                 random_state: int = 0):
        self.hidden = hidden
        self.recent = recent
        self.score_on = score_on
        self.history_windows = history_windows
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _build(self, n_sensors: int, n_steps: int):
        from torch import nn

        hidden, error = self.hidden, self._error
        recent = min(max(int(self.recent), 1), n_steps)

        class LSTMAutoencoder(nn.Module):
            """Windows (n, cycles, sensors) -> per-sensor error over the last ``recent``
            cycles (n, sensors)."""

            def __init__(self):
                super().__init__()
                self.encoder = nn.LSTM(n_sensors, hidden, batch_first=True)
                self.decoder = nn.LSTM(hidden, hidden, batch_first=True)
                self.out = nn.Linear(hidden, n_sensors)

            def residual(self, x):
                _, (h, _) = self.encoder(x)
                code = h[-1].unsqueeze(1).expand(-1, n_steps, -1)
                decoded, _ = self.decoder(code)
                return self.out(decoded) - x

            def loss(self, x):
                return (self.residual(x) ** 2).mean()

            def forward(self, x):
                return error(self.residual(x)[:, n_steps - recent:], dim=1)

        return LSTMAutoencoder()
