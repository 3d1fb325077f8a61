"""What both image detectors share: the input check, blur kernels, the map head, ONNX export.

Both detectors take ``(images, height, width, 3)`` RGB arrays with values 0..255 and export one
ONNX graph from that input to ``(scores, maps)``: the image score and the anomaly map at input
resolution. Torch is imported inside functions only (serving never imports it).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from pipelines.core import budget
from pipelines.core.detectors import BaseDetector, InvalidInputError, PixelExplanation
from pipelines.core.onnx import onnx_session, torch_to_onnx

# images per onnxruntime call (a detector may take fewer): onnxruntime keeps its largest
# call's activations in its arena (16 images a call peaked at 454 MiB server PSS in
# benchmarks.inspection_bench --api, 4 at 310 MiB), so this bounds serving memory
IMAGES_PER_CALL = 4


def gaussian_kernel(sigma: float) -> np.ndarray:
    """A normalised 1-D Gaussian kernel reaching 3 sigma each side."""
    radius = max(1, int(math.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-x ** 2 / (2 * sigma ** 2))
    return (k / k.sum()).astype(np.float32)


def torch_blur(x, sigma: float):
    """Separable Gaussian blur of a torch batch (N, C, H, W), edges replicated (exports to ONNX)."""
    import torch
    import torch.nn.functional as F

    if sigma <= 0:
        return x
    k = gaussian_kernel(sigma)
    r = (len(k) - 1) // 2
    c = int(x.shape[1])
    # the kernels are built in numpy at their final shape, so the export sees constants
    rows = torch.from_numpy(np.ascontiguousarray(np.tile(k.reshape(1, 1, 1, -1), (c, 1, 1, 1))))
    cols = torch.from_numpy(np.ascontiguousarray(np.tile(k.reshape(1, 1, -1, 1), (c, 1, 1, 1))))
    x = F.pad(x, (r, r, r, r), mode="replicate")
    return F.conv2d(F.conv2d(x, rows, groups=c), cols, groups=c)


def map_head(distance, size: tuple[int, int], smooth: float, top_k: int,
             map_smooth: float | None = None):
    """(N, 1, h, w) per-pixel distances -> (scores (N,), maps (N, H, W)).

    The image score is the mean of the ``top_k`` largest values (1: the maximum) of the
    distances blurred by ``smooth`` pixels at the working resolution; the map is the distances
    blurred by ``map_smooth`` (default: ``smooth``) and enlarged bilinearly to the input size.
    """
    import torch.nn.functional as F

    smoothed = torch_blur(distance, smooth)
    flat = smoothed.flatten(1)
    scores = flat.max(dim=1).values if top_k <= 1 else flat.topk(top_k, dim=1).values.mean(1)
    if map_smooth is not None and map_smooth != smooth:
        smoothed = torch_blur(distance, map_smooth)
    maps = F.interpolate(smoothed, size=size, mode="bilinear", align_corners=False)
    return scores, maps[:, 0]


class ImageDetector(BaseDetector):
    """Shared behaviour of the image detectors: input checks and ONNX scoring.

    Subclasses build ``session_`` (and ``onnx_``) in ``fit`` and ``load``.
    """

    input_ndim = 4  # (images, height, width, channels)
    score_range = (0.0, math.inf)
    MODEL_FILE = "model.onnx"
    images_per_call = IMAGES_PER_CALL
    memory_arena = False  # see pipelines.core.onnx.onnx_session

    def _check_images(self, X, *, reset: bool,
                      feature_names: Sequence[str] | None = None) -> np.ndarray:
        """The base checks, then RGB values within 0..255; float32 images."""
        X = self._check_input(X, reset=reset, feature_names=feature_names)
        if X.shape[-1] != 3:
            raise InvalidInputError(f"{self.name}: expected RGB images (3 channels last), "
                                    f"got shape {X.shape}")
        low, high = float(X.min()), float(X.max())
        if low < 0 or high > 255:
            raise InvalidInputError(f"{self.name}: pixel values must be within 0..255, got "
                                    f"{low:g}..{high:g}")
        return np.ascontiguousarray(X, dtype=np.float32)

    def _run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores, maps = [], []
        step = self.images_per_call
        for start in range(0, len(images), step):
            budget.check()
            s, m = self.session_.run(None, {"images": images[start:start + step]})
            scores.append(s)
            maps.append(m)
        return np.concatenate(scores).astype(float), np.concatenate(maps)

    def score(self, X: np.ndarray) -> np.ndarray:
        """One anomaly score per image (higher: less like the good training images)."""
        return self._run(self._check_images(X, reset=False))[0]

    def explain(self, X: np.ndarray) -> PixelExplanation:
        """Scores plus the anomaly map of each image at input resolution."""
        scores, maps = self._run(self._check_images(X, reset=False))
        return PixelExplanation(scores, maps)

    def torch_outputs(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores and maps from the torch module (only after ``fit``; checks the export)."""
        import torch

        images = self._check_images(X, reset=False)
        with torch.no_grad():
            scores, maps = self.module_(torch.from_numpy(images))
        return scores.numpy().astype(float), maps.numpy()

    def _finish(self, module, fold_constants: bool = True) -> None:
        """Keep the torch module, export it and open the serving session."""
        self.module_ = module.eval()
        import torch

        self.onnx_ = torch_to_onnx(module, torch.full((2, *self.input_shape_), 128.0),
                                   ["images"], ["scores", "maps"], fold_constants)
        self.session_ = onnx_session(self.onnx_, self.n_jobs, self.memory_arena)

    def _load_onnx(self, directory: Path) -> None:
        self.onnx_ = (Path(directory) / self.MODEL_FILE).read_bytes()
        self.session_ = onnx_session(self.onnx_, self.n_jobs, self.memory_arena)
