"""The baseline: a convolutional autoencoder; score = reconstruction error.

As in the public reference project, the decoder enlarges with ``Upsample`` + ``Conv2d`` (not
``ConvTranspose2d``, whose uneven overlaps leave checkerboard artifacts). The image is scaled
to 0..1 and averaged down to ``work_size`` x ``work_size``; the encoder halves it three times
with strided 4 x 4 convolutions, a dense bottleneck of ``latent`` numbers squeezes it, and the
decoder mirrors the encoder (nearest-neighbour upsampling, 3 x 3 convolution, LeakyReLU) to a
sigmoid output. Training: mean squared error, Adam, on the good images and, with
``rotations``, copies turned by random angles (the background filled in).

Score map: the squared error per pixel (mean over colours), blurred (``smooth``) and enlarged
to the input size; image score: the mean of the ``top_k`` highest map values at working
resolution. Preprocessing, network and map head are one torch module exported to ONNX.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable, ClassVar, Sequence

import numpy as np

from pipelines.core.detectors import InvalidInputError
from pipelines.inspection.detectors.common import ImageDetector, map_head
from pipelines.inspection.transform import random_angles, rotate_batch

logger = logging.getLogger(__name__)


class AutoencoderDetector(ImageDetector):
    """Convolutional autoencoder (Upsample + Conv2d decoder); score = reconstruction error."""

    name: ClassVar[str] = "autoencoder"
    HISTORY_FILE: ClassVar[str] = "history.json"

    def __init__(self, *, work_size: int = 64, channels: tuple[int, ...] = (32, 64, 64, 64),
                 latent: int = 128, epochs: int = 30, batch_size: int = 32,
                 learning_rate: float = 2e-3, rotations: int = 1, smooth: float = 1.0,
                 top_k: int = 10, n_jobs: int = 2, random_state: int = 0):
        self.work_size = work_size
        self.channels = tuple(channels)
        self.latent = latent
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.rotations = rotations
        self.smooth = smooth
        self.top_k = top_k
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _build(self):
        import torch.nn.functional as F
        from torch import nn

        size = self.input_shape_[0]
        work = self.work_size
        factor = size // work
        if size != self.input_shape_[1] or size % work or work % (2 ** len(self.channels)):
            raise InvalidInputError(
                f"{self.name}: images must be square with a side that is a multiple of "
                f"work_size {work}, itself a multiple of {2 ** len(self.channels)}; got "
                f"{self.input_shape_[0]} x {self.input_shape_[1]}")
        inner = work // 2 ** len(self.channels)
        chans = list(self.channels)
        encoder: list[nn.Module] = []
        c_in = 3
        for c_out in chans:
            encoder += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c_in = c_out
        decoder: list[nn.Module] = []
        for c_out in chans[-2::-1] + [16]:
            decoder += [nn.Upsample(scale_factor=2, mode="nearest"),
                        nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.2)]
            c_in = c_out
        decoder += [nn.Conv2d(c_in, 3, 3, padding=1), nn.Sigmoid()]
        flat = chans[-1] * inner * inner
        latent, top_k, smooth = self.latent, self.top_k, self.smooth

        class Autoencoder(nn.Module):
            """Images (N, H, W, 3) 0..255 -> (scores, maps); ``reconstruct`` for training."""

            def __init__(self):
                super().__init__()
                self.encoder = nn.Sequential(*encoder)
                self.squeeze = nn.Linear(flat, latent)
                self.expand = nn.Sequential(nn.Linear(latent, flat), nn.LeakyReLU(0.2))
                self.decoder = nn.Sequential(*decoder)

            @staticmethod
            def prepare(images):
                x = images.permute(0, 3, 1, 2) / 255.0
                return F.avg_pool2d(x, factor) if factor > 1 else x

            def reconstruct(self, x):
                z = self.squeeze(self.encoder(x).flatten(1))
                h = self.expand(z).view(-1, chans[-1], inner, inner)
                return self.decoder(h)

            def forward(self, images):
                x = self.prepare(images)
                error = ((x - self.reconstruct(x)) ** 2).mean(dim=1, keepdim=True)
                return map_head(error, (size, size), smooth, top_k)

        return Autoencoder()

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *,
            feature_names: Sequence[str] | None = None,
            progress: Callable[[str], None] | None = None) -> "AutoencoderDetector":
        """Train on good images ``X`` (``y`` is ignored)."""
        import torch

        images = self._check_images(X, reset=True, feature_names=feature_names)
        progress = progress or (lambda s: None)
        torch.manual_seed(self.random_state)
        torch.set_num_threads(self.n_jobs)
        module = self._build()
        started = time.perf_counter()
        rng = np.random.default_rng(self.random_state)
        copies = [images] + [rotate_batch(images, random_angles(len(images), int(
            rng.integers(2 ** 31)))).astype(np.float32) for _ in range(self.rotations)]
        with torch.no_grad():
            data = torch.cat([module.prepare(torch.from_numpy(c)) for c in copies])
        optimiser = torch.optim.Adam(module.parameters(), lr=self.learning_rate)
        steps = max(1, -(-len(data) // self.batch_size))
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimiser, max_lr=self.learning_rate, total_steps=self.epochs * steps)
        generator = torch.Generator().manual_seed(self.random_state)
        history = []
        for epoch in range(self.epochs):
            module.train()
            order = torch.randperm(len(data), generator=generator)
            total = 0.0
            for s in range(steps):
                xb = data[order[s * self.batch_size:(s + 1) * self.batch_size]]
                loss = torch.nn.functional.mse_loss(module.reconstruct(xb), xb)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
                total += loss.item() * len(xb)
            history.append({"epoch": epoch + 1, "loss": round(total / len(data), 6)})
            if (epoch + 1) % max(1, self.epochs // 10) == 0 or epoch + 1 == self.epochs:
                progress(f"autoencoder: epoch {epoch + 1}/{self.epochs}, loss "
                         f"{history[-1]['loss']:.5f} [{time.perf_counter() - started:.0f}s]")
        self.history_ = history
        self.fit_seconds_ = time.perf_counter() - started
        self._finish(module)
        return self

    def save(self, directory: Path) -> dict:
        """Write the ONNX graph and the training history; ``{file: role}``."""
        self.check_is_fitted()
        directory = Path(directory)
        (directory / self.MODEL_FILE).write_bytes(self.onnx_)
        (directory / self.HISTORY_FILE).write_text(json.dumps({
            "history": getattr(self, "history_", None),
            "fit_seconds": round(getattr(self, "fit_seconds_", float("nan")), 2)}) + "\n")
        return {self.MODEL_FILE: "onnx: resize, autoencoder, error map head",
                self.HISTORY_FILE: "training loss per epoch"}

    @classmethod
    def load(cls, directory: Path, manifest: dict, **overrides) -> "AutoencoderDetector":
        """A scoring-only detector from a bundle (onnxruntime, no torch)."""
        detector = cls._from_manifest(manifest, **overrides)
        detector._load_onnx(directory)
        return detector
