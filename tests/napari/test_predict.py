"""The widget's engine without Qt: input checks, section choice, lazy reading, cancelling, provenance."""

from __future__ import annotations

import numpy as np
import pytest

import unet_zoo
from unet_zoo.models.provenance import provenance_of
from unet_zoo.napari._choices import OTHER, checkpoint_choices
from unet_zoo.napari._predict import Cancelled, check_image, load, predict_sections, section_indices


class Sections:
    """An array-like that records what is read from it (a stand-in for a lazy Zarr or dask array)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.reads = array, []
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __getitem__(self, key):
        self.reads.append(key)
        return self.array[key]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole array was read")


@pytest.mark.parametrize(
    ("data", "rgb", "message"),
    [
        (np.zeros((8, 8, 3), np.uint8), True, "RGB"),
        (np.zeros((0, 8), np.uint8), False, "empty"),
        (np.zeros(8, np.uint8), False, "shape"),
        (np.zeros((8, 8), np.int32), False, "int32"),
        (np.zeros((8, 8), np.complex64), False, "complex64"),
    ],
)
def test_bad_images_are_refused_with_what_to_do(data, rgb, message):
    with pytest.raises(ValueError, match=message):
        check_image(data, rgb=rgb)


def test_good_images_pass():
    for dtype in (np.uint8, np.uint16, np.float32, bool):
        check_image(np.zeros((2, 8, 8), dtype))


def test_section_indices():
    assert section_indices((5, 6)) == [()]
    assert section_indices((2, 3, 5, 6)) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert section_indices((4, 5, 6), current=(2,)) == [(2,)]
    assert section_indices((4, 5, 6), current=(9,)) == [(3,)]  # clipped into the stack


def test_predicts_section_by_section_like_predict_tiled(tiny_model_dir):
    loaded = load(str(tiny_model_dir), "torch")
    stack = np.random.default_rng(0).integers(0, 256, (3, 40, 52), dtype=np.uint8)
    lazy = Sections(stack)
    calls = []
    result = predict_sections(loaded, lazy, [(1,)], segment_cells=True, progress=lambda *a: calls.append(a))
    assert lazy.reads == [(1,)]  # one section read, nothing else
    expected = unet_zoo.predict_tiled(unet_zoo.from_pretrained(tiny_model_dir), stack[1])
    assert result.membrane.shape == (1, 40, 52) and result.membrane.dtype == np.float32 and result.first == (1,)
    np.testing.assert_allclose(result.membrane[0], expected[0], atol=1e-5)
    assert result.labels is not None and result.labels.dtype == np.uint32 and result.labels.min() >= 1
    assert calls and calls[-1][:2] == (0, 1) and calls[-1][2] == calls[-1][3]
    meta = result.metadata["unet_zoo"]
    assert meta["sha256"] == provenance_of(loaded.model).sha256 and meta["architecture"] == "small" and meta["backend"] == "torch"
    assert (meta["inference"]["path"], meta["inference"]["how"]) == ("torch-fp32", "environment")  # conftest forces it


def test_cell_ids_are_unique_across_sections(tiny_model_dir):
    stack = np.random.default_rng(1).integers(0, 256, (2, 32, 32), dtype=np.uint8)
    result = predict_sections(load(str(tiny_model_dir), "torch"), stack, section_indices(stack.shape), segment_cells=True)
    assert result.labels is not None and result.labels.shape == stack.shape
    assert result.labels[1].min() > result.labels[0].max()


def test_progress_can_cancel_at_the_next_tile(tiny_model_dir):
    calls = []

    def cancel(*args):
        calls.append(args)
        raise Cancelled

    with pytest.raises(Cancelled):
        predict_sections(
            load(str(tiny_model_dir), "torch"), np.zeros((3, 96, 96), np.uint8), [(0,), (1,), (2,)], tile=32, progress=cancel
        )
    assert len(calls) == 1


def test_unknown_backend_and_model_are_clear_errors(tiny_model_dir):
    with pytest.raises(ValueError, match="backend must be one of auto, torch, onnxruntime"):
        load(str(tiny_model_dir), "tensorrt")
    with pytest.raises(Exception, match="does not exist"):
        load("./no/such/folder", "torch")


def test_the_drop_down_lists_every_checkpoint_with_scores_and_size():
    choices = checkpoint_choices()
    assert [c.name for c in choices] == unet_zoo.list_pretrained()
    small = next(c for c in choices if c.name == "isbi-small")
    assert small.label == "isbi-small: V-Rand 0.982, V-Info 0.983, 7.8 M parameters"
    assert OTHER not in [c.name for c in choices]
