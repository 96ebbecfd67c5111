"""The precision "auto" trains in: measured once per machine and step shape, cached, forced by flag or variable."""

from __future__ import annotations

import pytest
import torch

from unet_zoo.runtime import measured
from unet_zoo.training import precision as training_precision


def test_training_precision_is_measured_once_and_cached(monkeypatch):
    monkeypatch.delenv(measured.TRAINING_PRECISION_ENV, raising=False)
    monkeypatch.setattr(training_precision, "cpu_bf16_hardware", lambda: "avx512_bf16")
    calls = []

    def measure(name, args, tile, batch, device="cpu", **_):
        calls.append((name, tile, batch))
        return {"fp32": 1.0, "bf16": 0.4}

    monkeypatch.setattr(training_precision, "measure_training_precisions", measure)
    choice = training_precision.choose_training_precision("small", {"base_channels": 4}, 64, 2)
    assert (choice.precision, choice.how, choice.timings) == ("bf16", "measured", {"fp32": 1.0, "bf16": 0.4})
    assert training_precision.choose_training_precision("small", {"base_channels": 4}, 64, 2).how == "cached"
    assert len(calls) == 1
    training_precision.choose_training_precision("small", {"base_channels": 4}, 128, 2)  # another step shape
    assert len(calls) == 2
    assert training_precision.choose_training_precision("small", {}, 64, 2, precision="fp32").how == "forced"
    monkeypatch.setenv(measured.TRAINING_PRECISION_ENV, "fp32")
    assert training_precision.choose_training_precision("small", {}, 64, 2).how == "environment"


def test_training_keeps_fp32_where_bf16_is_slower_or_emulated(monkeypatch):
    monkeypatch.delenv(measured.TRAINING_PRECISION_ENV, raising=False)
    assert measured.faster_training_precision({"fp32": 1.0, "bf16": 1.5}) == "fp32"
    assert measured.faster_training_precision({"fp32": 1.0, "bf16": None}) == "fp32"
    monkeypatch.setattr(training_precision, "cpu_bf16_hardware", lambda: None)
    monkeypatch.setattr(
        training_precision, "measure_training_precisions", lambda *a, **k: pytest.fail("measured on a CPU without bf16")
    )
    assert training_precision.choose_training_precision("small", {}, 64, 2).precision == "fp32"


@pytest.mark.slow
@pytest.mark.measured_auto
def test_real_training_measurement_is_quick_and_leaves_the_random_stream():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    timings = training_precision.measure_training_precisions("small", {"base_channels": 4, "depth": 2}, 32, 1, budget_s=0.5)
    assert torch.equal(torch.rand(3), expected)
    assert set(timings) == {"fp32", "bf16"} and all(s is not None and s > 0 for s in timings.values())
