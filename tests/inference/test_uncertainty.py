"""Where the model is unsure, from the 8 test-time augmentation views: `predict_uncertainty`, `predict --uncertainty`."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from typer.testing import CliRunner

import unet_zoo
from unet_zoo.cli import app
from unet_zoo.inference.rescale import uncertainty_at_pixel_size
from unet_zoo.inference.tiling import entropy_map, predict_tiled, predict_uncertainty


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return unet_zoo.create_model("small", base_channels=4, depth=2).eval()


def _views(model, image):
    views = []
    for flip in (False, True):
        for k in range(4):
            view = np.rot90(image[:, ::-1] if flip else image, k)
            p = np.rot90(predict_tiled(model, np.ascontiguousarray(view)), -k, axes=(1, 2))
            views.append(p[..., ::-1] if flip else p)
    return np.stack(views)


def test_uncertainty_is_the_entropy_of_the_mean_of_the_eight_views(model):
    image = np.random.default_rng(0).random((40, 56), dtype=np.float32)
    probs, spread = predict_uncertainty(model, image)
    np.testing.assert_allclose(probs, predict_tiled(model, image, tta=True), atol=1e-5)
    p = _views(model, image)[:, 1].mean(axis=0)
    entropy = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    np.testing.assert_allclose(spread, entropy, atol=1e-4)
    assert spread.shape == image.shape and spread.dtype == np.float32
    assert 0 <= spread.min() and spread.max() <= 1


def test_entropy_map_is_zero_when_certain_and_one_when_split():
    certain = np.array([[1.0, 0.0], [0.0, 1.0]])  # (C=2, 2 pixels)
    split = np.full((2, 2), 0.5)
    np.testing.assert_allclose(entropy_map(certain), 0.0, atol=1e-6)
    np.testing.assert_allclose(entropy_map(split), 1.0, atol=1e-6)
    three = np.full((3, 1), 1 / 3)
    np.testing.assert_allclose(entropy_map(three), 1.0, atol=1e-6)


def test_uncertainty_at_another_pixel_size_comes_back_on_the_input_grid(model):
    stack = np.random.default_rng(1).integers(0, 255, (2, 24, 40), dtype=np.uint8)
    probs, spread = uncertainty_at_pixel_size(model, stack, 8.0, 4.0)
    assert probs.shape == (2, 2, 24, 40) and spread.shape == (2, 24, 40)
    same, _ = uncertainty_at_pixel_size(model, stack, None, 4.0)
    assert not np.allclose(probs, same)  # it was rescaled


@pytest.mark.slow
def test_predict_uncertainty_writes_a_tiff_beside_the_outputs(tmp_path):
    runner = CliRunner()
    torch.manual_seed(0)
    unet_zoo.save_pretrained(unet_zoo.create_model("small", base_channels=4, depth=2), tmp_path / "m")
    image = np.random.default_rng(2).integers(0, 255, (48, 48), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "em.tif", image)
    result = runner.invoke(
        app, ["predict", str(tmp_path / "m"), str(tmp_path / "em.tif"), "--uncertainty", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    spread = tifffile.imread(tmp_path / "o" / "em_uncertainty.tif")
    model = unet_zoo.from_pretrained(str(tmp_path / "m"))
    np.testing.assert_allclose(spread, predict_uncertainty(model, image)[1], atol=1e-4)
    np.testing.assert_allclose(
        tifffile.imread(tmp_path / "o" / "em_prob.tif"), predict_tiled(model, image, tta=True)[1], atol=1e-4
    )
    again = runner.invoke(
        app, ["predict", str(tmp_path / "m"), str(tmp_path / "em.tif"), "--uncertainty", "--out", str(tmp_path / "o")]
    )
    assert again.exit_code == 2 and "already exists" in again.output
    volume = runner.invoke(
        app, ["predict", str(tmp_path / "m"), str(tmp_path / "em.tif"), "--uncertainty", "--out", str(tmp_path / "v.zarr")]
    )
    assert volume.exit_code == 2 and "--uncertainty works on images" in volume.output
