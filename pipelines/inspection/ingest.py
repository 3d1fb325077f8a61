"""Read images: the MVTec AD folder layout, a plain folder of good images, single image bytes.

Every image becomes an RGB ``IMAGE_SIZE`` x ``IMAGE_SIZE`` uint8 array; what was converted
(grayscale or RGBA to RGB, another size resized) is reported in ``notes`` so a page or API
result can say so. Masks (``ground_truth/<type>/<n>_mask.png``) become boolean arrays of the
same size (nearest neighbour).
"""
from __future__ import annotations

import hashlib
import io
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from pipelines.core.artifacts import sha256
from pipelines.core.problems import Problem, SchemaError
from pipelines.inspection.schema import EXTENSIONS, IMAGE_SIZE, MAX_SIDE

logger = logging.getLogger(__name__)

GOOD = "good"


@dataclass
class LoadedImage:
    """One image at model size, with what was done to it on the way."""

    name: str
    pixels: np.ndarray  # (IMAGE_SIZE, IMAGE_SIZE, 3) uint8
    original_size: tuple[int, int]  # (width, height)
    original_mode: str
    notes: list[str] = field(default_factory=list)


def folder_labels(names: list[str]) -> list[str | None] | None:
    """The labels an upload's folders carry, as in the MVTec AD layout (``good/``,
    ``<defect type>/``): each photo's folder name, when some photo sits in a folder named
    ``good``; a photo outside any folder has none. None: the upload carries no labels."""
    parents = [PurePosixPath(name).parent.name for name in names]
    if GOOD not in parents:
        return None
    return [parent or None for parent in parents]


def labelled_defective(names: list[str]) -> int | None:
    """How many photos the upload's folders label defective (not in ``good/``), or None."""
    labels = folder_labels(names)
    return None if labels is None else sum(1 for label in labels if label and label != GOOD)


def to_model_image(image, name: str, size: int = IMAGE_SIZE) -> LoadedImage:
    """A PIL image converted to RGB (alpha composited on white) and resized to ``size``."""
    from PIL import Image

    notes = []
    mode, original = image.mode, image.size
    if mode != "RGB":
        if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(white, rgba).convert("RGB")
            notes.append(f"converted from {mode} to RGB (transparent parts on white)")
        else:
            image = image.convert("RGB")
            notes.append(f"converted from {mode} to RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
        notes.append(f"resized from {original[0]} x {original[1]} to {size} x {size}")
    return LoadedImage(name, np.asarray(image, dtype=np.uint8).copy(), original, mode, notes)


def decode_image(data: bytes, name: str, size: int = IMAGE_SIZE,
                 max_pixels: int = MAX_SIDE * MAX_SIDE) -> LoadedImage:
    """Image bytes -> :class:`LoadedImage`; a :class:`SchemaError` naming the file otherwise.

    Images over ``max_pixels`` (decompression bombs) are refused before decoding.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise SchemaError([Problem(f"the image is {width} x {height} pixels, more "
                                               f"than {max_pixels:,}; refused", file=name)])
                image.load()
                return to_model_image(image, name, size)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise SchemaError([Problem("the image is too large to decode; refused",
                                   file=name)]) from None
    except UnidentifiedImageError:
        raise SchemaError([Problem("not an image Pillow can read", file=name)]) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise SchemaError([Problem(f"a corrupt or truncated image ({str(exc)[:80]})",
                                   file=name)]) from None


def read_image_file(path: Path, size: int = IMAGE_SIZE) -> LoadedImage:
    """One image file at model size."""
    path = Path(path)
    return decode_image(path.read_bytes(), path.name, size)


def read_mask(path: Path, size: int = IMAGE_SIZE) -> np.ndarray:
    """A defect mask at ``size`` x ``size`` (nearest neighbour), True where defective."""
    from PIL import Image

    with Image.open(path) as image:
        mask = image.convert("L")
        if mask.size != (size, size):
            mask = mask.resize((size, size), Image.NEAREST)
        return np.asarray(mask) > 127


def image_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS
                  and not p.name.startswith("."))


def read_folder(folder: Path, size: int = IMAGE_SIZE) -> tuple[np.ndarray, list[str]]:
    """Every image in a plain folder (a user's own good parts): (N, size, size, 3), names."""
    files = image_files(folder)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(EXTENSIONS)}) in {folder}")
    return np.stack([read_image_file(p, size).pixels for p in files]), [p.name for p in files]


def good_folder(root: Path) -> Path:
    """The folder of good training images: ``root/train/good`` (MVTec AD) or ``root`` itself."""
    root = Path(root)
    mvtec = root / "train" / GOOD
    return mvtec if mvtec.is_dir() else root


@dataclass
class TestSet:
    """The test part of an MVTec AD category: images, labels, defect types and masks."""

    images: np.ndarray  # (N, size, size, 3) uint8
    names: list[str]  # "<type>/<file>"
    defect_types: list[str]
    masks: np.ndarray  # (N, size, size) bool; all False for good images

    @property
    def labels(self) -> np.ndarray:
        """1 for a defective image, 0 for a good one."""
        return np.array([t != GOOD for t in self.defect_types], dtype=int)


def read_test_set(root: Path, size: int = IMAGE_SIZE) -> TestSet:
    """Every image under ``root/test/<type>/`` with its mask from ``root/ground_truth``.

    A defective image without a mask is an error (pixel AUROC needs every mask).
    """
    root = Path(root)
    test = root / "test"
    if not test.is_dir():
        raise FileNotFoundError(f"no test/ folder in {root} (expected the MVTec AD layout)")
    images, names, types, masks = [], [], [], []
    for kind in sorted(p.name for p in test.iterdir() if p.is_dir()):
        for path in image_files(test / kind):
            images.append(read_image_file(path, size).pixels)
            names.append(f"{kind}/{path.name}")
            types.append(kind)
            if kind == GOOD:
                masks.append(np.zeros((size, size), dtype=bool))
                continue
            mask = root / "ground_truth" / kind / f"{path.stem}_mask.png"
            if not mask.is_file():
                raise FileNotFoundError(f"no mask {mask.relative_to(root)} for {kind}/{path.name}")
            masks.append(read_mask(mask, size))
    if not images:
        raise FileNotFoundError(f"no test images under {test}")
    return TestSet(np.stack(images), names, types, np.stack(masks))


# --- the training photos: the category folder and the hash of what was trained on -----------

def find_category(path: Path) -> Path:
    """The category folder: ``path`` itself (MVTec AD layout or plain folder), or
    ``path/mvtec/bottle`` (the project's data directory)."""
    path = Path(path)
    for candidate in (path, path / "mvtec" / "bottle"):
        if (candidate / "train" / "good").is_dir():
            return candidate
    if path.is_dir() and image_files(path):
        return path
    raise FileNotFoundError(f"no train/good folder (MVTec AD layout) nor images in {path} or "
                            f"{path / 'mvtec' / 'bottle'}")


def data_reference(folder: Path, names: list[str]) -> dict:
    """Name and content hash of the good images trained on (no machine path)."""
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode())
        digest.update(sha256(folder / name).encode())
    return {"folder": f"{folder.parent.parent.name}/train/good" if folder.name == "good"
            else folder.name, "images": len(names), "sha256_of_file_hashes": digest.hexdigest()}
