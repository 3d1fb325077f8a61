"""Radial Gaussian mixtures over fixed local features: rotation-invariant per-location statistics.

Features (fixed convolutions, nothing learnt): the image is scaled to 0..1, averaged down to
``work_size`` x ``work_size``, turned into an opponent colour space (luminance, red-green,
yellow-blue) and described at every pixel by: the three colours blurred at each scale in
``sigmas``; the local standard deviation of luminance at each scale; the luminance gradient
magnitude blurred at each scale; and (``oriented``) the magnitudes of the gradient's radial
and tangential parts (along and across the line to the image centre), blurred at each scale:
rings and spokes of a round part look different, yet a turn about the centre changes neither.
Every kernel is an isotropic Gaussian, so the features of a turned image are (up to
resampling) the turned features.

Model: pixels are grouped by their distance from the image centre, rounded to the nearest
working pixel (one ring per bin). Each ring gets a mixture of ``components`` Gaussians (full
covariances, ``reg_covar`` added to their diagonals) over the features scaled to unit spread,
fitted by EM (scikit-learn, training only) on up to ``samples_per_bin`` pixels drawn from the
ring and the ``window`` rings either side, over every angle of every training image and, with
``rotations``, copies of each turned by random angles. A mixture, not one Gaussian: at one
radius a good part looks several ways (the rim's reflection, its dark grain), and one broad
Gaussian hides a faint spot that each of those modes alone would not. Since the parameters
depend on the radius only, a rotation about the centre does not change them: the model is as
local as a per-pixel model and rotation-invariant by construction.

Score map: each pixel's smallest Mahalanobis distance to its ring's components (divided by the
square root of the feature count), blurred (``map_smooth``, default ``smooth``) and enlarged to
the input size; image score: the mean of the ``top_k`` highest distances blurred by
``smooth``, at working resolution. Preprocessing, features, parameters and the map head are one
torch module exported to ONNX.
"""
from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from typing import Callable, ClassVar, Sequence

import numpy as np

from pipelines.core.detectors import InvalidInputError
from pipelines.inspection.detectors.common import ImageDetector, map_head, torch_blur
from pipelines.inspection.transform import random_angles, rotate_batch



def ring_layout(size: int, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """How the scorer groups the pixels of a ``size`` x ``size`` grid by ring.

    Each pixel's ring is its distance from the centre, rounded. Every ring's pixels are cut
    into chunks of ``chunk`` (the last one padded by repeating its first pixel), so the whole
    grid is scored as one batched product over chunks. Returns ``(ring of each pixel (P,),
    pixel of each chunk slot (G * chunk,), ring of each chunk (G,), ring count)``.
    """
    c = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size]
    ring = np.rint(np.sqrt((x - c) ** 2 + (y - c) ** 2)).astype(np.int64).reshape(-1)
    slots, chunk_ring = [], []
    for r in range(int(ring.max()) + 1):
        pixels = np.flatnonzero(ring == r)
        for start in range(0, len(pixels), chunk):
            part = np.full(chunk, pixels[start])
            part[:len(pixels[start:start + chunk])] = pixels[start:start + chunk]
            slots.append(part)
            chunk_ring.append(r)
    return ring, np.concatenate(slots), np.array(chunk_ring), int(ring.max()) + 1


def slot_of_pixel(slots: np.ndarray) -> np.ndarray:
    """For each pixel, the first chunk slot that holds it (undoes :func:`ring_layout`'s order;
    every pixel has a slot)."""
    return np.unique(slots, return_index=True)[1]


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
    """Per-ring Gaussian mixtures of fixed local features; score = Mahalanobis distance map."""

    name: ClassVar[str] = "radial"
    PARAMS_FILE: ClassVar[str] = "radial.npz"
    INFO_FILE: ClassVar[str] = "radial.json"
    CHUNK: ClassVar[int] = 64  # pixels of one ring scored together (see ring_layout)
    # one photo per onnxruntime call: the per-component distances of a photo are 26 MB, and
    # larger calls were slower, not faster (55 photos/s one at a time, 27 four at a time);
    # with onnxruntime's arena those buffers are kept, not faulted in anew on every call in
    # the server (one photo through HTTP: 42-49 ms with it, 48-64 without; +30 MiB kept)
    images_per_call = 1
    memory_arena = True

    def __init__(self, *, work_size: int = 128, sigmas: tuple[float, ...] = (1.0, 2.0, 4.0),
                 components: int = 16, window: int = 1, samples_per_bin: int = 10000,
                 reg_covar: float = 1e-4, rotations: int = 1, smooth: float = 1.0,
                 map_smooth: float | None = 4.0, top_k: int = 10, oriented: bool = True,
                 batch_size: int = 8, n_jobs: int = 2, random_state: int = 0):
        self.work_size = work_size
        self.sigmas = tuple(sigmas)
        self.components = components
        self.window = window
        self.samples_per_bin = samples_per_bin
        self.reg_covar = reg_covar
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

    def _scorer(self, features, params: dict):
        """The full module: features -> each pixel's distance to its ring -> (scores, maps).

        ``params``: ``scale`` (C,), and per ring ``mean`` (B, K, C) and ``whiten`` (B, K, C, C)
        with ``|whiten[b, k] (x - mean[b, k])|^2`` the squared Mahalanobis distance."""
        import torch
        from torch import nn

        size = self.input_shape_[0]
        work, top_k, chunk = self.work_size, self.top_k, self.CHUNK
        smooth, map_smooth = self.smooth, self.map_smooth
        _, slots, chunk_ring, _ = ring_layout(work, chunk)
        n_chunks = len(chunk_ring)
        mean = params["mean"].astype(np.float32)
        whiten = params["whiten"].astype(np.float32)
        n_features = mean.shape[-1]
        # z = W x - W mean = [W, -W mean] [x; 1]: one product, no separate subtraction (that
        # pass over z cost as much as the product itself)
        affine = np.concatenate([whiten, -np.einsum("bkcd,bkd->bkc", whiten, mean)[..., None]],
                                axis=-1)  # (B, K, C, C + 1)
        n_rings, n_components = mean.shape[:2]
        affine = affine.reshape(n_rings, n_components * n_features, n_features + 1)

        class RadialScorer(nn.Module):
            """Pixels are gathered into chunks of one ring each, scored against that ring's
            components in one batched product, and put back in place."""

            def __init__(self):
                super().__init__()
                self.features = features
                self.register_buffer("scale", torch.from_numpy(
                    params["scale"].astype(np.float32)).view(1, -1, 1))
                # per ring in the file; the per-chunk copies are made by onnxruntime at load
                self.register_buffer("affine", torch.from_numpy(affine))
                self.register_buffer("chunk_ring", torch.from_numpy(chunk_ring))
                self.register_buffer("slots", torch.from_numpy(slots))
                self.register_buffer("back", torch.from_numpy(slot_of_pixel(slots)))

            def forward(self, images):
                n = images.shape[0]
                x = (self.features(images).flatten(2) / self.scale)[:, :, self.slots]
                x = x.reshape(n, n_features, n_chunks, chunk).permute(2, 1, 0, 3)
                x = x.reshape(n_chunks, n_features, n * chunk)  # (G, C, N*L)
                x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
                # one product per chunk, all components at once: (G, K*C, C+1) @ (G, C+1, N*L)
                z = torch.matmul(self.affine[self.chunk_ring], x)
                z = z.reshape(n_chunks, n_components, n_features, n * chunk)
                # one reduction pass (ONNX ReduceL2), no squared copy of z
                d = torch.linalg.vector_norm(z, dim=2).min(1).values / math.sqrt(n_features)
                d = d.reshape(n_chunks, n, chunk).permute(1, 0, 2).reshape(n, -1)
                d = d[:, self.back].reshape(n, 1, work, work)
                return map_head(d, (size, size), smooth, top_k, map_smooth)

        return RadialScorer()

    def _ring_samples(self, images: np.ndarray, features, progress: Callable[[str], None]
                      ) -> list[np.ndarray]:
        """Up to ``samples_per_bin`` feature vectors of each ring's pixels, drawn evenly from
        the images and their turned copies (fixed seed): a list of (n, C) float32 arrays."""
        import torch

        ring, _, _, n_rings = ring_layout(self.work_size, self.CHUNK)
        members = [np.flatnonzero(ring == r) for r in range(n_rings)]
        rng = np.random.default_rng(self.random_state)
        copies = 1 + self.rotations
        total = len(images) * copies
        samples: list[list[np.ndarray]] = [[] for _ in range(n_rings)]
        started, done = time.perf_counter(), 0
        for k in range(copies):
            for start in range(0, len(images), self.batch_size):
                batch = images[start:start + self.batch_size]
                if k:
                    angles = random_angles(len(batch), int(rng.integers(2 ** 31)))
                    batch = rotate_batch(batch, angles).astype(np.float32)
                with torch.no_grad():
                    f = features(torch.from_numpy(batch)).flatten(2).numpy()  # (N, C, P)
                for r, pixels in enumerate(members):
                    pool = len(batch) * len(pixels)
                    take = min(pool, math.ceil(self.samples_per_bin * len(batch) / total))
                    pick = rng.choice(pool, take, replace=False)
                    samples[r].append(f[pick // len(pixels), :, pixels[pick % len(pixels)]])
                done += len(batch)
            progress(f"radial: features of {done}/{total} images "
                     f"[{time.perf_counter() - started:.0f}s]")
        return [np.concatenate(s) for s in samples]

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *,
            feature_names: Sequence[str] | None = None,
            progress: Callable[[str], None] | None = None) -> "RadialGaussianDetector":
        """Fit the per-ring Gaussian mixtures on good images ``X`` (``y`` is ignored)."""
        import torch
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.mixture import GaussianMixture

        images = self._check_images(X, reset=True, feature_names=feature_names)
        self._check_geometry(self.input_shape_)
        progress = progress or (lambda s: None)
        torch.set_num_threads(self.n_jobs)
        started = time.perf_counter()
        features = build_features(self.input_shape_[0], self.work_size, self.sigmas,
                                  self.oriented).eval()
        samples = self._ring_samples(images, features, progress)
        scale = np.concatenate(samples).std(0) + 1e-6
        rng = np.random.default_rng(self.random_state)
        n_rings, (k, c) = len(samples), (self.components, len(scale))
        mean, whiten = np.empty((n_rings, k, c)), np.empty((n_rings, k, c, c))
        weights = np.empty((n_rings, k))
        for r in range(n_rings):
            pooled = np.concatenate(samples[max(0, r - self.window):r + self.window + 1]) / scale
            if len(pooled) > self.samples_per_bin:
                pooled = pooled[rng.choice(len(pooled), self.samples_per_bin, replace=False)]
            with warnings.catch_warnings():
                # rings in the corners hold many identical pixels (the background, and the
                # fill of turned copies): fewer distinct clusters than components is expected
                warnings.simplefilter("ignore", ConvergenceWarning)
                mixture = GaussianMixture(min(k, len(pooled)), covariance_type="full",
                                          reg_covar=self.reg_covar,
                                          random_state=self.random_state).fit(pooled)
            found = len(mixture.weights_)  # fewer pixels than components: repeat the last
            order = np.minimum(np.arange(k), found - 1)
            mean[r] = mixture.means_[order]
            whiten[r] = np.swapaxes(mixture.precisions_cholesky_, 1, 2)[order]
            weights[r] = mixture.weights_[order]
            if r % 10 == 0 or r == n_rings - 1:
                progress(f"radial: mixtures of {r + 1}/{n_rings} rings "
                         f"[{time.perf_counter() - started:.0f}s]")
        self.params_ = {"scale": scale, "mean": mean, "whiten": whiten, "weights": weights,
                        "count": np.array([len(s) for s in samples])}
        self.fit_seconds_ = time.perf_counter() - started
        self._finish(self._scorer(features, self.params_), fold_constants=False)
        return self

    # -- bundles ------------------------------------------------------------------------
    def save(self, directory: Path) -> dict:
        """Write the ONNX graph and the per-ring parameters; ``{file: role}``."""
        self.check_is_fitted()
        directory = Path(directory)
        (directory / self.MODEL_FILE).write_bytes(self.onnx_)
        np.savez_compressed(directory / self.PARAMS_FILE, **self.params_)
        (directory / self.INFO_FILE).write_text(json.dumps({
            "features": feature_names(self.sigmas, self.oriented),
            "rings": int(len(self.params_["count"])), "components": self.components,
            "fit_seconds": round(getattr(self, "fit_seconds_", math.nan), 2)}, indent=1) + "\n")
        return {self.MODEL_FILE: "onnx: resize, features, per-ring Gaussian mixtures, map head",
                self.PARAMS_FILE: "per-ring feature scale, mixture means, whitening matrices "
                                  "and weights (for the record and the torch rebuild)",
                self.INFO_FILE: "feature names, ring and component counts"}

    @classmethod
    def load(cls, directory: Path, manifest: dict, **overrides) -> "RadialGaussianDetector":
        """A scoring-only detector from a bundle (onnxruntime, no torch)."""
        detector = cls._from_manifest(manifest, **overrides)
        detector._load_onnx(directory)
        return detector
