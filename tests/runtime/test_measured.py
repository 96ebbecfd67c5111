"""The runtime cache and the pure decisions taken from measured timings (the measurements are tested where
they live: tests/inference/test_paths.py, tests/exporters/test_paths.py, tests/training/test_precision.py)."""

from __future__ import annotations

import pytest
import torch

import unet_zoo
from unet_zoo.runtime import measured
from unet_zoo.runtime import settings as runtime
from unet_zoo.runtime.measured import PathTiming


def test_agreement_uses_the_bf16_tolerance():
    timings = {
        "torch-fp32": PathTiming(1.0, 0.0, 0.0, True),
        "torch-bf16": PathTiming(0.2, 0.3, 0.001, False),  # a pixel moved more than 0.25
        "onnxruntime-fp32": PathTiming(0.5, 1e-6, 1e-7, True),
    }
    assert measured.fastest_agreeing_path(timings) == "onnxruntime-fp32"
    assert measured.fastest_agreeing_path(timings, ["torch-fp32", "torch-bf16"]) == "torch-fp32"
    assert measured.fastest_agreeing_path({"torch-fp32": PathTiming(None, error="boom")}) is None


def test_forcing_by_one_allowed_path_or_the_environment(monkeypatch):
    monkeypatch.delenv(measured.INFERENCE_PATH_ENV, raising=False)
    assert measured.forced_inference_path(["torch-bf16"]) == ("torch-bf16", "forced")
    assert measured.forced_inference_path(["torch-fp32", "torch-bf16"]) is None
    monkeypatch.setenv(measured.INFERENCE_PATH_ENV, "torch-bf16")
    assert measured.forced_inference_path(["torch-fp32", "torch-bf16"]) == ("torch-bf16", "environment")
    assert measured.forced_inference_path(["torch-fp32", "onnxruntime-fp32"]) is None  # not allowed: measure
    monkeypatch.setenv(measured.INFERENCE_PATH_ENV, "tensorrt")
    with pytest.raises(ValueError, match="UNET_ZOO_INFERENCE_PATH='tensorrt' is not a path"):
        measured.forced_inference_path(["torch-fp32", "torch-bf16"])


def test_cache_entries_round_trip_and_keys_follow_the_architecture():
    path = measured.runtime_cache_file()  # the test's own folder (conftest)
    assert measured.read_runtime_cache(path)["inference"] == {}
    measured.store_runtime_entry("training", "k", {"chosen": "fp32"})
    assert measured.read_runtime_cache()["training"] == {"k": {"chosen": "fp32"}}
    path.write_text("{not json")
    assert measured.read_runtime_cache() == {"version": measured.CACHE_VERSION, "inference": {}, "training": {}}
    small = measured.architecture_key(unet_zoo.create_model("small", base_channels=4, depth=2))
    seeded = measured.architecture_key(unet_zoo.create_model("small", base_channels=4, depth=2, dropout=0.3))
    wider = measured.architecture_key(unet_zoo.create_model("small", base_channels=8, depth=2))
    assert small == seeded and small != wider  # dropout does not change the arithmetic of an inference
    assert measured.cache_key({"a": 1, "b": 2}) == measured.cache_key({"b": 2, "a": 1})
    assert measured.machine_key(torch.device("cpu"))["threads"] == torch.get_num_threads()


# --- threads ---------------------------------------------------------------------------------------


def test_threads_follow_affinity_quota_and_the_environment(monkeypatch, tmp_path):
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7}, raising=False)
    monkeypatch.setattr(runtime, "cgroup_cpu_limit", lambda: None)
    assert runtime.available_cores() == 8
    monkeypatch.setattr(runtime, "cgroup_cpu_limit", lambda: 2.5)
    assert runtime.available_cores() == 2
    monkeypatch.setattr(runtime, "cgroup_cpu_limit", lambda: 0.5)
    assert runtime.available_cores() == 1
    assert runtime.threads_per_worker(3, cores=8) == 2 and runtime.threads_per_worker(16, cores=8) == 1
    monkeypatch.setenv(runtime.THREADS_ENV, "3")
    assert runtime.thread_count() == 3
    monkeypatch.setenv(runtime.THREADS_ENV, "many")
    with pytest.raises(ValueError, match="UNET_ZOO_THREADS must be a positive whole number"):
        runtime.thread_count()


def test_cgroup_quota_is_read_from_v2_and_v1_files(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert runtime.cgroup_cpu_limit(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert runtime.cgroup_cpu_limit(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("300000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert runtime.cgroup_cpu_limit(v1) == 3.0
    assert runtime.cgroup_cpu_limit(tmp_path / "missing") is None
