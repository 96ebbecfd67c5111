"""Your images and labels as training data: reading, label forms, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from unet_zoo.data.files import LabelledDataError, boundaries, labels_to_cells, load_labelled_images, read_array


def _cells(size: int = 16) -> np.ndarray:
    """(1, size, size) 1 = cell with a 2-px membrane cross."""
    cells = np.ones((1, size, size), np.uint8)
    cells[:, size // 2 - 1 : size // 2 + 1] = 0
    cells[:, :, size // 2 - 1 : size // 2 + 1] = 0
    return cells


def test_binary_polarities_give_the_same_cells():
    cells = _cells()
    as_cell, form = labels_to_cells(cells * 255, "cell")
    as_membrane, _ = labels_to_cells(1 - cells, "membrane")
    assert form == "binary"
    np.testing.assert_array_equal(as_cell, cells)
    np.testing.assert_array_equal(as_membrane, cells)


def test_inverted_polarity_and_one_class_are_refused():
    with pytest.raises(LabelledDataError, match="inverted.*membrane"):
        labels_to_cells(1 - _cells(), "cell")
    with pytest.raises(LabelledDataError, match="every pixel is cell"):
        labels_to_cells(np.ones((1, 8, 8), np.uint8), "cell")


def test_instance_boundaries_follow_the_4_neighbours():
    ids = np.zeros((4, 6), np.int32)
    ids[:, :3], ids[:, 3:] = 1, 2
    np.testing.assert_array_equal(np.flatnonzero(boundaries(ids, 2)[0]), [2, 3])
    np.testing.assert_array_equal(np.flatnonzero(boundaries(ids, 1)[0]), [3])  # the higher ID's side
    assert boundaries(ids, 4)[0].sum() == 4
    with pytest.raises(LabelledDataError, match="every pixel is cell"):  # two values: read as a mask
        labels_to_cells(ids[None], label_form="auto")
    cells, form = labels_to_cells(ids[None], label_form="instances")
    assert form == "instances" and cells[0, 0].tolist() == [1, 1, 0, 0, 1, 1]
    three = ids.copy()
    three[0, 0] = 0
    cells, form = labels_to_cells(three[None], label_form="auto")
    assert form == "instances" and cells[0, 0, 0] == 0 and cells[0, 2, 0] == 1 and cells[0, 2, 2] == 0


def test_tiff_stack_with_resolution_and_float_images(tmp_path):
    images = np.random.default_rng(0).random((2, 16, 16)).astype(np.float32)
    tifffile.imwrite(tmp_path / "im.tif", images, resolution=(1e7 / 8, 1e7 / 8), resolutionunit="CENTIMETER")
    tifffile.imwrite(tmp_path / "lab.tif", np.repeat(_cells() * 255, 2, axis=0))
    pairs = load_labelled_images(tmp_path / "im.tif", tmp_path / "lab.tif")
    assert pairs.images.dtype == np.uint8 and pairs.images.shape == (2, 16, 16)
    assert pairs.pixel_size == pytest.approx(8.0)
    assert set(pairs.files) == {str(tmp_path / "im.tif"), str(tmp_path / "lab.tif")}
    assert "im.tif (sha256" in pairs.summary()


def test_folders_of_pngs_are_matched_by_name(tmp_path):
    for folder in ("im", "lab"):
        (tmp_path / folder).mkdir()
    for name in ("a", "b"):
        Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(tmp_path / "im" / f"{name}.png")
        Image.fromarray(_cells()[0] * 255).save(tmp_path / "lab" / f"{name}.png")
    assert load_labelled_images(tmp_path / "im", tmp_path / "lab").images.shape == (2, 16, 16)
    (tmp_path / "lab" / "b.png").rename(tmp_path / "lab" / "c.png")
    with pytest.raises(LabelledDataError, match="matched by name"):
        load_labelled_images(tmp_path / "im", tmp_path / "lab")


def test_zarr_arrays(tmp_path):
    zarr = pytest.importorskip("zarr")
    zarr.save_array(str(tmp_path / "im.zarr"), np.full((16, 16), 7, np.uint16))
    assert read_array(tmp_path / "im.zarr").array.shape == (1, 16, 16)


def test_mismatched_shapes_and_bad_dtypes(tmp_path):
    tifffile.imwrite(tmp_path / "im.tif", np.zeros((2, 16, 16), np.uint8) + np.arange(16, dtype=np.uint8))
    tifffile.imwrite(tmp_path / "lab.tif", _cells() * 255)
    with pytest.raises(LabelledDataError, match="differ in shape"):
        load_labelled_images(tmp_path / "im.tif", tmp_path / "lab.tif")
    tifffile.imwrite(tmp_path / "c.tif", np.ones((16, 16), np.complex64))
    tifffile.imwrite(tmp_path / "lab.tif", _cells()[0] * 255)
    with pytest.raises(LabelledDataError, match="unsupported image dtype"):
        load_labelled_images(tmp_path / "c.tif", tmp_path / "lab.tif")
