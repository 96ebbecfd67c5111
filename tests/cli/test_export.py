"""`unet-zoo export` and `unet-zoo predict --backend onnxruntime` through typer's CliRunner."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from typer.testing import CliRunner

import unet_zoo
from unet_zoo.cli import app
from unet_zoo.exporters.sessions import onnxruntime_session
from unet_zoo.exporters.traced import torch_probabilities
from unet_zoo.models.provenance import Provenance, set_provenance

pytest.importorskip("onnxruntime")
runner = CliRunner()


def _text(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A narrow `small` checkpoint folder (what `unet-zoo export` reads like a published one)."""
    torch.manual_seed(0)
    model = unet_zoo.create_model("small", base_channels=4)
    return model, unet_zoo.save_pretrained(model, tmp_path_factory.mktemp("ckpt") / "narrow-small")


@pytest.mark.slow
def test_export_onnx_and_torchscript_from_a_checkpoint_folder(tmp_path, checkpoint):
    model, folder = checkpoint
    x = np.random.default_rng(0).random((2, 1, 64, 96), dtype=np.float32)
    result = runner.invoke(app, ["export", str(folder), "--format", "onnx", "--out", str(tmp_path / "m.onnx")])
    assert result.exit_code == 0, result.output
    session = onnxruntime_session(tmp_path / "m.onnx")
    assert np.abs(session.run(None, {"input": x})[0] - torch_probabilities(model, x)).max() <= 1e-4
    result = runner.invoke(app, ["export", str(folder), "--format", "torchscript", "--out", str(tmp_path / "m.pt")])
    assert result.exit_code == 0, result.output
    with torch.no_grad():
        got = torch.jit.load(str(tmp_path / "m.pt"))(torch.from_numpy(x)).numpy()
    assert np.abs(got - torch_probabilities(model, x)).max() <= 1e-4


def test_export_refuses_existing_output_without_overwrite(tmp_path, checkpoint):
    _, folder = checkpoint
    out = tmp_path / "m.onnx"
    out.write_bytes(b"keep me")
    result = runner.invoke(app, ["export", str(folder), "--format", "onnx", "--out", str(out)])
    assert result.exit_code == 2 and "already exists" in _text(result) and "--overwrite" in _text(result)
    assert out.read_bytes() == b"keep me"
    result = runner.invoke(app, ["export", str(folder), "--format", "onnx", "--out", str(out), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() != b"keep me" and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_export_bad_format_and_model(tmp_path, checkpoint):
    _, folder = checkpoint
    result = runner.invoke(app, ["export", str(folder), "--format", "tflite", "--out", str(tmp_path / "m")])
    assert result.exit_code == 2 and "--format must be one of onnx, torchscript, bioimageio" in _text(result)
    result = runner.invoke(app, ["export", "smal", "--format", "onnx", "--out", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2 and "Did you mean 'small'" in _text(result)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_predict_backend_onnxruntime_equals_torch(tmp_path, checkpoint, rng):
    _, folder = checkpoint
    tifffile.imwrite(tmp_path / "img.tif", rng.integers(0, 256, (2, 70, 90), dtype=np.uint8), photometric="minisblack")
    probs = {}
    for backend in ("torch", "onnxruntime", "auto"):
        out = tmp_path / backend
        result = runner.invoke(
            app,
            [
                "predict",
                str(folder),
                str(tmp_path / "img.tif"),
                "--out",
                str(out),
                "--device",
                "cpu",
                "--tile",
                "64",
                "--backend",
                backend,
            ],
        )
        assert result.exit_code == 0, result.output
        probs[backend] = tifffile.imread(out / "img_prob.tif")
    assert probs["torch"].shape == (2, 70, 90)
    assert np.abs(probs["onnxruntime"] - probs["torch"]).max() <= 1e-4
    assert np.array_equal(probs["auto"], probs["torch"])  # conftest forces torch-fp32 for "auto"


def test_predict_backend_errors(tmp_path, checkpoint, rng):
    _, folder = checkpoint
    tifffile.imwrite(tmp_path / "img.tif", rng.integers(0, 256, (40, 40), dtype=np.uint8))
    result = runner.invoke(app, ["predict", str(folder), str(tmp_path / "img.tif"), "--backend", "tensorrt"])
    assert result.exit_code == 2 and "--backend: must be one of auto, torch, onnxruntime, openvino" in _text(result)
    result = runner.invoke(
        app, ["predict", str(folder), str(tmp_path / "img.tif"), "--backend", "onnxruntime", "--device", "cuda"]
    )
    assert result.exit_code == 2 and "runs on the CPU" in _text(result)


def test_export_error_names_the_failed_format_and_the_working_ones(tmp_path, monkeypatch):
    from unet_zoo.cli import inference

    class FFTUNet(unet_zoo.UNet):  # an op the ONNX exporter rejects; TorchScript traces it
        def forward(self, x):
            return super().forward(torch.fft.fft2(x).real / x.shape[-1] / x.shape[-2])

    args = unet_zoo.models.registry.model_args("small", base_channels=4)
    model = FFTUNet(**args).eval()
    set_provenance(model, Provenance(architecture="small", args=args))
    monkeypatch.setattr(inference, "_load", lambda spec, device: model)
    result = runner.invoke(app, ["export", "fft-unet", "--format", "onnx", "--out", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2
    assert "cannot export 'small' to onnx" in _text(result)
    assert "formats that work for this model: torchscript, bioimageio" in _text(result)
    assert list(tmp_path.iterdir()) == []
