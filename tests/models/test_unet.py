import pytest
import torch

import unet_zoo
from unet_zoo.models.provenance import provenance_of
from unet_zoo.models.unet import UNet


def test_original_matches_paper_parameter_count_and_sizes():
    model = unet_zoo.create_model("original")
    assert sum(p.numel() for p in model.parameters()) == 31_030_658
    assert model.output_size(572) == 388
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 188, 188)).shape == (1, 2, 4, 4)


def test_original_structure_is_fig1():
    model = unet_zoo.create_model("original")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    ups = [m for m in model.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs[:10:2]] == [64, 128, 256, 512, 1024]
    assert all(c.padding == (0, 0) for c in convs if c.kernel_size == (3, 3))
    assert [(u.in_channels, u.out_channels, u.kernel_size, u.stride) for u in ups] == [
        (1024, 512, (2, 2), (2, 2)),
        (512, 256, (2, 2), (2, 2)),
        (256, 128, (2, 2), (2, 2)),
        (128, 64, (2, 2), (2, 2)),
    ]
    assert convs[-1].kernel_size == (1, 1) and convs[-1].out_channels == 2
    assert isinstance(model.dropout, torch.nn.Dropout2d) and model.dropout.p == 0.5


def test_small_parameter_count():
    model = unet_zoo.create_model("small")
    assert sum(p.numel() for p in model.parameters()) == 7_759_554


@pytest.mark.parametrize("name", ["padded", "small", "padded-bilinear", "padded-bn"])
def test_padded_variants_keep_size(name):
    model = unet_zoo.create_model(name, base_channels=4).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 48, 32)).shape == (2, 2, 48, 32)


def test_overrides_change_channels():
    model = unet_zoo.create_model("small", in_channels=3, num_classes=5, base_channels=4).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 5, 32, 32)
    assert provenance_of(model).args["in_channels"] == 3 and provenance_of(model).architecture == "small"


def test_valid_crop_matches_whole_image_pass():
    """Output pixel (i, j) of a valid U-Net depends only on its 185x185 window: translate and compare."""
    torch.manual_seed(0)
    model = unet_zoo.create_model("original", base_channels=2).eval()
    x = torch.randn(1, 1, 204, 204)
    with torch.no_grad():
        big = model(x)  # 20x20
        small = model(x[..., 16:, 16:])  # 188 -> 4x4, shifted by 16 pixels
    assert big.shape[-1] == 20
    torch.testing.assert_close(small, big[..., 16:20, 16:20], atol=1e-5, rtol=1e-4)


def test_unusable_size_names_nearest():
    model = unet_zoo.create_model("original", base_channels=2)
    with pytest.raises(ValueError, match="508 or 524"):
        model(torch.zeros(1, 1, 512, 512))
    with pytest.raises(ValueError, match="width"):
        model(torch.zeros(1, 1, 188, 190))


def test_bad_inputs_give_clear_errors():
    model = unet_zoo.create_model("small", base_channels=4)
    with pytest.raises(ValueError, match="1 input channel"):
        model(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"4-D.*x\[None\]"):
        model(torch.zeros(1, 32, 32))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(1, 1, 32, 32, dtype=torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model([[0.0]])


def test_invalid_config_raises():
    with pytest.raises(ValueError, match="padding"):
        UNet(padding=2)
    with pytest.raises(ValueError, match="init"):
        UNet(base_channels=2, init="xavier")


def test_timm_encoder_unet():
    pytest.importorskip("timm")
    model = unet_zoo.create_model("timm-resnet18").eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 64, 96)).shape == (1, 2, 64, 96)
    with pytest.raises(ValueError, match="multiple of 32"):
        model(torch.zeros(1, 1, 60, 64))


def test_backward_runs_for_every_unet_variant():
    for name in ["original", "padded", "small"]:
        model = unet_zoo.create_model(name, base_channels=2)
        side = 188 if name == "original" else 32
        model(torch.randn(1, 1, side, side)).sum().backward()
        assert all(p.grad is not None for p in model.parameters())


def expected_unet_params(
    in_channels=1, num_classes=2, base_channels=64, depth=4, padding=0, up_mode="transpose", norm="none", **_
) -> int:
    """Parameter count of Fig. 1 generalised, by hand: 3x3 convs (+ bias, or + norm scale and shift),
    2x2 up-convolutions or 1x1 convs after bilinear up-sampling, the 1x1 head."""

    def conv3(cin, cout):
        return 9 * cin * cout + (cout if norm == "none" else 2 * cout)

    def double(cin, cout):
        return conv3(cin, cout) + conv3(cout, cout)

    widths = [base_channels * 2**level for level in range(depth + 1)]
    total = sum(double(ci, co) for ci, co in zip([in_channels, *widths[:-1]], widths))
    for deep, half in zip(widths[1:], widths[:-1]):
        total += (4 if up_mode == "transpose" else 1) * deep * half + half  # up-sampling, halving channels
        total += double(2 * half, half)  # after concatenating the skip
    return total + widths[0] * num_classes + num_classes


@pytest.mark.parametrize("name", [n for n in unet_zoo.list_models() if not n.startswith("timm-")])
def test_parameter_count_of_every_unet_variant(name):
    with torch.device("meta"):  # no memory for the weights
        model = unet_zoo.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == expected_unet_params(**provenance_of(model).args)


def test_paper_counts_by_hand():
    assert expected_unet_params() == 31_030_658
    assert expected_unet_params(base_channels=32, padding=1) == 7_759_554


@pytest.mark.parametrize("name", unet_zoo.list_models("timm-*"))
def test_every_timm_variant_shapes_and_overrides(name):
    pytest.importorskip("timm")
    model = unet_zoo.create_model(name, in_channels=3, num_classes=5).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 5, 64, 64)
    with pytest.raises(ValueError, match="3 input channel"):
        model(torch.zeros(1, 1, 64, 64))
    with pytest.raises(ValueError, match=r"nearest usable sizes: 32\. "):  # no "0 or 32"
        model(torch.zeros(1, 3, 20, 64))
