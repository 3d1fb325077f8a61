"""The inspection layout every reader maps to: an RGB image, 256 x 256, values 0..255."""
from __future__ import annotations

# every image is converted to RGB and resized (bilinear) to this square before scoring
IMAGE_SIZE = 256
CHANNELS: tuple[str, ...] = ("red", "green", "blue")
# a side longer than this is refused before the pixels are decoded
MAX_SIDE = 8192
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
