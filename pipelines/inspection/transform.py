"""Image transforms: rotation about the centre with the background filled in, border colour.

Bottles turn freely about their own axis on a line, so the evaluation (and the training
augmentation) rotates images about the image centre; the corners that come into view are
filled with the photo's own background colour, sampled from its border.
"""
from __future__ import annotations

import numpy as np

BORDER = 4  # pixels of each edge sampled for the background colour


def background_colour(image: np.ndarray, border: int = BORDER) -> tuple[int, ...]:
    """The per-channel median of the image's outer ``border`` pixels (its background)."""
    image = np.asarray(image)
    edge = np.concatenate([image[:border].reshape(-1, image.shape[-1]),
                           image[-border:].reshape(-1, image.shape[-1]),
                           image[:, :border].reshape(-1, image.shape[-1]),
                           image[:, -border:].reshape(-1, image.shape[-1])])
    return tuple(int(round(v)) for v in np.median(edge, axis=0))


def rotate_image(image: np.ndarray, angle: float, fill: tuple[int, ...] | None = None
                 ) -> np.ndarray:
    """An (H, W, 3) uint8 image turned ``angle`` degrees (counter-clockwise) about its centre.

    Bilinear; the uncovered corners get ``fill`` (default: :func:`background_colour`).
    """
    from PIL import Image

    image = np.asarray(image)
    fill = background_colour(image) if fill is None else fill
    turned = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).rotate(
        float(angle), resample=Image.BILINEAR, fillcolor=tuple(fill))
    return np.asarray(turned)


def rotate_mask(mask: np.ndarray, angle: float) -> np.ndarray:
    """A defect mask (H, W) turned like :func:`rotate_image` (nearest neighbour, 0 outside)."""
    from PIL import Image

    turned = Image.fromarray((np.asarray(mask) > 0).astype(np.uint8) * 255).rotate(
        float(angle), resample=Image.NEAREST, fillcolor=0)
    return np.asarray(turned) > 0


def random_angles(n: int, seed: int) -> np.ndarray:
    """``n`` angles drawn uniformly from [0, 360) degrees with a fixed seed."""
    return np.random.default_rng(seed).uniform(0.0, 360.0, size=n)


def rotate_batch(images: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Each image of (N, H, W, 3) turned by its angle (background filled per image)."""
    return np.stack([rotate_image(im, a) for im, a in zip(images, angles)])
