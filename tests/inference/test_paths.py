"""The torch paths `predict_tiled(..., precision="auto")` chooses among, measured with predict_tiled itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import unet_zoo
from unet_zoo.inference import paths as inference_paths
from unet_zoo.runtime import measured
from unet_zoo.runtime.measured import PathTiming


def _tiny():
    torch.manual_seed(0)
    return unet_zoo.create_model("small", base_channels=4, depth=2).eval()


def _fake(seconds: dict[str, float], disagree: tuple[str, ...] = (), calls: list | None = None):
    """A stand-in for unet_zoo.inference.paths.measure_paths: the given seconds; `disagree` paths differ from float32."""

    def measure(model, device=None, paths=None, **_):
        if calls is not None:
            calls.append(list(paths))
        timings = {
            p: PathTiming(seconds[p], 0.5 if p in disagree else 0.0, 0.1 if p in disagree else 0.0, p not in disagree)
            for p in paths
        }
        return timings, {}

    return measure


@pytest.mark.measured_auto
def test_predict_tiled_auto_runs_the_measured_torch_path(monkeypatch):
    monkeypatch.setattr(inference_paths, "measure_paths", _fake({"torch-fp32": 1.0, "torch-bf16": 0.5}))
    monkeypatch.setattr(inference_paths, "torch_candidate_paths", lambda device: ["torch-fp32", "torch-bf16"])
    net = _tiny()
    image = np.random.default_rng(0).random((48, 40), dtype=np.float32)
    bf16 = unet_zoo.predict_tiled(net, image, device="cpu", precision="bf16")
    predict = unet_zoo.predict_tiled(net, image, device="cpu", precision="auto")
    np.testing.assert_array_equal(predict, bf16)
    monkeypatch.setenv(measured.INFERENCE_PATH_ENV, "torch-fp32")
    np.testing.assert_array_equal(
        unet_zoo.predict_tiled(net, image, device="cpu", precision="auto"),
        unet_zoo.predict_tiled(net, image, device="cpu", precision="fp32"),
    )


@pytest.mark.measured_auto
def test_measuring_runs_the_given_predict_and_compares_with_fp32():
    net = _tiny()
    calls = []

    def predict(model, image, **kwargs):
        calls.append(kwargs["precision"])
        return unet_zoo.predict_tiled(model, image, **kwargs)

    image = measured.representative_image(side=48)
    timings, forwards = inference_paths.measure_paths(net, "cpu", ["torch-fp32"], predict=predict, image=image, budget_s=0.1)
    assert timings["torch-fp32"].max_diff == 0.0 and timings["torch-fp32"].agrees and forwards == {"torch-fp32": None}
    assert len(calls) >= 2 and set(calls) == {"fp32"}  # a warm-up, then at least one timed call


def test_torch_choice_needs_no_exporter_and_refuses_exported_paths(monkeypatch):
    monkeypatch.delenv(measured.INFERENCE_PATH_ENV, raising=False)
    monkeypatch.setattr(inference_paths, "torch_candidate_paths", lambda device: ["torch-fp32", "torch-bf16"])
    calls = []
    monkeypatch.setattr(inference_paths, "measure_paths", _fake({"torch-fp32": 2.0, "torch-bf16": 1.0}, calls=calls))
    choice = inference_paths.choose_path(_tiny(), "cpu", predict=unet_zoo.predict_tiled, backend="torch")
    assert (choice.path, choice.how, choice.forward) == ("torch-bf16", "measured", None)
    assert calls == [["torch-fp32", "torch-bf16"]]  # only the torch candidates were measured
    with pytest.raises(ValueError, match="not a torch path"):
        inference_paths.torch_forward(_tiny(), "onnxruntime-fp32")
