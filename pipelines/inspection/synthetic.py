"""Synthetic defects on good images, for tuning without looking at the test images.

Seven kinds, each with its mask. Three plain ones: ``cutpaste`` (a patch of another good
image, turned and brightened or darkened, pasted elsewhere on the part), ``spot`` (a soft blob
of a random colour: contamination) and ``chip`` (an irregular piece of the part's rim replaced
by the background: breakage). Four subtle ones, which the plain ones left out (every model
found nearly all of those): ``faint`` (a small, half-transparent blob a little lighter or
darker than the part under it), ``crack`` (a thin wandering line, lighter or darker),
``smallchip`` (a small chip at the very edge of the rim) and ``selfpaste`` (a small patch of
the same image moved to another place, so colour and texture are the part's own). Used by
``pipelines.inspection.tune``, to report synthetic-defect figures from training and for the
page's sample photos; never by serving.
"""
from __future__ import annotations

import numpy as np

from pipelines.inspection.transform import background_colour

KINDS = ("cutpaste", "spot", "chip", "faint", "crack", "smallchip", "selfpaste")


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


def chip(image: np.ndarray, rng: np.random.Generator, reach: tuple[float, float] = (0.7, 0.9),
         radii: tuple[float, float] = (40, 8)) -> tuple[np.ndarray, np.ndarray]:
    """An irregular polygon on the part's rim (``reach``: its centre's radius as a fraction of
    half the side; ``radii``: its size from side/40 to side/8) filled with the background."""
    from PIL import Image, ImageDraw

    size = image.shape[0]
    cy, cx = _disc_point(rng, size, *reach)
    n = int(rng.integers(5, 9))
    radius = rng.uniform(size / radii[0], size / radii[1])
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    points = [(cx + radius * rng.uniform(0.5, 1.2) * np.cos(a),
               cy + radius * rng.uniform(0.5, 1.2) * np.sin(a)) for a in angles]
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).polygon(points, fill=255)
    mask = np.asarray(canvas) > 0
    out = image.copy()
    out[mask] = np.array(background_colour(image), dtype=np.uint8)
    return out, mask


def _blob(image: np.ndarray, rng: np.random.Generator, reach: float, radii: tuple[float, float]
          ) -> tuple[np.ndarray, np.ndarray]:
    """A random ellipse within ``reach`` of the centre: (squared elliptical distance of every
    pixel from its centre, (row, column) of the centre)."""
    size = image.shape[0]
    cy, cx = _disc_point(rng, size, 0.0, reach)
    ry, rx = rng.uniform(size / radii[0], size / radii[1], size=2)
    angle = rng.uniform(0, np.pi)
    y, x = np.mgrid[0:size, 0:size]
    u = ((x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)) / rx
    v = (-(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)) / ry
    return u ** 2 + v ** 2, (cy, cx)


def _paint(image: np.ndarray, d: np.ndarray, opacity: float, colour: np.ndarray) -> np.ndarray:
    """``colour`` laid over ``image`` at ``opacity`` inside a :func:`_blob`, fading out between
    its edge (``d`` = 1) and half as far again (``d`` = 1.5)."""
    alpha = np.clip(1.5 - d, 0, 1)[..., None] * opacity
    return np.clip(image * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)


def spot(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A soft elliptical blob of a random colour somewhere on the part."""
    d, _ = _blob(image, rng, 0.75, (80, 12))
    opacity = rng.uniform(0.5, 1.0)
    return _paint(image, d, opacity, rng.uniform(0, 255, size=3)), d <= 1.0


def faint(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A small half-transparent blob 40-100 grey levels lighter or darker than the part there."""
    size = image.shape[0]
    d, (cy, cx) = _blob(image, rng, 0.85, (100, 30))
    opacity = rng.uniform(0.3, 0.7)
    under = image[int(np.clip(cy, 0, size - 1)), int(np.clip(cx, 0, size - 1))].astype(float)
    colour = np.clip(under + rng.choice([-1, 1]) * rng.uniform(40, 100)
                     + rng.normal(0, 20, 3), 0, 255)
    return _paint(image, d, opacity, colour), d <= 1.0


def crack(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A wandering line 2-3 pixels wide, 40-110 grey levels lighter or darker."""
    from PIL import Image, ImageDraw

    size = image.shape[0]
    points = [_disc_point(rng, size, 0.2, 0.9)[::-1]]
    heading = rng.uniform(0, 2 * np.pi)
    for _ in range(int(rng.integers(4, 10))):
        heading += rng.normal(0, 0.6)
        step = rng.uniform(size / 60, size / 25)
        points.append((points[-1][0] + step * np.cos(heading),
                       points[-1][1] + step * np.sin(heading)))
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).line(points, fill=255, width=int(rng.integers(2, 4)))
    mask = np.asarray(canvas) > 0
    out = image.astype(float)
    out[mask] = np.clip(out[mask] + rng.choice([-1, 1]) * rng.uniform(40, 110), 0, 255)
    return out.astype(np.uint8), mask


def smallchip(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A small :func:`chip` at the outer edge of the rim."""
    return chip(image, rng, reach=(0.8, 0.95), radii=(60, 25))


def selfpaste(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A small patch of the image itself moved elsewhere on the part; the mask is where the
    pixels changed (the whole patch when almost none did)."""
    size = image.shape[0]
    h, w = (int(v) for v in rng.integers(size // 30, size // 10, size=2))
    sy, sx = _disc_point(rng, size, 0.0, 0.8)
    y0, x0 = int(np.clip(sy - h // 2, 0, size - h)), int(np.clip(sx - w // 2, 0, size - w))
    patch = image[y0:y0 + h, x0:x0 + w]
    ty, tx = _disc_point(rng, size, 0.0, 0.85)
    y1, x1 = int(np.clip(ty - h // 2, 0, size - h)), int(np.clip(tx - w // 2, 0, size - w))
    out = image.copy()
    out[y1:y1 + h, x1:x1 + w] = patch
    changed = np.abs(patch.astype(int) - image[y1:y1 + h, x1:x1 + w]).sum(-1) > 30
    mask = np.zeros(image.shape[:2], dtype=bool)
    mask[y1:y1 + h, x1:x1 + w] = changed if changed.sum() >= 10 else True
    return out, mask


def make_defects(images: np.ndarray, seed: int = 0, per_image: int = 1
                 ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``per_image`` defective copies of every image, kinds in turn (``per_image =
    len(KINDS)``: every kind on every image): images, masks, kinds."""
    rng = np.random.default_rng(seed)
    out, masks, kinds = [], [], []
    for i in range(len(images) * per_image):
        image = images[i // per_image]
        kind = KINDS[i % len(KINDS)]
        if kind == "cutpaste":
            donor = images[int(rng.integers(len(images)))]
            defective, mask = cutpaste(image, donor, rng)
        else:
            defective, mask = MAKERS[kind](image, rng)
        out.append(defective)
        masks.append(mask)
        kinds.append(kind)
    return np.stack(out), np.stack(masks), kinds


MAKERS = {"spot": spot, "chip": chip, "faint": faint, "crack": crack, "smallchip": smallchip,
          "selfpaste": selfpaste}
