"""Synthetic defects on good images, for tuning without looking at the test images.

Three kinds, each with its mask: ``cutpaste`` (a patch of another good image, turned and
brightened or darkened, pasted elsewhere on the part), ``spot`` (a soft blob of a random
colour: contamination) and ``chip`` (an irregular piece of the part's rim replaced by the
background: breakage). Used by ``pipelines.inspection.tune`` and to report synthetic-defect
figures from training; never by serving.
"""
from __future__ import annotations

import numpy as np

from pipelines.inspection.transform import background_colour

KINDS = ("cutpaste", "spot", "chip")


def _disc_point(rng: np.random.Generator, size: int, low: float, high: float
                ) -> tuple[float, float]:
    """A random point at a radius in [low, high] x half the side from the centre."""
    r = rng.uniform(low, high) * size / 2
    a = rng.uniform(0, 2 * np.pi)
    c = (size - 1) / 2
    return c + r * np.sin(a), c + r * np.cos(a)


def cutpaste(image: np.ndarray, donor: np.ndarray, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray]:
    """A patch of ``donor`` (turned, brightness changed) pasted onto ``image``."""
    from PIL import Image

    size = image.shape[0]
    h, w = (int(v) for v in rng.integers(size // 20, size // 4, size=2))
    sy, sx = _disc_point(rng, size, 0.0, 0.6)
    patch = donor[int(sy) - h // 2:int(sy) - h // 2 + h, int(sx) - w // 2:int(sx) - w // 2 + w]
    patch = np.asarray(Image.fromarray(patch).rotate(rng.uniform(0, 360), expand=False,
                                                     fillcolor=None))
    patch = np.clip(patch.astype(float) * rng.uniform(0.6, 1.4), 0, 255)
    ty, tx = _disc_point(rng, size, 0.0, 0.75)
    y0, x0 = int(np.clip(ty - h // 2, 0, size - h)), int(np.clip(tx - w // 2, 0, size - w))
    out = image.copy()
    out[y0:y0 + h, x0:x0 + w] = patch
    mask = np.zeros(image.shape[:2], dtype=bool)
    mask[y0:y0 + h, x0:x0 + w] = True
    return out, mask


def spot(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A soft elliptical blob of a random colour somewhere on the part."""
    size = image.shape[0]
    cy, cx = _disc_point(rng, size, 0.0, 0.75)
    ry, rx = rng.uniform(size / 80, size / 12, size=2)
    angle = rng.uniform(0, np.pi)
    y, x = np.mgrid[0:size, 0:size]
    u = ((x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)) / rx
    v = (-(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)) / ry
    d = u ** 2 + v ** 2
    alpha = np.clip(1.5 - d, 0, 1)[..., None] * rng.uniform(0.5, 1.0)
    colour = rng.uniform(0, 255, size=3)
    out = np.clip(image * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)
    return out, d <= 1.0


def chip(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """An irregular polygon on the part's rim filled with the background colour."""
    from PIL import Image, ImageDraw

    size = image.shape[0]
    cy, cx = _disc_point(rng, size, 0.7, 0.9)
    n = int(rng.integers(5, 9))
    radius = rng.uniform(size / 40, size / 8)
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    points = [(cx + radius * rng.uniform(0.5, 1.2) * np.cos(a),
               cy + radius * rng.uniform(0.5, 1.2) * np.sin(a)) for a in angles]
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).polygon(points, fill=255)
    mask = np.asarray(canvas) > 0
    out = image.copy()
    out[mask] = np.array(background_colour(image), dtype=np.uint8)
    return out, mask


def make_defects(images: np.ndarray, seed: int = 0, per_image: int = 1
                 ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``per_image`` defective copies of every image, kinds in turn: images, masks, kinds."""
    rng = np.random.default_rng(seed)
    out, masks, kinds = [], [], []
    for i in range(len(images) * per_image):
        image = images[i % len(images)]
        kind = KINDS[i % len(KINDS)]
        if kind == "cutpaste":
            donor = images[int(rng.integers(len(images)))]
            defective, mask = cutpaste(image, donor, rng)
        elif kind == "spot":
            defective, mask = spot(image, rng)
        else:
            defective, mask = chip(image, rng)
        out.append(defective)
        masks.append(mask)
        kinds.append(kind)
    return np.stack(out), np.stack(masks), kinds
