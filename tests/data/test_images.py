"""Reading TIFF/PNG and writing probability TIFFs, mask and overlay PNGs (atomically)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from unet_zoo.data.images import overlay, write_mask_png, write_overlay_png, write_prediction, write_prob_tiff
from unet_zoo.data.reading import read_image


def test_read_tiff_2d_and_stack(tmp_path, rng):
    image = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    stack = rng.integers(0, 65536, (3, 20, 30), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", image)
    tifffile.imwrite(tmp_path / "b.tiff", stack, photometric="minisblack")
    np.testing.assert_array_equal(read_image(tmp_path / "a.tif"), image)
    read = read_image(tmp_path / "b.tiff")
    assert read.dtype == np.uint16
    np.testing.assert_array_equal(read, stack)


def test_read_png_grey_colour_and_16_bit(tmp_path, rng):
    grey = rng.integers(0, 256, (10, 12), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), grey)
    rgb = np.stack([grey, grey, grey], axis=-1)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    np.testing.assert_array_equal(read_image(tmp_path / "c.png"), grey)  # equal channels -> same grey
    deep = rng.integers(0, 65536, (10, 12), dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    np.testing.assert_array_equal(read_image(tmp_path / "d.png"), deep)


def test_read_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such image"):
        read_image(tmp_path / "missing.tif")
    (tmp_path / "x.bmp").write_bytes(b"BM")
    with pytest.raises(ValueError, match=".tif"):
        read_image(tmp_path / "x.bmp")


def test_prob_tiff_roundtrip_and_no_temp_files(tmp_path, rng):
    prob = rng.random((3, 8, 9)).astype(np.float32)  # 3 pages, not RGB
    path = write_prob_tiff(tmp_path / "sub" / "p_prob.tif", prob)
    back = tifffile.imread(path)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, prob)
    assert [p.name for p in path.parent.iterdir()] == ["p_prob.tif"]


def test_mask_and_overlay(tmp_path, rng):
    image = rng.integers(0, 256, (6, 7), dtype=np.uint8)
    mask = rng.random((6, 7)) > 0.5
    mask_png = np.array(Image.open(write_mask_png(tmp_path / "m.png", mask)))
    np.testing.assert_array_equal(mask_png, np.where(mask, 255, 0))
    rgb = np.array(Image.open(write_overlay_png(tmp_path / "o.png", image, mask)))
    assert rgb.shape == (6, 7, 3)
    np.testing.assert_array_equal(rgb[mask], np.repeat(image[mask][:, None], 3, axis=1))  # cells untouched
    membrane = rgb[~mask].astype(int)
    assert (membrane[:, 0] >= membrane[:, 1]).all() and (membrane[:, 1] == membrane[:, 2]).all()  # tinted red
    assert overlay(image.astype(np.float32), mask).dtype == np.uint8
    with pytest.raises(ValueError, match="differ in size"):
        overlay(image, mask[:, :3])


def test_write_prediction_2d_and_stack(tmp_path, rng):
    image = rng.integers(0, 256, (5, 6), dtype=np.uint8)
    names = [p.name for p in write_prediction(tmp_path, "img", image, rng.random((5, 6)))]
    assert names == ["img_prob.tif", "img_mask.png", "img_overlay.png"]
    stack = rng.integers(0, 256, (2, 5, 6), dtype=np.uint8)
    names = [p.name for p in write_prediction(tmp_path, "vol", stack, rng.random((2, 5, 6)))]
    assert names == ["vol_prob.tif", "vol_z000_mask.png", "vol_z000_overlay.png", "vol_z001_mask.png", "vol_z001_overlay.png"]
    assert tifffile.imread(tmp_path / "vol_prob.tif").shape == (2, 5, 6)
