"""Pictures a person judges: grids upscaled by nearest neighbour (every pixel the model's value) to at
least 512 px, with a caption strip, and panels side by side."""

import numpy as np

from edgedit.runtime.images import (
    CAPTION_HEIGHT,
    MIN_LONG_SIDE,
    captioned,
    make_grid,
    picture,
    side_by_side,
    upscale,
)


def test_upscaling_repeats_pixels_to_the_smallest_factor_reaching_512():
    pixels = np.random.default_rng(0).integers(0, 256, (38, 146, 1), dtype=np.uint8)
    big = upscale(pixels)
    factor = 4  # ceil(512 / 146)
    assert big.shape == (38 * factor, 146 * factor, 1) and max(big.shape[:2]) >= MIN_LONG_SIDE
    assert np.array_equal(big[::factor, ::factor], pixels)  # nearest neighbour: the model's values, no blending
    assert np.array_equal(big, np.kron(pixels[..., 0], np.ones((factor, factor), np.uint8))[..., None])
    assert upscale(np.zeros((600, 10, 3), np.uint8)).shape == (600, 10, 3)  # already big enough: unchanged


def test_a_caption_strip_is_added_below_and_carries_text():
    pixels = np.zeros((100, 300, 1), np.uint8)
    out = captioned(pixels, "student.onnx | fp32 | seeds 0-15 | one step")
    assert out.shape == (100 + CAPTION_HEIGHT, 300, 1) and np.array_equal(out[:100], pixels)
    strip = out[100:]
    assert (strip == 255).mean() > 0.5 and (strip < 128).any()  # white strip, dark text on it
    long = captioned(pixels[:, :40], "x" * 500)  # wider than the image: cut, never overflowing
    assert long.shape == (100 + CAPTION_HEIGHT, 40, 1)


def test_a_picture_of_samples_is_the_grid_upscaled_and_captioned():
    images = np.random.default_rng(1).uniform(-1, 1, (16, 1, 16, 16)).astype(np.float32)
    grid = make_grid(images, columns=4)
    pic = picture(images, "caption", columns=4)
    factor = -(-MIN_LONG_SIDE // max(grid.shape[:2]))
    assert np.array_equal(pic[: grid.shape[0] * factor : factor, ::factor], grid)


def test_panels_side_by_side_keep_each_panel_and_pad_to_one_height():
    a, b = np.zeros((10, 5, 1), np.uint8), np.full((8, 3, 1), 7, np.uint8)
    row = side_by_side([a, b], gap=2)
    assert row.shape == (10, 5 + 2 + 3, 1)
    assert np.array_equal(row[:, :5], a) and np.array_equal(row[:8, 7:], b) and (row[8:, 7:] == 255).all()
