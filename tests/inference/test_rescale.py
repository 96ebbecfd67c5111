"""Prediction at another pixel size: rescale to the model's, predict, resize back."""

from __future__ import annotations

import numpy as np
import pytest

import unet_zoo
from unet_zoo.inference.rescale import (
    DEFAULT_MODEL_PIXEL_SIZE_NM,
    model_pixel_size,
    predict_at_pixel_size,
    rescale_stack,
    rescaled_length,
    resize_probabilities,
    sample_region,
    scale_factor,
)


def test_scale_factor_and_rescale_stack():
    assert scale_factor(None, 4.0) == 1.0 and scale_factor(4.05, 4.0) == 1.0
    assert scale_factor(8.0, 4.0) == 2.0
    stack = np.random.default_rng(0).integers(0, 255, (2, 10, 12), dtype=np.uint8)
    out = rescale_stack(stack, 2.0)
    assert out.shape == (2, 20, 24) and out.dtype == np.uint8
    with pytest.raises(ValueError, match="> 0"):
        scale_factor(-1.0, 4.0)


@pytest.mark.parametrize("factor", [2.0, 1.7, 0.5, 0.37])
def test_any_region_of_a_rescaled_image_equals_that_region_of_the_whole(factor):
    """What lets blocks of a volume be rescaled separately: a region reads only the input pixels it needs."""
    image = np.random.default_rng(1).random((2, 101, 87)).astype(np.float32)
    out_shape = (rescaled_length(101, factor), rescaled_length(87, factor))
    whole = rescale_stack(image, factor)
    assert whole.shape == (2, *out_shape)
    reads = []

    def read(rows, cols):
        reads.append((rows, cols))
        return image[:, rows, cols]

    h, w = out_shape
    rows, cols = slice(h // 3, h // 3 + h // 4), slice(w // 5, w // 2)
    part = sample_region(read, (101, 87), out_shape, rows, cols, factor)
    np.testing.assert_array_equal(part, whole[:, rows, cols])
    ((read_rows, read_cols),) = reads
    assert read_rows.stop - read_rows.start < 101 and read_cols.stop - read_cols.start < 87  # not the whole image
    back = resize_probabilities(whole[:, None], (101, 87))
    assert back.shape == (2, 1, 101, 87)


def test_predict_at_pixel_size_returns_the_input_grid():
    model = unet_zoo.create_model("small", base_channels=4, depth=2)
    assert model_pixel_size(model) == DEFAULT_MODEL_PIXEL_SIZE_NM
    image = np.random.default_rng(0).integers(0, 255, (24, 40), dtype=np.uint8)
    probs = predict_at_pixel_size(model, image, pixel_size=8.0, device="cpu")
    assert probs.shape == (1, 2, 24, 40)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_downscaled_isbi_slice_scores_close_to_full_resolution(isbi_dir):
    from unet_zoo.evaluation.metrics import isbi_scores
    from unet_zoo.experiments.isbi2012.data import load_isbi

    try:
        model = unet_zoo.from_pretrained("isbi-small")
    except Exception as err:  # noqa: BLE001  offline without the published weights
        pytest.skip(f"isbi-small not available: {err}")
    data = load_isbi(isbi_dir)
    image, label = data.images[27], data.labels[27]
    small = rescale_stack(image[None], 0.5)
    small_label = label.reshape(256, 2, 256, 2).min(axis=(1, 3))
    full = isbi_scores(unet_zoo.predict_tiled(model, image)[1], label, warping=False)["vrand_thinned"]
    naive = isbi_scores(predict_at_pixel_size(model, small, None)[0, 1], small_label, warping=False)["vrand_thinned"]
    rescaled = isbi_scores(predict_at_pixel_size(model, small, 8.0)[0, 1], small_label, warping=False)["vrand_thinned"]
    assert rescaled > naive + 0.02
    assert rescaled > full - 0.05
