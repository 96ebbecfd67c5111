"""The CLI says which inference path ran and records it in its outputs; flags and the variable force it."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from typer.testing import CliRunner

import unet_zoo
from unet_zoo.cli import app
from unet_zoo.exporters import paths as exporter_paths
from unet_zoo.inference import paths as inference_paths
from unet_zoo.runtime import measured

runner = CliRunner()


def _text(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    torch.manual_seed(0)
    return unet_zoo.save_pretrained(
        unet_zoo.create_model("small", base_channels=4, depth=2), tmp_path_factory.mktemp("ckpt") / "tiny"
    )


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "img.tif"
    tifffile.imwrite(path, np.random.default_rng(0).integers(0, 256, (40, 48), dtype=np.uint8))
    return path


def _predict(folder, image, out, *flags):
    result = runner.invoke(app, ["predict", str(folder), str(image), "--out", str(out), "--device", "cpu", *flags])
    assert result.exit_code == 0, result.output
    return _text(result), tifffile.TiffFile(out / "img_prob.tif").shaped_metadata[0]["unet_zoo"]["inference"]


@pytest.mark.slow  # three predictions, one through an ONNX export
def test_predict_prints_and_records_the_path(tmp_path, folder, image, monkeypatch):
    text, record = _predict(folder, image, tmp_path / "env")  # conftest: $UNET_ZOO_INFERENCE_PATH = torch-fp32
    assert "inference path: torch-fp32 on cpu ($UNET_ZOO_INFERENCE_PATH)" in text
    assert (record["path"], record["precision"], record["how"]) == ("torch-fp32", "fp32", "environment")
    text, record = _predict(folder, image, tmp_path / "flags", "--backend", "torch", "--precision", "bf16")
    assert (record["path"], record["how"]) == ("torch-bf16", "forced") and "torch-bf16 on cpu (asked for)" in text
    monkeypatch.setenv(measured.INFERENCE_PATH_ENV, "onnxruntime-fp32")
    _, record = _predict(folder, image, tmp_path / "ort")
    assert (record["path"], record["backend"]) == ("onnxruntime-fp32", "onnxruntime")
    fp32 = tifffile.imread(tmp_path / "env" / "img_prob.tif")
    assert np.abs(tifffile.imread(tmp_path / "ort" / "img_prob.tif") - fp32).max() <= 1e-4


def test_predict_measures_once_then_reads_the_cache(tmp_path, folder, image, monkeypatch):
    monkeypatch.delenv(measured.INFERENCE_PATH_ENV)
    seconds = {"torch-fp32": 2.0, "torch-bf16": 1.5, "onnxruntime-fp32": 0.5, "openvino-f32": 0.9, "openvino-bf16": 0.7}
    calls = []

    def measure(model, device=None, paths=None, **_):
        calls.append(list(paths))
        return {p: measured.PathTiming(seconds[p], 0.0, 0.0, True) for p in paths}, {}

    monkeypatch.setattr(inference_paths, "measure_paths", measure)
    monkeypatch.setattr(
        exporter_paths, "candidate_inference_paths", lambda device: ["torch-fp32", "torch-bf16", "onnxruntime-fp32"]
    )
    text, record = _predict(folder, image, tmp_path / "a")
    assert (record["path"], record["how"]) == ("onnxruntime-fp32", "measured") and "(measured now)" in text
    _, record = _predict(folder, image, tmp_path / "b")
    assert (record["path"], record["how"], len(calls)) == ("onnxruntime-fp32", "cached", 1)
    assert record["timings_s"] == {p: seconds[p] for p in ("torch-fp32", "torch-bf16", "onnxruntime-fp32")}


def test_bad_inference_path_variable_is_refused_before_work(tmp_path, folder, image, monkeypatch):
    monkeypatch.setenv(measured.INFERENCE_PATH_ENV, "tensorrt")
    result = runner.invoke(app, ["predict", str(folder), str(image), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "UNET_ZOO_INFERENCE_PATH='tensorrt' is not a path" in _text(result)
    assert not (tmp_path / "o").exists()
    result = runner.invoke(app, ["predict", str(folder), str(image), "--backend", "openvino", "--device", "cuda"])
    assert result.exit_code == 2 and "--backend openvino runs on the CPU" in _text(result)
