"""predict_region: any rectangle of an image equals predict_tiled on the whole image (valid and padded, TTA)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import unet_zoo
from unet_zoo.inference.region import axis_tiles, predict_region
from unet_zoo.inference.tiling import predict_tiled

RECTANGLES = [((0, 90), (0, 107)), ((0, 40), (60, 107)), ((37, 71), (5, 64)), ((89, 90), (106, 107))]


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {name: unet_zoo.create_model(name, base_channels=4).eval() for name in ("original", "small")}


@pytest.mark.parametrize("name, tile", [("original", 220), ("small", 64), ("original", None), ("small", None)])
@pytest.mark.parametrize("tta", [False, True])
@pytest.mark.slow
def test_rectangles_equal_the_whole_image(models, name, tile, tta):
    model = models[name]
    image = np.random.default_rng(1).integers(0, 256, (90, 107), dtype=np.uint8)
    whole = predict_tiled(model, image, tile=tile, tta=tta)
    reads = []

    def read(rows, cols):
        reads.append((rows, cols))
        return image[rows, cols]

    rectangles = [RECTANGLES[1], RECTANGLES[3]] if tta else RECTANGLES  # TTA: an edge band and a corner pixel
    for rows, cols in rectangles:
        got = predict_region(model, read, image.shape, rows, cols, tile=tile, tta=tta)
        assert got.shape == (2, rows[1] - rows[0], cols[1] - cols[0])
        np.testing.assert_allclose(got, whole[:, slice(*rows), slice(*cols)], atol=2e-6)
    assert len(reads) == len(rectangles)  # one read per rectangle, whatever the number of views


def test_reads_only_the_context_the_tiles_need(models):
    """original (tile 220 -> 36 output px, 92 px context): a block in the middle reads block + tiles' context."""
    model = models["original"]
    image = np.zeros((1000, 1000), dtype=np.uint8)
    seen = []
    predict_region(model, lambda r, c: (seen.append((r, c)), image[r, c])[1], image.shape, (400, 500), (400, 500), tile=220)
    ((rows, cols),) = seen
    step = 32  # 36 output px, rounded down to the 16 px pooling stride
    first, last = 400 // step * step, (500 - 1) // step * step
    assert (rows.start, rows.stop) == (first - 92, last + 220 - 92) == (cols.start, cols.stop)


def test_axis_tiles_rejects_ranges_outside_the_axis(models):
    with pytest.raises(ValueError, match="not inside"):
        axis_tiles(models["small"], 100, 64, 90, 101)
