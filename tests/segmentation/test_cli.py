"""`unet-zoo segment` through typer's CliRunner: images, predict's probabilities, volumes, errors."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

import unet_zoo
from tests.segmentation.conftest import probabilities_of
from unet_zoo.cli import app

runner = CliRunner()


def _text(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture
def prob_tif(tmp_path, cells):
    _, label = cells
    path = tmp_path / "slice_prob.tif"
    tifffile.imwrite(path, probabilities_of(label)[1])
    return path


@pytest.fixture
def model_dir(tmp_path):
    folder = tmp_path / "tiny-model"
    unet_zoo.save_pretrained(unet_zoo.create_model("small", base_channels=4, depth=2), folder)
    return folder


def test_from_probabilities_writes_labels_and_segments(tmp_path, prob_tif, cells):
    out = tmp_path / "seg"
    result = runner.invoke(app, ["segment", "default", str(prob_tif), "--from-probabilities", "--out", str(out)])
    assert result.exit_code == 0, result.output
    labels = tifffile.imread(out / "slice_labels.tif")
    assert labels.dtype == np.uint32 and labels.shape == cells[1].shape and labels.min() == 1
    png = np.asarray(Image.open(out / "slice_segments.png"))
    assert png.shape == (*labels.shape, 3) and (png == 0).all(axis=-1).any()  # borders drawn in black
    assert f"{labels.max()} cells" in _text(result)
    again = runner.invoke(app, ["segment", "default", str(prob_tif), "--from-probabilities", "--out", str(out)])
    assert again.exit_code == 2 and "already exists" in _text(again) and "--overwrite" in _text(again)
    replaced = runner.invoke(
        app, ["segment", "default", str(prob_tif), "--from-probabilities", "--out", str(out), "--overwrite", "--no-merge"]
    )
    assert replaced.exit_code == 0 and tifffile.imread(out / "slice_labels.tif").max() >= labels.max()


def test_images_with_a_model(tmp_path, cells, model_dir):
    image, _ = cells
    path = tmp_path / "img.png"
    Image.fromarray(image).save(path)
    out = tmp_path / "seg"
    result = runner.invoke(app, ["segment", str(model_dir), str(path), "--out", str(out), "--tile", "64", "--backend", "torch"])
    assert result.exit_code == 0, result.output
    assert tifffile.imread(out / "img_labels.tif").shape == image.shape and (out / "img_segments.png").is_file()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["default", "missing.tif", "--from-probabilities"], "no such file"),
        (["default", "{img}", "--from-probabilities"], "is not a probability map"),
        (["default", "{prob}", "--from-probabilities", "--threshold", "1.5"], "--threshold: must be a probability in [0, 1]"),
        (["default", "{prob}", "--from-probabilities", "--tta"], "--from-probabilities does not run it"),
        (["default", "{prob}", "--from-probabilities", "--segment-block", "64"], "--segment-block and --halo are for volumes"),
        (["no-such-model", "{img}"], "no-such-model"),
    ],
)
def test_bad_input_is_one_red_line_and_exit_2(tmp_path, prob_tif, cells, args, words):
    img = tmp_path / "img.tif"
    tifffile.imwrite(img, cells[0])
    args = [a.format(img=img, prob=prob_tif) for a in args]
    result = runner.invoke(app, ["segment", *args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and words in _text(result) and "Traceback" not in result.output


@pytest.mark.slow
def test_a_volume_of_probabilities(tmp_path, cells):
    zarr = pytest.importorskip("zarr", reason="volumes need the optional zarr extra")
    _, label = cells
    source = tmp_path / "prob.zarr"
    volume = np.stack([probabilities_of(label, seed=s)[1] for s in range(2)])
    zarr.create_array(str(source), shape=volume.shape, chunks=(1, 128, 128), dtype="float32")[:] = volume
    out = tmp_path / "seg.zarr"
    args = ["segment", "default", str(source), "--from-probabilities", "--out", str(out), "--segment-block", "64"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    seg = zarr.open_array(str(out), mode="r")[:]
    assert seg.shape == volume.shape and not set(np.unique(seg[0])) & set(np.unique(seg[1]))
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "finished segmentation" in _text(again)
    pytest.importorskip("distributed", reason="cluster runs need the optional volumes extra (dask.distributed)")
    on_cluster = tmp_path / "cluster.zarr"
    result = runner.invoke(app, [*args[:-4], "--out", str(on_cluster), "--segment-block", "64", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert np.array_equal(zarr.open_array(str(on_cluster), mode="r")[:], seg)  # the same cells on two worker processes


def test_an_image_volume_at_another_pixel_size(tmp_path, cells, model_dir):
    """A model runs on a Zarr image volume at 8 nm/px: probabilities rescaled (recorded in their store), cells on
    the volume's grid; --pixel-size with --from-probabilities is refused (the model does not run)."""
    zarr = pytest.importorskip("zarr", reason="volumes need the optional zarr extra")
    image, _ = cells
    source = tmp_path / "em.zarr"
    zarr.create_array(str(source), shape=(1, *image.shape), chunks=(1, 128, 128), dtype="uint8")[:] = image[None]
    out = tmp_path / "cells.zarr"
    args = ["segment", str(model_dir), str(source), "--out", str(out), "--tile", "64", "--device", "cpu"]
    result = runner.invoke(app, [*args, "--pixel-size", "8"])
    assert result.exit_code == 0, result.output
    assert zarr.open_array(str(out), mode="r").shape == (1, *image.shape)
    assert zarr.open_array(str(tmp_path / "cells-probabilities.zarr"), mode="r").attrs["unet_zoo"]["pixel_size_nm"] == 8.0
    refused = runner.invoke(
        app, ["segment", "default", str(source), "--from-probabilities", "--out", str(tmp_path / "x.zarr"), "--pixel-size", "8"]
    )
    assert refused.exit_code == 2 and "--pixel-size apply when the model runs" in _text(refused)


def test_workers_are_for_volumes(tmp_path, prob_tif):
    args = ["segment", "default", str(prob_tif), "--from-probabilities", "--out", str(tmp_path / "s"), "--workers", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "--workers and --scheduler are for volumes" in _text(result)


def test_pixel_size_segments_at_the_models_scale_and_returns_cells_on_the_images_grid(tmp_path, cells, model_dir):
    image, _ = cells
    path = tmp_path / "coarse.tif"
    tifffile.imwrite(path, image[::2, ::2])  # 8 nm/px against the model's 4 nm/px (no tags: --pixel-size says it)
    out = tmp_path / "seg"
    args = ["segment", str(model_dir), str(path), "--out", str(out), "--tile", "64", "--backend", "torch"]
    result = runner.invoke(app, [*args, "--pixel-size", "8", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    assert "segmented at the model's 4 nm/px" in _text(result)
    labels = tifffile.imread(out / "coarse_labels.tif")
    assert labels.shape == image[::2, ::2].shape and labels.dtype == np.uint32 and labels.min() >= 1


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--backend", "onnxruntime", "--precision", "bf16"], "onnxruntime runs in float32"),
        (["--precision", "fp16"], "--precision: must be one of auto, bf16, fp32"),
    ],
)
def test_precision_is_checked_before_anything_runs(tmp_path, cells, model_dir, extra, message):
    path = tmp_path / "img.tif"
    tifffile.imwrite(path, cells[0])
    result = runner.invoke(app, ["segment", str(model_dir), str(path), "--out", str(tmp_path / "seg"), *extra])
    assert result.exit_code == 2 and message in _text(result)
    assert not (tmp_path / "seg" / "img_labels.tif").exists()


def test_from_probabilities_refuses_options_that_need_the_model(tmp_path, prob_tif):
    result = runner.invoke(
        app, ["segment", "default", str(prob_tif), "--from-probabilities", "--out", str(tmp_path / "s"), "--pixel-size", "8"]
    )
    assert result.exit_code == 2 and "--from-probabilities does not run it" in _text(result)
