import pytest
import torch
import torch.nn.functional as F

from unet_zoo.training.losses import WeightedCrossEntropy, weighted_cross_entropy


def _batch(n=2, c=2, h=5, w=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, h, w, generator=g)
    target = torch.randint(0, c, (n, h, w), generator=g)
    weight = torch.rand(n, h, w, generator=g) * 10
    return logits, target, weight


def test_unit_weights_equal_plain_cross_entropy():
    logits, target, _ = _batch()
    ours = weighted_cross_entropy(logits, target, torch.ones(target.shape))
    assert torch.allclose(ours, F.cross_entropy(logits, target))
    assert torch.allclose(weighted_cross_entropy(logits, target), ours)


def test_matches_explicit_softmax_formula_mean_over_pixels():
    logits, target, weight = _batch(c=3)
    log_p = torch.log_softmax(logits, dim=1).gather(1, target[:, None])[:, 0]
    expected = -(weight * log_p).sum() / target.numel()
    assert torch.allclose(weighted_cross_entropy(logits, target, weight), expected, atol=1e-6)
    assert torch.allclose(weighted_cross_entropy(logits, target, weight, "sum"), -(weight * log_p).sum(), atol=1e-5)
    assert weighted_cross_entropy(logits, target, weight, "none").shape == target.shape


def test_mean_is_independent_of_tile_size():
    logits, target, weight = _batch(h=4, w=4)
    tiled = weighted_cross_entropy(logits.repeat(1, 1, 2, 2), target.repeat(1, 2, 2), weight.repeat(1, 2, 2))
    assert torch.allclose(tiled, weighted_cross_entropy(logits, target, weight))


def test_zero_weight_pixels_do_not_contribute_to_gradient():
    logits, target, weight = _batch()
    weight[:, :2] = 0
    logits.requires_grad_(True)
    WeightedCrossEntropy()(logits, target, weight).backward()
    assert torch.all(logits.grad[:, :, :2] == 0)
    assert torch.any(logits.grad[:, :, 2:] != 0)


def test_bf16_logits_give_float32_loss():
    logits, target, weight = _batch()
    assert weighted_cross_entropy(logits.bfloat16(), target, weight).dtype == torch.float32


@pytest.mark.parametrize(
    "shape_t, dtype, shape_w, match",
    [
        ((2, 5, 6), torch.int64, None, "target must be"),
        ((2, 5, 7), torch.int32, None, "int64"),
        ((2, 5, 7), torch.int64, (2, 5, 6), "weight must be"),
    ],
)
def test_bad_input_is_explained(shape_t, dtype, shape_w, match):
    logits, _, _ = _batch()
    target = torch.zeros(shape_t, dtype=dtype)
    weight = None if shape_w is None else torch.ones(shape_w)
    with pytest.raises((ValueError, TypeError), match=match):
        weighted_cross_entropy(logits, target, weight)
