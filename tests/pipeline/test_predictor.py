"""`unet_zoo.Predictor`: every input kind, pixel sizes, cells numbered across sections, what ran, bad settings."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage

import unet_zoo
from tests.pipeline.conftest import write_tiff
from unet_zoo import Predictor, read_image
from unet_zoo.inference.rescale import rescale_stack, resize_probabilities
from unet_zoo.inference.tiling import predict_tiled
from unet_zoo.segmentation import segment_probabilities


@pytest.fixture
def predictor(model_dir) -> Predictor:
    return Predictor(str(model_dir), backend="torch", precision="fp32", device="cpu")


def _by_hand(model, stack: np.ndarray, factor: float = 1.0) -> np.ndarray:
    """(S, C, H, W): each section rescaled by `factor`, predicted, the probabilities resized back."""
    scaled = rescale_stack(stack, factor) if factor != 1.0 else stack
    return resize_probabilities(np.stack([predict_tiled(model, s) for s in scaled]), stack.shape[-2:])


def test_every_input_kind_gives_the_same_probabilities(predictor, stack, tmp_path):
    expected = _by_hand(predictor.model, stack)
    assert expected.shape == (2, 2, *stack.shape[1:])
    np.testing.assert_array_equal(predictor.predict(stack), expected)
    np.testing.assert_array_equal(predictor.predict(stack[0]), expected[0])  # a 2-D image: (C, H, W)
    np.testing.assert_array_equal(predictor.predict(write_tiff(tmp_path / "s.tif", stack)), expected)
    PILImage.fromarray(stack[1]).save(tmp_path / "one.png")
    np.testing.assert_array_equal(predictor.predict(tmp_path / "one.png"), expected[1])
    np.testing.assert_array_equal(predictor.predict(read_image(stack)), expected)


def test_dask_and_zarr_arrays_and_stores_are_read_section_by_section(predictor, stack, tmp_path):
    da = pytest.importorskip("dask.array", reason="dask arrays need the optional volumes extra")
    zarr = pytest.importorskip("zarr", reason="Zarr needs the optional volumes extra")
    expected = _by_hand(predictor.model, stack)
    np.testing.assert_array_equal(predictor.predict(da.from_array(stack, chunks=(1, 24, 28))), expected)
    store = tmp_path / "s.zarr"
    array = zarr.create_array(str(store), shape=stack.shape, chunks=(1, 48, 56), dtype="uint8")
    array[...] = stack
    np.testing.assert_array_equal(predictor.predict(array), expected)
    np.testing.assert_array_equal(predictor.predict(store), expected)
    assert read_image(store).pixels is not None and not isinstance(read_image(store).pixels, np.ndarray)  # lazy


class _Counting:
    """An array-like that records which sections were read."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.shape, self.dtype, self.reads = array, array.shape, array.dtype, []

    def __getitem__(self, key):
        self.reads.append(key)
        return self.array[key]


def test_listed_sections_only_are_read(predictor, stack):
    lazy = _Counting(stack)
    result = predictor.run(lazy, sections=[(1,)])
    assert lazy.reads == [(1,)]
    assert result.probabilities.shape == (1, 2, *stack.shape[1:]) and result.sections == [(1,)]
    np.testing.assert_array_equal(result.probabilities[0], predict_tiled(predictor.model, stack[1]))


def test_a_pixel_size_rescales_to_the_models_and_back(model_dir, predictor, stack, tmp_path):
    coarse = Predictor(str(model_dir), backend="torch", precision="fp32", device="cpu", pixel_size=8.0)
    assert predictor.model_pixel_size == 4.0  # no pixel size on the card: ISBI 2012's
    probs = coarse.predict(stack)
    assert probs.shape == (2, 2, *stack.shape[1:])
    np.testing.assert_array_equal(probs, _by_hand(coarse.model, stack, 2.0))
    assert not np.array_equal(probs, predictor.predict(stack))
    tagged = write_tiff(tmp_path / "tagged.tif", stack, pixel_size_nm=8.0)  # the file says 8 nm: the same
    result = predictor.run(tagged)
    np.testing.assert_array_equal(result.probabilities, probs)
    assert result.record["pixel_size_nm"] == pytest.approx(8.0) and result.record["scale"] == pytest.approx(2.0)
    assert "resolution tags" in result.record["pixel_size_source"]
    np.testing.assert_array_equal(predictor.predict(tagged, pixel_size=4.0), predictor.predict(stack))  # given wins


def test_cells_are_numbered_across_sections_and_made_at_the_models_pixel_size(model_dir, predictor, stack):
    labels = predictor.segment(stack)
    assert labels.shape == stack.shape and labels.dtype == np.uint32
    assert labels[0].min() == 1 and labels[1].min() == labels[0].max() + 1
    first = segment_probabilities(predict_tiled(predictor.model, stack[0]), predictor.params)
    np.testing.assert_array_equal(labels[0], first)
    np.testing.assert_array_equal(
        labels[1] - labels[0].max(), segment_probabilities(predict_tiled(predictor.model, stack[1]), predictor.params)
    )
    coarse = Predictor(str(model_dir), backend="torch", precision="fp32", device="cpu", pixel_size=8.0)
    cells = coarse.segment(stack[0])
    assert cells.shape == stack[0].shape  # made at 4 nm, back on the 8 nm grid
    small = segment_probabilities(predict_tiled(coarse.model, rescale_stack(stack[:1], 2.0)[0]), coarse.params)
    assert int(cells.max()) == int(small.max())


def test_unet_zoo_segment_delegates_to_the_predictor(model_dir, stack):
    by_predictor = Predictor(str(model_dir), backend="torch", precision="fp32", pixel_size=6.0).segment(stack)
    by_function = unet_zoo.segment(stack, str(model_dir), backend="torch", precision="fp32", pixel_size=6.0)
    np.testing.assert_array_equal(by_function, by_predictor)


def test_uncertainty_progress_and_the_record(predictor, stack):
    calls = []
    result = predictor.run(stack, uncertainty=True, progress=lambda *a: calls.append(a))
    assert result.uncertainty is not None and result.uncertainty.shape == stack.shape
    assert 0.0 <= result.uncertainty.min() and result.uncertainty.max() <= 1.0
    ends = [c for c in calls if c[2] == c[3]]
    assert [c[:2] for c in ends] == [(0, 2), (1, 2)]
    record = result.record
    assert record["model"]["architecture"] == "small" and record["inference"]["path"] == "torch-fp32"
    assert record["tta"] is False and record["model_pixel_size_nm"] == 4.0 and record["pixel_size_nm"] is None


def test_a_progress_callback_can_stop_the_prediction(predictor, stack):
    class Stop(Exception):
        pass

    def stop(*_):
        raise Stop

    with pytest.raises(Stop):
        predictor.predict(stack, progress=stop)


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        (dict(backend="tensorrt"), "backend must be one of auto, torch, onnxruntime, openvino"),
        (dict(precision="fp16"), "precision must be auto, bf16 or fp32"),
        (dict(backend="onnxruntime", precision="bf16"), "onnxruntime runs in float32"),
        (dict(backend="openvino", device="cuda"), "runs on the CPU"),
        (dict(batch_size=0), "batch_size must be >= 1"),
    ],
)
def test_bad_settings_are_refused_before_the_model_loads(settings, words):
    with pytest.raises(ValueError, match=words):
        Predictor("./no/such/folder", **settings)


def test_replace_shares_the_model_and_the_path(predictor, stack):
    other = predictor.replace(tta=True, pixel_size=8.0)
    assert other.model is predictor.model and other.choice is predictor.choice and predictor.tta is False
    assert other.record()["tta"] is True
    with pytest.raises(TypeError, match="replace"):
        predictor.replace(backend="onnxruntime")


def test_a_volume_on_disk_matches_the_images(predictor, stack, tmp_path):
    pytest.importorskip("zarr", reason="volumes need the optional volumes extra")
    import zarr

    out = predictor.predict_volume(stack, tmp_path / "p.zarr")
    np.testing.assert_allclose(np.asarray(zarr.open_array(str(out), mode="r")[...]), predictor.predict(stack)[:, 1], atol=1e-5)


def test_the_old_public_predict_functions_warn():
    with pytest.warns(DeprecationWarning, match="Predictor"):
        assert callable(unet_zoo.predict_tiled)
    assert "predict_tiled" not in unet_zoo.__all__ and "Predictor" in unet_zoo.__all__
