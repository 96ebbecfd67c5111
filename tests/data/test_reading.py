"""`read_image`: one reader for TIFF, PNG, Zarr / OME-Zarr and arrays, with axes and pixel size."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage

from unet_zoo.data.pixel_size import PixelSizeError
from unet_zoo.data.reading import Image, read_image
from unet_zoo.utils.errors import InputError


def test_a_tiff_with_resolution_tags_says_its_pixel_size_and_where_it_came_from(tmp_path):
    stack = np.arange(2 * 20 * 30, dtype=np.uint16).reshape(2, 20, 30)
    path = tmp_path / "em.tif"
    tifffile.imwrite(path, stack, imagej=True, resolution=(1 / 8.0, 1 / 8.0), metadata={"unit": "nm"})
    image = read_image(path)
    assert image.axes == "ZYX" and image.shape == stack.shape and image.dtype == np.uint16
    assert image.pixel_size_nm == pytest.approx(8.0) and "resolution tags of" in image.pixel_size_source
    np.testing.assert_array_equal(np.asarray(image), stack)
    np.testing.assert_array_equal(image.section((1,)), stack[1])
    assert image.sections == [(0,), (1,)] and image.path == path
    given = read_image(path, pixel_size=5.0)
    assert given.pixel_size_nm == 5.0 and given.pixel_size_source == "the pixel size given"


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_a_lazy_tiff_stays_in_the_file_with_the_same_pixels_and_pixel_size(tmp_path, compression):
    pytest.importorskip("zarr", reason="compressed TIFFs are read page by page through zarr")
    stack = np.arange(3 * 20 * 30, dtype=np.uint16).reshape(3, 20, 30)
    tagged, plain, one = tmp_path / "tagged.tif", tmp_path / "plain.tif", tmp_path / "one.tif"
    options = dict(resolution=(1 / 8.0, 1 / 8.0), imagej=True, metadata={"unit": "nm"})
    tifffile.imwrite(tagged, stack, compression=compression, **options)
    tifffile.imwrite(plain, stack, compression=compression, photometric="minisblack")
    tifffile.imwrite(one, stack[:1, :1], compression=compression, photometric="minisblack")  # (1, 1, 30): stays 2-D
    for path in (tagged, plain, one):
        eager, lazy = read_image(path), read_image(path, lazy=True)
        assert type(eager.pixels) is np.ndarray and type(lazy.pixels) is not np.ndarray  # a memory map or zarr
        assert (lazy.axes, lazy.shape, lazy.dtype) == (eager.axes, eager.shape, eager.dtype)
        assert (lazy.pixel_size_nm, lazy.pixel_size_source) == (eager.pixel_size_nm, eager.pixel_size_source)
        np.testing.assert_array_equal(lazy.section(lazy.sections[-1]), eager.section(eager.sections[-1]))
    assert read_image(tagged, lazy=True).pixel_size_nm == pytest.approx(8.0)
    assert read_image(plain, lazy=True).pixel_size_nm is None and read_image(one).shape == (1, 30)
    two_d = tmp_path / "section.tif"  # a single section records its pixel size the same way
    tifffile.imwrite(two_d, stack[0], **options)
    assert read_image(two_d).axes == "YX" and read_image(two_d).pixel_size_nm == pytest.approx(8.0)


def test_png_and_arrays(tmp_path):
    grey = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    PILImage.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "rgb.png")
    image = read_image(tmp_path / "rgb.png")
    assert image.axes == "YX" and image.pixel_size_nm is None and image.sections == [()]
    np.testing.assert_array_equal(np.asarray(image), grey)
    array = read_image(grey[None])
    assert array.axes == "ZYX" and array.pixels is not None and array.name == "the array"
    assert read_image(array) is array
    assert read_image(np.zeros((2, 3, 8, 8))).axes == "?ZYX"  # arrays may have more leading axes


def test_an_ome_zarr_store_is_opened_lazily_at_a_level_with_its_scale(tmp_path):
    zarr = pytest.importorskip("zarr", reason="Zarr needs the optional volumes extra")
    store = tmp_path / "em.ome.zarr"
    group = zarr.open_group(str(store), mode="w")
    full = np.arange(3 * 16 * 16, dtype=np.uint8).reshape(1, 3, 16, 16)
    group.create_array("0", shape=full.shape, dtype="uint8")[...] = full
    group.create_array("1", shape=(1, 3, 8, 8), dtype="uint8")[...] = full[..., ::2, ::2]
    axes = [
        {"name": "c", "type": "channel"},
        {"name": "z"},
        {"name": "y", "unit": "nanometer"},
        {"name": "x", "unit": "nanometer"},
    ]
    group.attrs["multiscales"] = [
        {
            "axes": axes,
            "datasets": [
                {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 4.0, 4.0]}]},
                {"path": "1", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 8.0, 8.0]}]},
            ],
        }
    ]
    image = read_image(store)
    assert image.axes == "ZYX" and image.shape == (3, 16, 16) and not isinstance(image.pixels, np.ndarray)
    assert image.pixel_size_nm == pytest.approx(4.0) and "OME-Zarr scale" in image.pixel_size_source
    np.testing.assert_array_equal(image.section((2,)), full[0, 2])
    coarse = read_image(store, level=1)
    assert coarse.shape == (3, 8, 8) and coarse.pixel_size_nm == pytest.approx(8.0)
    with pytest.raises(InputError, match="resolution level"):
        read_image(store, level=2)


def test_what_cannot_be_read_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such image file"):
        read_image(tmp_path / "missing.tif")
    (tmp_path / "x.bmp").write_bytes(b"BM")
    with pytest.raises(InputError, match="x.bmp"):
        read_image(tmp_path / "x.bmp")
    tifffile.imwrite(tmp_path / "4d.tif", np.zeros((2, 2, 8, 8), np.uint8), photometric="minisblack", metadata={"axes": "TZYX"})
    with pytest.raises(InputError, match="4d.tif"):
        read_image(tmp_path / "4d.tif")
    with pytest.raises(TypeError, match="cannot read a dict"):
        read_image({"a": 1})
    with pytest.raises(PixelSizeError, match="the pixel size given"):
        read_image(np.zeros((8, 8)), pixel_size=-1.0)
    assert isinstance(read_image(np.zeros((8, 8))), Image)
