"""Images are read by their own metadata, and refused the same way by every reader.

Classes: colour and multi-channel TIFFs (whatever their layout) are found from the TIFF's axes, not its shape,
by the prediction reader and the training reader; damaged TIFFs are named; constant images are refused for
every dtype.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from unet_zoo.data.files import LabelledDataError, image_to_uint8, read_array
from unet_zoo.data.reading import read_image
from unet_zoo.utils.errors import InputError

COLOUR = {
    "planar RGB (SYX)": (np.zeros((3, 64, 64), np.uint8), {"photometric": "rgb", "planarconfig": "separate"}),
    "interleaved RGB (YXS)": (np.zeros((64, 64, 3), np.uint8), {"photometric": "rgb"}),
    "small RGB 4x64x3": (np.zeros((4, 64, 3), np.uint8), {"photometric": "rgb"}),
    "RGBA": (np.zeros((64, 64, 4), np.uint8), {"photometric": "rgb", "extrasamples": ["unassalpha"]}),
    "ImageJ composite (CYX)": (
        np.zeros((2, 64, 64), np.uint16),
        {"imagej": True, "metadata": {"axes": "CYX", "mode": "composite"}},
    ),
}
GREY = {
    "stack of 3 sections": np.arange(3 * 64 * 64, dtype=np.uint16).reshape(3, 64, 64),
    "stack of 5 of 64x3": np.arange(5 * 64 * 3, dtype=np.uint8).reshape(5, 64, 3),
    "2-D": np.arange(64 * 64, dtype=np.uint16).reshape(64, 64),
}
READERS = {"predict": lambda p: np.asarray(read_image(p)), "finetune": lambda p: read_array(p).array}


@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
@pytest.mark.parametrize("layout", COLOUR, ids=COLOUR.keys())
def test_colour_tiffs_are_refused_by_their_axes(tmp_path, layout, reader):
    data, options = COLOUR[layout]
    path = tmp_path / "colour.tif"
    tifffile.imwrite(path, data, **options)
    with pytest.raises(InputError, match="greyscale") as caught:
        reader(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
@pytest.mark.parametrize("layout", GREY, ids=GREY.keys())
def test_greyscale_stacks_of_any_shape_are_read_as_stacks(tmp_path, layout, reader):
    path = tmp_path / "grey.tif"
    tifffile.imwrite(path, GREY[layout], photometric="minisblack")
    got = reader(path)
    assert np.array_equal(got.reshape(GREY[layout].shape), GREY[layout])


@pytest.mark.parametrize("content", [b"", b"II*\x00", b"MM\x00*" + b"\x00" * 20, b"not a tiff at all"])
@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
def test_empty_or_truncated_tiffs_are_named(tmp_path, content, reader):
    path = tmp_path / "broken.tif"
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        reader(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int8, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("value", [0, 1, 100])
def test_constant_images_are_refused_for_every_dtype(dtype, value):
    with pytest.raises(LabelledDataError, match="same value"):
        image_to_uint8(np.full((2, 16, 16), value, dtype=dtype), where="x.tif")
