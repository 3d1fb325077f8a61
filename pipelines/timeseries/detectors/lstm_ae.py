"""LSTM autoencoder over standardised windows; the anomaly score is the reconstruction error.

An LSTM encoder reads the window (cycles, sensors) into its last hidden state; that state,
repeated at every cycle, drives an LSTM decoder and a linear layer back to the sensors. The
exported graph outputs each sensor's mean squared reconstruction error over the window.
Trained on healthy windows only, so degraded windows reconstruct worse.
"""
from __future__ import annotations

from typing import ClassVar

from pipelines.timeseries.detectors.onnx_window import OnnxWindowDetector


class LSTMAutoencoderDetector(OnnxWindowDetector):
    """Reconstruction error of an LSTM autoencoder (mean over sensors)."""

    name: ClassVar[str] = "lstm_autoencoder"

    def __init__(self, *, hidden: int = 32, epochs: int = 15, batch_size: int = 128,
                 learning_rate: float = 3e-3, n_jobs: int = 1, random_state: int = 0):
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _build(self, n_sensors: int, n_steps: int):
        from torch import nn

        hidden = self.hidden

        class LSTMAutoencoder(nn.Module):
            """Windows (n, cycles, sensors) -> per-sensor reconstruction error (n, sensors)."""

            def __init__(self):
                super().__init__()
                self.encoder = nn.LSTM(n_sensors, hidden, batch_first=True)
                self.decoder = nn.LSTM(hidden, hidden, batch_first=True)
                self.out = nn.Linear(hidden, n_sensors)

            def forward(self, x):
                _, (h, _) = self.encoder(x)
                code = h[-1].unsqueeze(1).expand(-1, n_steps, -1)
                decoded, _ = self.decoder(code)
                return ((self.out(decoded) - x) ** 2).mean(dim=1)

        return LSTMAutoencoder()
