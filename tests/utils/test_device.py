"""unet_zoo.utils.device.resolve_device: the one place that picks the device."""

from __future__ import annotations

import pytest
import torch

from unet_zoo.runtime import settings as runtime
from unet_zoo.training import distributed
from unet_zoo.utils import timing
from unet_zoo.utils.device import resolve_device


def test_nothing_means_the_gpu_when_there_is_one():
    expected = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None) == resolve_device("") == expected
    assert resolve_device("cpu") == resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_bad_devices_are_clear_errors():
    with pytest.raises(ValueError, match="unknown device 'gpu-please'; use 'cpu', 'cuda' or 'cuda:N'"):
        resolve_device("gpu-please")
    with pytest.raises(RuntimeError, match="CUDA device|CUDA is not available"):
        resolve_device(f"cuda:{torch.cuda.device_count() + 3}")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available on this machine; use --device cpu"):
            resolve_device("cuda")


def test_training_runtime_and_timers_decide_devices_the_same_way():
    assert distributed.default_device("cpu") == torch.device("cpu")
    assert runtime.is_cuda("cpu") is False and runtime.is_cuda(None) is torch.cuda.is_available()
    assert timing.Timer("cpu").device == torch.device("cpu")
    for decide in (distributed.default_device, runtime.is_cuda, timing.Timer):
        with pytest.raises(ValueError, match="unknown device 'gpu-please'"):
            decide("gpu-please")
