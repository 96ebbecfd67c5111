"""Tests of unet_zoo.runtime.settings: the settings decision, the fast path's model/input preparation, autocast, fast_backend."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import unet_zoo
from unet_zoo.runtime import settings as runtime
from unet_zoo.runtime.settings import (
    RuntimeSettings,
    autocast,
    fast_backend,
    prepare_input,
    prepare_model,
    resolve_device,
    runtime_settings,
)


def test_prepare_model_cpu_defaults_keep_nchw():
    model = prepare_model(nn.Conv2d(3, 4, 3), "cpu")
    assert model.weight.is_contiguous()
    assert not model.weight.is_contiguous(memory_format=torch.channels_last)


def test_prepare_model_channels_last_on_request_and_same_output():
    torch.manual_seed(0)
    model = unet_zoo.create_model("small", base_channels=8).eval()
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        expected = model(x)
        fast = prepare_model(model, "cpu", channels_last=True)
        assert fast.encoder[0][0].weight.is_contiguous(memory_format=torch.channels_last)
        got = fast(prepare_input(x, "cpu", channels_last=True))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_prepare_input_layout():
    x = torch.randn(2, 3, 8, 8)
    assert prepare_input(x, "cpu", channels_last=True).is_contiguous(memory_format=torch.channels_last)
    assert prepare_input(x, "cpu").is_contiguous()


def test_autocast_off_on_cpu_by_default_and_bf16_when_asked():
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast("cpu"):
        assert (a @ b).dtype == torch.float32
    with autocast("cpu", enabled=True):
        assert (a @ b).dtype == torch.bfloat16


def test_resolve_device_errors_are_clear():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            resolve_device("cuda")


def test_fast_backend_restores_settings():
    before = (torch.backends.cudnn.benchmark, torch.get_float32_matmul_precision())
    with fast_backend():
        assert torch.backends.cudnn.benchmark is True
        assert torch.get_float32_matmul_precision() == "high"
    assert (torch.backends.cudnn.benchmark, torch.get_float32_matmul_precision()) == before


@pytest.mark.parametrize("unit", [None, "avx512_bf16"])
def test_settings_are_plain_on_a_cpu_without_amx(monkeypatch, unit):
    monkeypatch.setattr(runtime, "cpu_bf16_hardware", lambda: unit)
    assert runtime_settings("cpu") == RuntimeSettings(amp_dtype=None, channels_last=False, compile=False, fast_backend=False)
    assert runtime_settings("cpu").precision == "fp32"
    assert runtime_settings(torch.device("cpu"), compile="auto").compile is False  # "auto" compiles on CUDA only
    assert runtime_settings("cpu", compile="on").compile is True
    forced = runtime_settings("cpu", precision="bf16")  # asked for: CPU bf16 autocast, NHWC
    assert (forced.amp_dtype, forced.channels_last, forced.precision) == (torch.bfloat16, True, "bf16")
    assert runtime_settings("cpu", precision="bf16", channels_last="off").channels_last is False
    assert runtime_settings("cpu", channels_last="on").channels_last is True


@pytest.mark.parametrize("unit", ["amx", "avx512_bf16"])
def test_settings_leave_the_cpu_decision_to_the_measurement(monkeypatch, unit):
    """No hardware flag turns bf16 on for "auto" on the CPU: the entry points measure (unet_zoo.runtime.measured)."""
    monkeypatch.setattr(runtime, "cpu_bf16_hardware", lambda: unit)
    assert runtime_settings("cpu").precision == "fp32"
    assert runtime_settings("cpu", precision="bf16").precision == "bf16"
    assert runtime_settings("cpu", precision="fp32") == runtime_settings("cpu", precision="fp32", channels_last="off")


@pytest.mark.parametrize(
    ("caps", "unit"),
    [
        ({"avx2": True, "avx512_bf16": False, "amx_bf16": False}, None),
        ({"avx512_bf16": True}, "avx512_bf16"),
        ({"avx512_bf16": True, "amx_tile": True, "amx_bf16": True}, "amx"),
        ({"amx_tile": True}, None),  # AMX without its bf16 instructions
    ],
)
def test_cpu_bf16_hardware_reads_torch_capabilities(monkeypatch, caps, unit):
    runtime.cpu_bf16_hardware.cache_clear()
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: caps, raising=False)
    try:
        assert runtime.cpu_bf16_hardware() == unit
        assert runtime.bf16_supported("cpu") is (unit is not None)
    finally:
        runtime.cpu_bf16_hardware.cache_clear()


def test_cpu_bf16_hardware_falls_back_to_cpuinfo(monkeypatch):
    runtime.cpu_bf16_hardware.cache_clear()
    monkeypatch.delattr(torch.cpu, "get_capabilities", raising=False)
    monkeypatch.setattr(runtime, "_cpuinfo_flags", lambda: {"avx2", "amx_bf16", "amx_tile"})
    try:
        assert runtime.cpu_bf16_hardware() == "amx"
    finally:
        runtime.cpu_bf16_hardware.cache_clear()


def test_settings_use_bf16_and_channels_last_on_a_bf16_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    gpu = runtime_settings(torch.device("cuda"), compile="auto")
    assert gpu == RuntimeSettings(amp_dtype=torch.bfloat16, channels_last=True, compile=True, fast_backend=True)
    assert runtime_settings(torch.device("cuda")).compile is False
    plain = runtime_settings(torch.device("cuda"), precision="fp32", channels_last="off")
    assert (plain.amp_dtype, plain.channels_last) == (None, False)


def test_settings_on_a_gpu_without_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla V100")
    assert runtime_settings(torch.device("cuda")).amp_dtype is None  # "auto" falls back to float32
    with pytest.raises(ValueError, match="Tesla V100 has no bfloat16 support"):
        runtime_settings(torch.device("cuda"), precision="bf16")


def test_settings_reject_unknown_values():
    with pytest.raises(ValueError, match="precision must be one of 'auto', 'bf16', 'fp32', got 'fp16'"):
        runtime_settings("cpu", precision="fp16")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="channels_last must be one of"):
        runtime_settings("cpu", channels_last="yes")  # type: ignore[arg-type]
