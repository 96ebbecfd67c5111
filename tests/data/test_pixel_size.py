"""One validation of pixel sizes, whatever their source: --pixel-size, TIFF tags, OME-Zarr scale, a card.

The class: a pixel size that is not a finite, plausible number of nm, or a rescaling beyond the bounds, is a
PixelSizeError naming where the value came from, raised before any pixel is resampled.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tifffile

import unet_zoo
from unet_zoo.data.files import read_array
from unet_zoo.data.pixel_size import (
    MAX_PIXEL_SIZE_NM,
    MAX_RESCALED_PIXELS,
    MAX_SCALE_FACTOR,
    MIN_PIXEL_SIZE_NM,
    MIN_RESCALED_SIDE,
    PixelSizeError,
    check_pixel_size,
    check_scale,
)
from unet_zoo.data.reading import read_image, tiff_pixel_size
from unet_zoo.inference.rescale import model_pixel_size, predict_at_pixel_size, scale_factor
from unet_zoo.models.provenance import provenance_of, set_provenance

BAD_SIZES = [math.nan, math.inf, -math.inf, 0.0, -4.0, MIN_PIXEL_SIZE_NM / 2, MAX_PIXEL_SIZE_NM * 2, 1e308, "8", None, True]


@pytest.mark.parametrize("value", BAD_SIZES, ids=repr)
def test_a_bad_pixel_size_is_refused_naming_its_source(value):
    with pytest.raises(PixelSizeError) as caught:
        check_pixel_size(value, "the resolution tags of x.tif")
    message = str(caught.value)
    assert message.startswith("the resolution tags of x.tif") and "--pixel-size" in message and "\n" not in message


def test_plausible_sizes_pass_and_the_scale_is_bounded():
    assert check_pixel_size(4, "--pixel-size") == 4.0
    assert check_scale(8.0, 4.0, "--pixel-size") == pytest.approx(2.0)
    with pytest.raises(PixelSizeError, match="rescale the image by"):
        check_scale(4.0 * MAX_SCALE_FACTOR * 2, 4.0, "--pixel-size")
    with pytest.raises(PixelSizeError, match="rescale the image by"):
        check_scale(4.0 / MAX_SCALE_FACTOR / 2, 4.0, "--pixel-size")
    side = int(math.isqrt(MAX_RESCALED_PIXELS) // 4) + 1  # x 4 per side is over the pixel bound
    with pytest.raises(PixelSizeError, match="would become"):
        check_scale(16.0, 4.0, "--pixel-size", shape=(side, side))
    with pytest.raises(PixelSizeError, match="shrink"):
        check_scale(2.0, 16.0, "--pixel-size", shape=(MIN_RESCALED_SIDE * 4, 512))


def test_a_mistagged_tiff_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "mistagged.tif"
    image = np.arange(128 * 128, dtype=np.uint16).reshape(128, 128)
    tifffile.imwrite(path, image, resolution=((1, 10**6), (1, 10**6)), resolutionunit="CENTIMETER")  # 1e13 nm/px
    with pytest.raises(PixelSizeError, match="resolution tags of .*mistagged.tif"):
        tiff_pixel_size(path)
    tifffile.imwrite(path, image, resolution=(1e7 / 1e5, 1e7 / 1e5), resolutionunit="CENTIMETER")  # 1e5 nm/px
    assert tiff_pixel_size(path) == pytest.approx(1e5)  # plausible on its own, but not for a 4 nm model:
    with pytest.raises(PixelSizeError, match="rescale the image by"):
        scale_factor(tiff_pixel_size(path), 4.0, f"the resolution tags of {path}", shape=image.shape)


@pytest.mark.parametrize("scale", [-4.0, 0.0, "4", None])
def test_a_bad_ome_zarr_scale_is_refused_naming_the_store(tmp_path, scale):
    zarr = pytest.importorskip("zarr", reason="OME-Zarr needs the optional zarr extra")
    store = tmp_path / "bad.ome.zarr"
    group = zarr.open_group(str(store), mode="w")
    group.create_array("0", shape=(1, 32, 32), dtype="uint8")
    group.attrs["multiscales"] = [
        {
            "axes": [{"name": "z"}, {"name": "y", "unit": "nanometer"}, {"name": "x", "unit": "nanometer"}],
            "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 4.0, scale]}]}],
        }
    ]
    with pytest.raises(PixelSizeError) as caught:
        read_image(store)
    assert str(store) in str(caught.value)
    with pytest.raises(PixelSizeError):
        read_array(store)


@pytest.mark.parametrize("value", [math.nan, 0, -1, "4 nm", 1e9])
def test_a_bad_pixel_size_in_a_card_is_refused_naming_the_checkpoint(value):
    model = unet_zoo.create_model("small", base_channels=4, depth=2)
    card = {"training": {"pixel_size_nm": value}}
    set_provenance(model, provenance_of(model).updated(kind="folder", source="some/folder", card=card))
    with pytest.raises(PixelSizeError, match="pixel_size_nm in the card of some/folder"):
        model_pixel_size(model)


def test_prediction_refuses_before_allocating_a_huge_rescaled_image():
    model = unet_zoo.create_model("small", base_channels=4, depth=2)
    image = np.zeros((1, 128, 128), np.uint8)
    with pytest.raises(PixelSizeError):
        predict_at_pixel_size(model, image, pixel_size=1e5)  # 25000x: would be 3.2 million pixels a side
    with pytest.raises(PixelSizeError):
        predict_at_pixel_size(model, image, pixel_size=1e-6)  # would shrink to one pixel
    assert json.dumps(predict_at_pixel_size(model, image, pixel_size=8.0).shape) == "[1, 2, 128, 128]"
