"""Images in [-1, 1] (N, C, H, W) float to uint8 grids and PNG files. Torch-free (numpy + pillow)."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np

from edgedit.contract.staging import atomic_output


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


MIN_LONG_SIDE = 512  # pixels: a 16x16 digit grid at its native size is judged only when zoomed in
CAPTION_HEIGHT, CAPTION_SIZE = 22, 14  # one line of PIL's default font, in pixels


def upscale(pixels: np.ndarray, min_long_side: int = MIN_LONG_SIDE) -> np.ndarray:
    """(H, W, C) uint8 repeated by the smallest integer factor that makes the long side at least
    `min_long_side`: nearest neighbour, so every pixel stays the value the model produced."""
    factor = max(1, math.ceil(min_long_side / max(pixels.shape[:2])))
    return pixels.repeat(factor, axis=0).repeat(factor, axis=1)


def captioned(pixels: np.ndarray, caption: str) -> np.ndarray:
    """(H, W, C) uint8 with a strip below it naming what it shows (model, precision, seeds, steps), in
    PIL's built-in font (no font file, no download); a caption wider than the image is cut with "..."."""
    from PIL import Image, ImageDraw, ImageFont

    _, w, c = pixels.shape
    try:
        font = ImageFont.load_default(size=CAPTION_SIZE)  # Pillow >= 10.1 with FreeType: a scalable font
    except (TypeError, ImportError, OSError):
        font = ImageFont.load_default()  # older Pillow: the 11 px bitmap font
    strip = Image.new("L", (w, CAPTION_HEIGHT), 255)
    draw = ImageDraw.Draw(strip)
    text = caption
    while text and draw.textlength(text, font=font) > w - 8:
        text = text[:-4] + "..." if len(text) > 4 else ""
    draw.text((4, 3), text, fill=0, font=font)
    rows = np.asarray(strip, np.uint8)[..., None].repeat(c, axis=2)
    return np.concatenate([pixels, rows], axis=0)


def picture(images: np.ndarray, caption: str, columns: int | None = None) -> np.ndarray:
    """A grid a person judges: (N, C, H, W) in [-1, 1] -> the grid, upscaled to MIN_LONG_SIDE, captioned."""
    return captioned(upscale(make_grid(images, columns)), caption)


def side_by_side(panels: list[np.ndarray], gap: int = 8) -> np.ndarray:
    """Panels of one height (H, W_i, C) in a row, `gap` white pixels apart (e.g. teacher | FP32 | FP16 | INT8)."""
    height, channels = max(p.shape[0] for p in panels), panels[0].shape[2]
    padded = [np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0)), constant_values=255) for p in panels]
    spacer = np.full((height, gap, channels), 255, np.uint8)
    row = [padded[0]]
    for panel in padded[1:]:
        row += [spacer, panel]
    return np.concatenate(row, axis=1)


def png_bytes(pixels: np.ndarray) -> bytes:
    """(H, W, C) uint8 pixels as PNG bytes (one channel as grayscale)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def save_png(path: str | os.PathLike, pixels: np.ndarray) -> Path:
    path = Path(path)
    with atomic_output(path) as tmp:
        tmp.write_bytes(png_bytes(pixels))
    return path
