"""Radial Gaussians over fixed local features: rotation-invariant per-location statistics.

Features (fixed convolutions, nothing learnt): the image is scaled to 0..1, averaged down to
``work_size`` x ``work_size``, turned into an opponent colour space (luminance, red-green,
yellow-blue) and described at every pixel by: the three colours blurred at each scale in
``sigmas``; the local standard deviation of luminance at each scale; the luminance gradient
magnitude blurred at each scale; and (``oriented``) the magnitudes of the gradient's radial
and tangential parts (along and across the line to the image centre), blurred at each scale:
rings and spokes of a round part look different, yet a turn about the centre changes neither. Every kernel is an isotropic Gaussian, so the
features of a turned image are (up to resampling) the turned features.

Model: pixels are grouped by their distance from the image centre in bins one working pixel
wide. Each bin gets one Gaussian (mean and full covariance) pooled over every angle, every
training image and, with ``rotations``, copies of each training image turned by random angles;
each pixel counts towards its two nearest bins (linear weights), and the bins ``window`` either
side are pooled in too (the part is never perfectly centred). The covariance is shrunk
towards its diagonal (``shrinkage``) and gets a small ridge. Since the parameters depend on the
radius only, a rotation about the centre does not change them: the model is as local as a
per-pixel model and rotation-invariant by construction.

Score map: the Mahalanobis distance of each pixel's features to its radius's Gaussian
(divided by the square root of the feature count), blurred (``map_smooth``, default
``smooth``) and enlarged to the input size; image score: the mean of the ``top_k`` highest
distances blurred by ``smooth``, at working resolution.
Preprocessing, features, parameters and the map head are one torch module exported to ONNX.
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Callable, ClassVar, Sequence

import numpy as np

from pipelines.core.detectors import InvalidInputError
from pipelines.inspection.detectors.common import ImageDetector, map_head, torch_blur
from pipelines.inspection.transform import random_angles, rotate_batch

logger = logging.getLogger(__name__)


def radius_bins(size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Per pixel of a ``size`` x ``size`` grid: lower bin, weight of the upper bin; bin count."""
    c = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size]
    r = np.sqrt((x - c) ** 2 + (y - c) ** 2).reshape(-1)
    lower = np.floor(r).astype(np.int64)
    return lower, (r - lower).astype(np.float32), int(lower.max()) + 2


def build_features(input_size: int, work_size: int, sigmas: Sequence[float],
                   oriented: bool = False):
    """The fixed feature extractor: (N, H, W, 3) 0..255 -> (N, features, work, work).

    ``oriented`` adds the luminance gradient's radial and tangential parts (towards the
    image centre and around it, as magnitudes): turned with the image, still invariant."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    factor = input_size // work_size
    sigmas = tuple(float(s) for s in sigmas)
    opponent = torch.tensor([[1 / 3, 1 / 3, 1 / 3], [1.0, -1.0, 0.0], [0.5, 0.5, -1.0]])
    c = (work_size - 1) / 2
    yy, xx = np.mgrid[0:work_size, 0:work_size] - c
    norm = np.sqrt(xx ** 2 + yy ** 2)
    radial = np.stack([xx / norm, yy / norm]).astype(np.float32)[None]  # (1, 2, h, w)

    class Features(nn.Module):
        """Opponent colours, local luminance spread and gradient magnitude at each scale."""

        def __init__(self):
            super().__init__()
            self.register_buffer("opponent", opponent.view(3, 3, 1, 1))
            self.register_buffer("dx", torch.tensor([[[[-0.5, 0.0, 0.5]]]]))
            self.register_buffer("dy", torch.tensor([[[[-0.5], [0.0], [0.5]]]]))
            self.register_buffer("radial", torch.from_numpy(radial))

        def forward(self, images):
            x = images.permute(0, 3, 1, 2) / 255.0
            if factor > 1:
                x = F.avg_pool2d(x, factor)
            o = F.conv2d(x, self.opponent)
            lum = o[:, :1]
            padded = F.pad(lum, (1, 1, 1, 1), mode="replicate")
            gx = F.conv2d(padded[:, :, 1:-1, :], self.dx)
            gy = F.conv2d(padded[:, :, :, 1:-1], self.dy)
            grad = torch.sqrt(gx * gx + gy * gy + 1e-6)
            if oriented:
                ux, uy = self.radial[:, :1], self.radial[:, 1:]
                parts = torch.cat([torch.abs(gx * ux + gy * uy), torch.abs(gy * ux - gx * uy)], 1)
            out = []
            for s in sigmas:
                if oriented:
                    out.append(torch_blur(parts, s))
                mean = torch_blur(o, s)
                square = torch_blur(lum * lum, s)
                # E[x^2] - E[x]^2 cancels in float32 on flat areas: the floor (a spread of 0.01,
                # 2.5 grey levels) keeps that rounding noise out of the features
                spread = torch.sqrt(torch.relu(square - mean[:, :1] ** 2) + 1e-4)
                out += [mean, spread, torch_blur(grad, s)]
            return torch.cat(out, dim=1)

    return Features()


def feature_names(sigmas: Sequence[float], oriented: bool = False) -> list[str]:
    """Names of the features, in the order :func:`build_features` computes them."""
    names = []
    for s in sigmas:
        if oriented:
            names += [f"radial_gradient@{s:g}", f"tangential_gradient@{s:g}"]
        names += [f"luminance@{s:g}", f"red-green@{s:g}", f"yellow-blue@{s:g}",
                  f"luminance_std@{s:g}", f"gradient@{s:g}"]
    return names


class RadialGaussianDetector(ImageDetector):
    """Per-radius Gaussians of fixed local features; score = Mahalanobis distance map."""

    name: ClassVar[str] = "radial"
    PARAMS_FILE: ClassVar[str] = "radial.npz"
    INFO_FILE: ClassVar[str] = "radial.json"

    def __init__(self, *, work_size: int = 128, sigmas: tuple[float, ...] = (1.0, 2.0, 4.0),
                 window: int = 0, shrinkage: float = 0.0, ridge: float = 1e-3,
                 rotations: int = 1, smooth: float = 1.0, map_smooth: float | None = 4.0,
                 top_k: int = 10, oriented: bool = True, batch_size: int = 8, n_jobs: int = 2,
                 random_state: int = 0):
        self.work_size = work_size
        self.sigmas = tuple(sigmas)
        self.window = window
        self.shrinkage = shrinkage
        self.ridge = ridge
        self.rotations = rotations
        self.smooth = smooth
        self.map_smooth = map_smooth
        self.top_k = top_k
        self.oriented = oriented
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _check_geometry(self, shape: tuple[int, ...]) -> None:
        h, w = shape[:2]
        if h != w or h % self.work_size:
            raise InvalidInputError(f"{self.name}: images must be square with a side that is a "
                                    f"multiple of work_size {self.work_size}, got {h} x {w}")

    def _scorer(self, features, mean: np.ndarray, whiten: np.ndarray):
        """The full module: features -> per-pixel Mahalanobis distance -> (scores, maps)."""
        import torch
        from torch import nn

        size = self.input_shape_[0]
        work, top_k = self.work_size, self.top_k
        smooth, map_smooth = self.smooth, self.map_smooth
        lower, upper_weight, _ = radius_bins(work)
        n_features = mean.shape[1]

        class RadialScorer(nn.Module):
            """Per-bin parameters are stored; each pixel's are interpolated between its two
            radius bins inside the graph (onnxruntime folds that into constants at load), so
            the file holds bins, not pixels."""

            def __init__(self):
                super().__init__()
                self.features = features
                self.register_buffer("bin_mean", torch.from_numpy(mean.astype(np.float32)))
                self.register_buffer("bin_whiten", torch.from_numpy(whiten.astype(np.float32)))
                self.register_buffer("lower", torch.from_numpy(lower))
                self.register_buffer("upper", torch.from_numpy(lower + 1))
                self.register_buffer("weight", torch.from_numpy(upper_weight))

            def forward(self, images):
                f = self.features(images)
                n = f.shape[0]
                w = self.weight[:, None]
                pixel_mean = self.bin_mean[self.lower] * (1 - w) + self.bin_mean[self.upper] * w
                w = w[:, :, None]
                pixel_whiten = (self.bin_whiten[self.lower] * (1 - w)
                                + self.bin_whiten[self.upper] * w)  # (P, C, C)
                diff = f.flatten(2).permute(2, 1, 0) - pixel_mean[:, :, None]  # (P, C, N)
                z = torch.matmul(pixel_whiten, diff)
                d = torch.sqrt((z * z).sum(1) / n_features)  # (P, N)
                d = d.permute(1, 0).reshape(n, 1, work, work)
                return map_head(d, (size, size), smooth, top_k, map_smooth)

        return RadialScorer()

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *,
            feature_names: Sequence[str] | None = None,
            progress: Callable[[str], None] | None = None) -> "RadialGaussianDetector":
        """Fit the per-radius Gaussians on good images ``X`` (``y`` is ignored)."""
        import torch

        images = self._check_images(X, reset=True, feature_names=feature_names)
        self._check_geometry(self.input_shape_)
        progress = progress or (lambda s: None)
        torch.set_num_threads(self.n_jobs)
        started = time.perf_counter()
        features = build_features(self.input_shape_[0], self.work_size, self.sigmas,
                                  self.oriented).eval()
        lower, upper_weight, n_bins = radius_bins(self.work_size)
        n_pixels = lower.size
        # soft assignment of each pixel to its two nearest radius bins: (P, B)
        assign = np.zeros((n_pixels, n_bins), dtype=np.float64)
        assign[np.arange(n_pixels), lower] = 1 - upper_weight
        assign[np.arange(n_pixels), lower + 1] = upper_weight
        assign_t = torch.from_numpy(assign)
        rng = np.random.default_rng(self.random_state)
        copies = [images] + [None] * self.rotations
        count = torch.zeros(n_bins, dtype=torch.float64)
        first = second = None
        total = len(images) * len(copies)
        done = 0
        for k in range(len(copies)):
            for start in range(0, len(images), self.batch_size):
                batch = images[start:start + self.batch_size]
                if k:
                    angles = random_angles(len(batch), int(rng.integers(2 ** 31)))
                    batch = rotate_batch(batch, angles).astype(np.float32)
                with torch.no_grad():
                    f = features(torch.from_numpy(batch)).double().flatten(2)  # (N, C, P)
                c = f.shape[1]
                s1 = f.sum(0) @ assign_t  # (C, B)
                outer = (f[:, :, None, :] * f[:, None, :, :]).sum(0).reshape(c * c, -1)
                s2 = (outer @ assign_t).reshape(c, c, n_bins)
                first = s1 if first is None else first + s1
                second = s2 if second is None else second + s2
                count += len(batch) * assign_t.sum(0)
                done += len(batch)
            progress(f"radial: features of {done}/{total} images "
                     f"[{time.perf_counter() - started:.0f}s]")
        mean, whiten = self._gaussians(first.numpy(), second.numpy(), count.numpy())
        self.bin_mean_, self.bin_whiten_ = mean, whiten
        self.bin_count_ = count.numpy()
        self.fit_seconds_ = time.perf_counter() - started
        self._finish(self._scorer(features, mean, whiten), fold_constants=False)
        return self

    def _gaussians(self, first: np.ndarray, second: np.ndarray, count: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Per bin: mean (B, C) and whitening matrix (B, C, C) with ``|W d|^2 = d' S^-1 d``."""
        n_bins = len(count)
        c = first.shape[0]
        kernel = np.ones(2 * self.window + 1)
        pool = lambda a: np.apply_along_axis(  # noqa: E731 - sum over the window of bins
            lambda v: np.convolve(v, kernel, mode="same"), -1, a)
        n = pool(count)
        mean = (pool(first) / n).T  # (B, C)
        second = pool(second.reshape(c * c, n_bins)).reshape(c, c, n_bins) / n
        overall = np.diag(second.sum(-1) / n_bins - np.outer(mean.mean(0), mean.mean(0)))
        ridge = self.ridge * max(float(np.mean(overall)), 1e-8)
        whiten = np.empty((n_bins, c, c))
        for b in range(n_bins):
            cov = second[:, :, b] - np.outer(mean[b], mean[b])
            cov = (1 - self.shrinkage) * cov + self.shrinkage * np.diag(np.diag(cov))
            cov += ridge * np.eye(c)
            chol = np.linalg.cholesky(cov)
            whiten[b] = np.linalg.inv(chol)  # |L^-1 d|^2 = d' S^-1 d
        return mean, whiten

    # -- bundles ------------------------------------------------------------------------
    def save(self, directory: Path) -> dict:
        """Write the ONNX graph and the per-radius parameters; ``{file: role}``."""
        self.check_is_fitted()
        directory = Path(directory)
        (directory / self.MODEL_FILE).write_bytes(self.onnx_)
        np.savez_compressed(directory / self.PARAMS_FILE, mean=self.bin_mean_,
                            whiten=self.bin_whiten_, count=self.bin_count_)
        (directory / self.INFO_FILE).write_text(json.dumps({
            "features": feature_names(self.sigmas, self.oriented), "bins": int(len(self.bin_count_)),
            "fit_seconds": round(getattr(self, "fit_seconds_", math.nan), 2)}, indent=1) + "\n")
        return {self.MODEL_FILE: "onnx: resize, features, per-pixel Gaussians, map head",
                self.PARAMS_FILE: "per-radius-bin means and whitening matrices (for the record)",
                self.INFO_FILE: "feature names and bin count"}

    @classmethod
    def load(cls, directory: Path, manifest: dict, **overrides) -> "RadialGaussianDetector":
        """A scoring-only detector from a bundle (onnxruntime, no torch)."""
        detector = cls._from_manifest(manifest, **overrides)
        detector._load_onnx(directory)
        return detector
