"""Images in [-1, 1] (N, C, H, W) float to uint8 grids and PNG files. Torch-free (numpy + pillow)."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np

from edgedit.contract.fileio import atomic_output


def to_uint8(images: np.ndarray) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, H, W, C) uint8, as DiT and GET convert: 127.5 x + 128, clipped."""
    return np.clip(images * 127.5 + 128, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def make_grid(images: np.ndarray, columns: int | None = None, pad: int = 2) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> one (rows*(H+pad)+pad, cols*(W+pad)+pad, C) uint8 image."""
    pixels = to_uint8(images)
    n, h, w, c = pixels.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.zeros((rows * (h + pad) + pad, columns * (w + pad) + pad, c), np.uint8)
    for k, image in enumerate(pixels):
        r, col = divmod(k, columns)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) : pad + col * (w + pad) + w] = image
    return grid


def save_png(path: str | os.PathLike, pixels: np.ndarray) -> Path:
    from PIL import Image

    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    path = Path(path)
    with atomic_output(path) as tmp:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        tmp.write_bytes(buffer.getvalue())
    return path
