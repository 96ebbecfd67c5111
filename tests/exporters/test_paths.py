"""The inference path `auto` runs: the decision with fake timings, the cache, forcing, and one real measurement."""

from __future__ import annotations

import json
import time

import pytest
import torch

import unet_zoo
from unet_zoo.exporters import paths as exporter_paths
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


@pytest.fixture
def every_path(monkeypatch):
    """A CPU on which every path is a candidate; the runtime cache is the test's own (conftest)."""
    monkeypatch.delenv(measured.INFERENCE_PATH_ENV, raising=False)
    monkeypatch.setattr(exporter_paths, "candidate_inference_paths", lambda device: list(measured.INFERENCE_PATHS))
    monkeypatch.setattr(exporter_paths, "inference_path_forward", lambda model, path, onnx=None: None)


def test_the_fastest_path_wins(monkeypatch, every_path):
    seconds = {"torch-fp32": 2.0, "torch-bf16": 0.3, "onnxruntime-fp32": 1.0, "openvino-f32": 0.9, "openvino-bf16": 0.5}
    monkeypatch.setattr(inference_paths, "measure_paths", _fake(seconds))
    choice = exporter_paths.choose_inference_path(_tiny(), "cpu")
    assert (choice.path, choice.precision, choice.how) == ("torch-bf16", "bf16", "measured")
    assert choice.record()["timings_s"] == seconds
    # flags narrow the choice to what they allow, from the same measurement
    assert exporter_paths.choose_inference_path(_tiny(), "cpu", precision="fp32").path == "openvino-f32"
    assert exporter_paths.choose_inference_path(_tiny(), "cpu", backend="torch").path == "torch-bf16"
    assert exporter_paths.choose_inference_path(_tiny(), "cpu", backend="openvino").path == "openvino-bf16"


def test_a_path_whose_output_disagrees_with_fp32_is_rejected(monkeypatch, every_path):
    seconds = {"torch-fp32": 2.0, "torch-bf16": 0.3, "onnxruntime-fp32": 1.0, "openvino-f32": 0.9, "openvino-bf16": 0.5}
    monkeypatch.setattr(inference_paths, "measure_paths", _fake(seconds, disagree=("torch-bf16", "openvino-bf16")))
    assert exporter_paths.choose_inference_path(_tiny(), "cpu").path == "openvino-f32"


def test_the_choice_is_cached_per_machine_and_architecture(monkeypatch, every_path):
    calls: list = []
    seconds = {p: 1.0 + i for i, p in enumerate(measured.INFERENCE_PATHS)}
    monkeypatch.setattr(inference_paths, "measure_paths", _fake(seconds, calls=calls))
    first = exporter_paths.choose_inference_path(_tiny(), "cpu")
    assert first.how == "measured" and len(calls) == 1
    cache = json.loads(measured.runtime_cache_file().read_text())
    (entry,) = cache["inference"].values()
    assert entry["chosen"] == "torch-fp32" and entry["architecture"]["model"] == "small"
    assert entry["machine"]["threads"] == torch.get_num_threads() and entry["machine"]["torch"] == torch.__version__
    inference_paths._MEMORY.clear()  # a new process: read from the file
    again = exporter_paths.choose_inference_path(_tiny(), "cpu")
    assert (again.how, again.path, len(calls)) == ("cached", "torch-fp32", 1)
    # another architecture, another thread count: measured again
    exporter_paths.choose_inference_path(unet_zoo.create_model("small", base_channels=8, depth=2).eval(), "cpu")
    assert len(calls) == 2
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1 if old > 1 else 2)
        exporter_paths.choose_inference_path(_tiny(), "cpu")
    finally:
        torch.set_num_threads(old)
    assert len(calls) == 3
    assert len(json.loads(measured.runtime_cache_file().read_text())["inference"]) == 3
    # refresh measures again
    assert exporter_paths.choose_inference_path(_tiny(), "cpu", refresh=True).how == "measured" and len(calls) == 4


@pytest.mark.parametrize("content", ["{not json", '{"version": 1, "inference": []}', "[]", ""])
def test_a_corrupt_cache_is_ignored_and_rewritten(monkeypatch, every_path, content):
    calls: list = []
    seconds = {p: 1.0 + i for i, p in enumerate(measured.INFERENCE_PATHS)}
    monkeypatch.setattr(inference_paths, "measure_paths", _fake(seconds, calls=calls))
    path = measured.runtime_cache_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    assert exporter_paths.choose_inference_path(_tiny(), "cpu").how == "measured" and len(calls) == 1
    assert len(json.loads(path.read_text())["inference"]) == 1


def test_environment_variable_and_flags_force_a_path(monkeypatch, every_path):
    calls: list = []
    monkeypatch.setattr(inference_paths, "measure_paths", _fake({}, calls=calls))
    monkeypatch.setenv(measured.INFERENCE_PATH_ENV, "openvino-f32")
    choice = exporter_paths.choose_inference_path(_tiny(), "cpu")
    assert (choice.path, choice.how) == ("openvino-f32", "environment")
    # a flag that leaves one path wins over the variable
    forced = exporter_paths.choose_inference_path(_tiny(), "cpu", backend="torch", precision="bf16")
    assert (forced.path, forced.how, forced.precision) == ("torch-bf16", "forced", "bf16")
    assert exporter_paths.choose_inference_path(_tiny(), "cpu", backend="onnxruntime").path == "onnxruntime-fp32"
    assert calls == []  # nothing measured
    monkeypatch.setenv(measured.INFERENCE_PATH_ENV, "tensorrt")
    with pytest.raises(ValueError, match="UNET_ZOO_INFERENCE_PATH='tensorrt' is not a path"):
        exporter_paths.choose_inference_path(_tiny(), "cpu")
    with pytest.raises(ValueError, match="float32 only"):
        measured.allowed_inference_paths("onnxruntime", "bf16")
    with pytest.raises(ValueError, match="backend must be one of"):
        measured.allowed_inference_paths("tensorrt")


def test_exported_backends_run_on_the_cpu_only(monkeypatch, every_path):
    net = _tiny()
    with pytest.raises(ValueError, match="runs on the CPU"):
        exporter_paths.choose_inference_path(net, torch.device("cuda"), backend="onnxruntime")


@pytest.mark.slow  # ONNX export and OpenVINO compilation: ~6 s on 2 loaded cores
@pytest.mark.measured_auto
def test_real_measurement_of_a_tiny_model_is_quick_and_agrees():
    net = _tiny()
    started = time.perf_counter()
    timings, forwards = exporter_paths.measure_inference_paths(net, "cpu", budget_s=1.0)
    elapsed = time.perf_counter() - started
    assert elapsed < 30, elapsed  # the budget (1 s of timed calls) plus warm-ups and exports of a tiny model
    assert list(timings)[0] == "torch-fp32" and timings["torch-fp32"].max_diff == 0.0
    assert set(timings) == set(exporter_paths.candidate_inference_paths(torch.device("cpu")))
    for path, timing in timings.items():
        assert timing.error is None and timing.seconds is not None and timing.seconds > 0, (path, timing)
        assert timing.agrees, (path, timing)  # a correct path agrees; bf16 only rounds
        assert path in forwards
    choice = exporter_paths.choose_inference_path(net, "cpu")
    assert choice.how == "measured" and choice.path == measured.fastest_agreeing_path(choice.timings)
    assert exporter_paths.choose_inference_path(net, "cpu").how == "cached"


@pytest.mark.measured_auto
def test_a_path_that_fails_to_build_is_not_chosen(monkeypatch):
    from unet_zoo.exporters import traced

    def reject(*args, **kwargs):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(traced, "onnx_bytes", reject)
    monkeypatch.setattr(exporter_paths, "candidate_inference_paths", lambda device: ["torch-fp32", "onnxruntime-fp32"])
    timings, _ = exporter_paths.measure_inference_paths(_tiny(), "cpu", budget_s=0.2)
    assert timings["onnxruntime-fp32"].seconds is None and "unsupported operator" in timings["onnxruntime-fp32"].error
    assert measured.fastest_agreeing_path(timings) == "torch-fp32"


def test_flags_that_leave_no_candidate_run_what_they_ask_without_measuring(monkeypatch):
    monkeypatch.delenv(measured.INFERENCE_PATH_ENV, raising=False)
    monkeypatch.setattr(exporter_paths, "candidate_inference_paths", lambda device: ["torch-fp32", "onnxruntime-fp32"])
    monkeypatch.setattr(inference_paths, "measure_paths", lambda *a, **k: pytest.fail("measured"))
    choice = exporter_paths.choose_inference_path(_tiny(), "cpu", precision="bf16")  # a CPU without bf16 units
    assert (choice.path, choice.how) == ("torch-bf16", "forced")
