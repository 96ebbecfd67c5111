"""`unet-zoo predict` and `unet-zoo evaluate` through typer's CliRunner."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

import unet_zoo
from unet_zoo.cli import app

runner = CliRunner()


def _text(result) -> str:
    """The command's output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def test_an_architecture_name_gives_random_weights_with_a_warning(tmp_path, caplog):
    """The CLI's MODEL argument takes an architecture explicitly (random weights), and says so."""
    tifffile.imwrite(tmp_path / "one.tif", np.zeros((40, 52), np.uint8))
    with caplog.at_level(logging.WARNING, logger="unet_zoo.hub.factory"):
        result = runner.invoke(
            app, ["predict", "small", str(tmp_path / "one.tif"), "--out", str(tmp_path / "p"), "--device", "cpu"]
        )
    assert result.exit_code == 0, result.output
    assert "random" in caplog.text


def test_an_unknown_model_name_is_one_line_with_suggestions(tmp_path):
    tifffile.imwrite(tmp_path / "x.tif", np.zeros((40, 52), np.uint8))
    result = runner.invoke(app, ["predict", "smal", str(tmp_path / "x.tif"), "--out", str(tmp_path / "p"), "--device", "cpu"])
    assert result.exit_code == 2 and "Did you mean 'small'" in result.output and "Traceback" not in result.output


def test_predict_tif_stack_and_png(tmp_path, rng):
    tifffile.imwrite(tmp_path / "one.tif", rng.integers(0, 256, (40, 52), dtype=np.uint8))
    tifffile.imwrite(tmp_path / "vol.tif", rng.integers(0, 256, (2, 24, 24), dtype=np.uint8), photometric="minisblack")
    Image.fromarray(rng.integers(0, 256, (30, 20, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    out = tmp_path / "preds"
    result = runner.invoke(
        app,
        [
            "predict",
            "small",
            str(tmp_path / "one.tif"),
            str(tmp_path / "vol.tif"),
            str(tmp_path / "rgb.png"),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--batch-size",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    prob = tifffile.imread(out / "one_prob.tif")
    assert prob.shape == (40, 52) and prob.dtype == np.float32 and 0 <= prob.min() and prob.max() <= 1
    mask = np.array(Image.open(out / "one_mask.png"))
    np.testing.assert_array_equal(mask, np.where(prob > 0.5, 255, 0))
    assert np.array(Image.open(out / "one_overlay.png")).shape == (40, 52, 3)
    assert tifffile.imread(out / "vol_prob.tif").shape == (2, 24, 24)
    assert (out / "vol_z001_overlay.png").is_file() and (out / "rgb_mask.png").is_file()


def test_predict_errors(tmp_path):
    result = runner.invoke(app, ["predict", "small", str(tmp_path / "missing.tif")])
    assert result.exit_code == 2 and "no such image file" in _text(result)
    (tmp_path / "a.tif").write_bytes(b"")
    result = runner.invoke(app, ["predict", "nonsense-model", str(tmp_path / "a.tif")])
    assert result.exit_code == 2 and "is not a published checkpoint" in _text(result)


def test_evaluate_missing_data_dir(tmp_path):
    result = runner.invoke(app, ["evaluate", "small", "--data-dir", str(tmp_path / "nowhere"), "--device", "cpu"])
    assert result.exit_code == 2 and "does not exist" in _text(result)


def test_evaluate_bad_split():
    result = runner.invoke(app, ["evaluate", "small", "--split", "test"])
    assert result.exit_code == 2 and "--split" in _text(result)


@pytest.mark.slow
def test_evaluate_one_real_slice(isbi_dir, tmp_path):
    out = tmp_path / "m.json"
    result = runner.invoke(
        app,
        ["evaluate", "small", "--data-dir", str(isbi_dir), "--fold", "29", "--k", "30", "--device", "cpu", "--out", str(out)],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "0.0382" in _text(result) and "held-out" in _text(result)
    metrics = json.loads(out.read_text())
    assert metrics["slices"] == [29] and metrics["model"] == "small"
    assert 0 <= metrics["rand_error"] <= 1 and 0 <= metrics["warping_error"] <= 1
    assert "0.000353" in _text(result)


@pytest.mark.slow
def test_evaluate_no_warping_leaves_the_warping_error_out(isbi_dir, tmp_path):
    out = tmp_path / "m.json"
    result = runner.invoke(
        app,
        [
            "evaluate",
            "small",
            "--data-dir",
            str(isbi_dir),
            "--fold",
            "29",
            "--k",
            "30",
            "--device",
            "cpu",
            "--no-warping",
            "--out",
            str(out),
            "--json",
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    assert "warping_error" not in metrics and 0 <= metrics["rand_error"] <= 1
    assert json.loads(result.stdout) == metrics  # --json: stdout holds only the scores; the tables go to stderr
    assert "ISBI 2012" in result.stderr


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_hub_model_not_cached_offline_is_a_clean_error_saying_what_to_run(command, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as HF_HUB_OFFLINE=1 at import
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    args = [command, "testuser/never-downloaded"] + ([str(image)] if command == "predict" else []) + ["--device", "cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    assert "HF_HUB_OFFLINE=1" in _text(result) and "unet-zoo download testuser/never-downloaded" in _text(result)


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_unpublished_checkpoint_name_says_how_to_train_it(command, tmp_path):
    from unet_zoo.models.checkpoint_names import VARIANT_RECIPES

    unpublished = [(v, name) for v, name in VARIANT_RECIPES.items() if name not in unet_zoo.list_pretrained()]
    if not unpublished:
        pytest.skip("every paper checkpoint is published")
    variant, name = unpublished[0]
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    args = [command, name] + ([str(image), "--out", str(tmp_path / "preds")] if command == "predict" else [])
    result = runner.invoke(app, [*args, "--device", "cpu"])
    assert result.exit_code == 2, result.output
    assert (
        "not published yet" in _text(result)
        and f"unet-zoo reproduce isbi --variant {variant}" in _text(result)
        or "This source checkout has a checkpoint folder" in _text(result)
    )  # once cards/<name> exists


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_missing_gpu_is_a_clear_error(command, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    args = [command, "small"] + ([str(image)] if command == "predict" else []) + ["--device", "cuda"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "CUDA is not available on this machine; use --device cpu" in _text(result)


@pytest.mark.slow
def test_predict_accepts_a_training_run_folder(tmp_path):
    from unet_zoo.training.recipes import load_recipe
    from unet_zoo.training.trainer import train

    train(load_recipe("tiny").with_overrides(train={"steps": 2}), out_dir=tmp_path / "run", final_outputs=False)
    image = tmp_path / "a.png"
    Image.fromarray((np.random.default_rng(0).random((40, 40)) * 255).astype(np.uint8)).save(image)
    result = runner.invoke(
        app, ["predict", str(tmp_path / "run"), str(image), "--out", str(tmp_path / "preds"), "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "preds" / "a_prob.tif").is_file()


def test_predict_out_that_is_an_existing_file_is_a_clear_error(tmp_path, rng):
    image = tmp_path / "a.tif"
    tifffile.imwrite(image, rng.integers(0, 256, (24, 24), dtype=np.uint8))
    existing = tmp_path / "results.txt"
    existing.write_text("keep me")
    for out in (existing, existing / "preds"):  # the file itself, or a folder below it
        result = runner.invoke(app, ["predict", "small", str(image), "--out", str(out), "--device", "cpu"])
        assert result.exit_code == 2, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
        assert "--out" in _text(result) and "results.txt is" in _text(result) and "file" in _text(result)
    assert existing.read_text() == "keep me"


def test_predict_image_with_nan_is_a_clear_error(tmp_path, rng):
    data = rng.random((24, 24)).astype(np.float32)
    data[0, :5] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", data)
    result = runner.invoke(
        app, ["predict", "small", str(tmp_path / "nan.tif"), "--out", str(tmp_path / "preds"), "--device", "cpu"]
    )
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    assert "nan.tif" in _text(result) and "5 non-finite pixel value(s)" in _text(result) and "np.nan_to_num" in _text(result)
    assert not (tmp_path / "preds" / "nan_prob.tif").exists()


def _save(path, image):
    """Write `image` as a TIFF or PNG, by `path`'s suffix (creating its folder); returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        Image.fromarray(image).save(path)
    else:
        tifffile.imwrite(path, image, photometric="minisblack")
    return path


def test_inputs_with_the_same_stem_are_refused_before_anything_is_written(tmp_path, rng):
    for name in ("a/ok.tif", "b/ok.tiff", "c/OK.png"):
        _save(tmp_path / name, rng.integers(0, 256, (16, 16), dtype=np.uint8))
    for first, second in (("a/ok.tif", "b/ok.tiff"), ("a/ok.tif", "c/OK.png"), ("a/ok.tif", "a/ok.tif")):
        out = tmp_path / "preds"
        result = runner.invoke(
            app, ["predict", "small", str(tmp_path / first), str(tmp_path / second), "--out", str(out), "--device", "cpu"]
        )
        assert result.exit_code == 2, result.output
        assert str(tmp_path / first) in _text(result) and str(tmp_path / second) in _text(result)
        assert not out.exists()


@pytest.mark.slow
def test_predict_refuses_to_replace_earlier_outputs_unless_asked(tmp_path, rng):
    image = tmp_path / "a.tif"
    tifffile.imwrite(image, rng.integers(0, 256, (16, 16), dtype=np.uint8))
    out = tmp_path / "preds"
    args = ["predict", "small", str(image), "--out", str(out), "--device", "cpu"]
    assert runner.invoke(app, args).exit_code == 0
    before = (out / "a_prob.tif").stat().st_mtime_ns
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "a_prob.tif already exists; pass --overwrite" in _text(result)
    assert (out / "a_prob.tif").stat().st_mtime_ns == before
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0


@pytest.mark.parametrize("shape", [(1, 40), (40, 1), (1, 1), (1, 1, 40), (3, 1, 20)])
@pytest.mark.parametrize("suffix", [".tif", ".png"])
def test_one_pixel_high_or_wide_images_are_predicted(tmp_path, shape, suffix):
    if suffix == ".png" and len(shape) == 3:
        pytest.skip("a PNG holds one 2-D image")
    image = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)
    path = _save(tmp_path / f"thin{suffix}", image)
    result = runner.invoke(app, ["predict", "small", str(path), "--out", str(tmp_path / "p"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    prob = tifffile.imread(tmp_path / "p" / "thin_prob.tif")
    expected = shape[1:] if shape[0] == 1 and len(shape) == 3 else shape  # a stack of one section is one image
    assert prob.size == np.prod(expected) and np.isfinite(prob).all()


def test_a_zarr_out_with_several_images_is_refused(tmp_path, rng):
    for name in ("a.tif", "b.tif"):
        tifffile.imwrite(tmp_path / name, rng.integers(0, 256, (2, 16, 16), dtype=np.uint8), photometric="minisblack")
    out = tmp_path / "out.zarr"
    result = runner.invoke(
        app, ["predict", "small", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "--out", str(out), "--device", "cpu"]
    )
    assert result.exit_code == 2 and "holds one volume" in _text(result) and "2 inputs" in _text(result)
    assert not out.exists()


def test_precision_option_is_checked_and_recorded(tmp_path, rng):
    tifffile.imwrite(tmp_path / "one.tif", rng.integers(0, 256, (24, 24), dtype=np.uint8))
    bad = runner.invoke(app, ["predict", "small", str(tmp_path / "one.tif"), "--out", str(tmp_path / "p"), "--precision", "fp16"])
    assert bad.exit_code == 2 and "--precision: must be one of auto, bf16, fp32, got 'fp16'" in _text(bad)
    ort = runner.invoke(
        app,
        [
            "predict",
            "small",
            str(tmp_path / "one.tif"),
            "--out",
            str(tmp_path / "p"),
            "--backend",
            "onnxruntime",
            "--precision",
            "bf16",
        ],
    )
    assert ort.exit_code == 2 and "onnxruntime runs in float32" in _text(ort)
    assert not (tmp_path / "p").exists()
    args = ["predict", "small", str(tmp_path / "one.tif"), "--out", str(tmp_path / "p"), "--device", "cpu", "--precision", "bf16"]
    ok = runner.invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "p" / "one_prob.tif").is_file()
    train = runner.invoke(app, ["train", "tiny", "--precision", "half", "--out", str(tmp_path / "run")])
    assert train.exit_code == 2 and "--precision: must be one of auto, bf16, fp32" in _text(train)


@pytest.mark.slow
def test_evaluate_json_records_the_precision(isbi_dir, tmp_path):
    out = tmp_path / "m.json"
    args = ["evaluate", "small", "--data-dir", str(isbi_dir), "--fold", "29", "--k", "30", "--device", "cpu"]
    result = runner.invoke(app, [*args, "--no-warping", "--precision", "fp32", "--out", str(out)])
    assert result.exit_code == 0, result.output
    recorded = json.loads(out.read_text())
    assert recorded["precision"] == "fp32" and "(torch-fp32)" in _text(result)
    assert (recorded["inference"]["path"], recorded["inference"]["how"]) == ("torch-fp32", "environment")  # conftest
