"""Tests of unet_zoo.utils.timing: FLOP counting against analytic counts, the Timer, the matmul rate and the profiler."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import unet_zoo
from unet_zoo.utils.timing import Timer, Timing, count_forward_flops, count_train_flops, matmul_tflops, profile_table


def conv_flops(n: int, c_in: int, c_out: int, out_h: int, out_w: int, k: int) -> int:
    """Analytic FLOPs of one forward convolution: a multiply and an add per weight per output pixel."""
    return 2 * n * c_out * out_h * out_w * c_in * k * k


def two_conv_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 5, 3, padding=1))


def test_forward_flops_match_analytic_count():
    net = two_conv_net()
    # (2, 3, 10, 10) -> conv1 (valid) -> (2, 4, 8, 8) -> conv2 (same) -> (2, 5, 8, 8)
    expected = conv_flops(2, 3, 4, 8, 8, 3) + conv_flops(2, 4, 5, 8, 8, 3)
    assert count_forward_flops(net, (2, 3, 10, 10)) == expected


def test_train_flops_are_forward_plus_gradients():
    net = two_conv_net()
    f1, f2 = conv_flops(2, 3, 4, 8, 8, 3), conv_flops(2, 4, 5, 8, 8, 3)
    # First conv: forward + weight gradient (the input needs no gradient).
    # Second conv: forward + weight gradient + input gradient.
    assert count_train_flops(net, (2, 3, 10, 10)) == 2 * f1 + 3 * f2


def test_flop_count_of_unet_scales_with_batch_and_leaves_model_untouched():
    model = unet_zoo.create_model("small", base_channels=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    one = count_train_flops(model, (1, 1, 32, 32))
    two = count_train_flops(model, (2, 1, 32, 32))
    assert one > 0 and two == 2 * one
    assert next(model.parameters()).device.type == "cpu"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_flop_count_rejects_non_4d_shape():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        count_forward_flops(two_conv_net(), (3, 10, 10))


def test_timer_counts_warmup_and_repeats_and_takes_median():
    calls = []
    timing = Timer("cpu", warmup=2, repeats=3)(lambda: calls.append(1))
    assert len(calls) == 5
    assert len(timing.times_s) == 3 and timing.warmup == 2
    t = Timing(times_s=(3.0, 1.0, 2.0), warmup=0)
    assert (t.median_s, t.min_s, t.max_s) == (2.0, 1.0, 3.0)
    assert t.as_dict()["repeats"] == 3


def test_timer_times_each_call_between_two_clock_readings(monkeypatch):
    """A fake clock that the timed call advances by 0.25 s: the Timer reports exactly that, and no warm-up call."""
    from unet_zoo.utils import timing as timing_module

    now = [100.0]
    monkeypatch.setattr(timing_module.time, "perf_counter", lambda: now[0])

    def call():
        now[0] += 0.25

    timing = Timer("cpu", warmup=1, repeats=3)(call)
    assert timing.times_s == (0.25, 0.25, 0.25) and now[0] == 101.0


def test_timer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="repeats >= 1"):
        Timer("cpu", repeats=0)


def test_matmul_tflops_is_positive_and_rejects_bad_size():
    rate = matmul_tflops("cpu", torch.float32, n=128, repeats=2, warmup=1)
    assert 0 < rate < 1000
    with pytest.raises(ValueError, match="n must be >= 1"):
        matmul_tflops("cpu", n=0)


def test_profile_table_names_convolution():
    net = two_conv_net()
    x = torch.randn(1, 3, 16, 16)
    table = profile_table(lambda: net(x), "cpu", steps=1, warmup=0)
    assert "conv" in table.lower()
