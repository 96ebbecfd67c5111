"""Overlap-tile inference: exact stitching for valid convolutions, blending, dtypes, TTA, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

import unet_zoo
from unet_zoo.inference.tiling import (
    TorchForward,
    _compact_tile,
    _legacy_single_tile,
    choose_tile,
    inference_settings,
    normalise_image,
    predict_stack,
    predict_tiled,
    tile_margin,
)
from unet_zoo.models.sizes import is_valid_input_size


class Pointwise(nn.Module):
    """A same-size 'U-Net' whose output at a pixel depends on that pixel only (1x1 convolution)."""

    in_channels, num_classes, padding, depth = 1, 2, 1, 4

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)

    def output_size(self, size: int) -> int | None:
        return size if size % 16 == 0 else None

    def forward(self, x):
        assert x.shape[-1] % 16 == 0 and x.shape[-2] % 16 == 0
        return self.conv(x)


@pytest.fixture(scope="module")
def valid_model():
    torch.manual_seed(0)
    return unet_zoo.create_model("original", base_channels=4).eval()


@pytest.fixture(scope="module")
def padded_model():
    torch.manual_seed(0)
    return unet_zoo.create_model("padded", base_channels=4).eval()


def _whole_pass(model, image: np.ndarray) -> np.ndarray:
    """One forward pass over the whole image, mirror-padded by 92 px top/left to a valid size."""
    height, width = image.shape

    def valid(side):
        while not is_valid_input_size(side):
            side += 1
        return side

    h, w = valid(height + 184), valid(width + 184)
    padded = np.pad(image, ((92, h - height - 92), (92, w - width - 92)), mode="reflect")
    with torch.no_grad():
        probs = torch.softmax(model(torch.from_numpy(padded)[None, None]), dim=1)[0].numpy()
    return probs[:, :height, :width]


@pytest.mark.parametrize("tile", [204, 220, None])
def test_valid_conv_stitching_equals_one_pass(valid_model, rng, tile):
    image = rng.random((70, 45), dtype=np.float32)  # non-square, several tiles for tile 204
    tiled = predict_tiled(valid_model, image, tile=tile, batch_size=3)
    assert tiled.shape == (2, 70, 45) and tiled.dtype == np.float32
    np.testing.assert_allclose(tiled, _whole_pass(valid_model, image), atol=1e-5)


def test_blending_is_exact_for_a_pointwise_model(rng):
    model = Pointwise()
    image = rng.random((70, 45), dtype=np.float32)
    tiled = predict_tiled(model, image, tile=32, batch_size=5)  # many overlapping tiles
    with torch.no_grad():
        direct = torch.softmax(model.conv(torch.from_numpy(image)[None, None]), 1)[0].numpy()
    np.testing.assert_allclose(tiled, direct, atol=1e-5)
    # a pointwise model commutes with rotations and flips: TTA changes nothing
    np.testing.assert_allclose(predict_tiled(model, image, tile=32, tta=True), direct, atol=1e-5)


def test_padded_model_small_and_non_square(padded_model, rng):
    for shape in [(5, 7), (40, 100), (33, 17)]:
        image = rng.random(shape, dtype=np.float32)
        probs = predict_tiled(padded_model, image, tile=32)
        assert probs.shape == (2, *shape)
        np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)


def test_single_tile_equals_one_pass_over_mirror_padded_image(padded_model, rng):
    image = rng.random((32, 32), dtype=np.float32)
    tiled = predict_tiled(padded_model, image, tile=48)  # 48 // 8 = 6 px mirrored margin: one tile
    padded = np.pad(image, ((6, 10), (6, 10)), mode="reflect")
    with torch.no_grad():
        whole = torch.softmax(padded_model(torch.from_numpy(padded)[None, None]), 1)[0, :, 6:38, 6:38].numpy()
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_dtypes_are_normalised(padded_model, rng):
    image8 = rng.integers(0, 256, (32, 48), dtype=np.uint8)
    as_float = predict_tiled(padded_model, image8.astype(np.float32) / 255)
    np.testing.assert_allclose(predict_tiled(padded_model, image8), as_float, atol=1e-6)
    image16 = image8.astype(np.uint16) * 257  # 255 * 257 = 65535
    np.testing.assert_allclose(predict_tiled(padded_model, image16), as_float, atol=1e-6)
    assert normalise_image(np.array([[0, 65535]], np.uint16)).tolist() == [[0.0, 1.0]]
    with pytest.raises(TypeError, match="normalise"):
        normalise_image(np.zeros((4, 4), np.int32))
    doubled = predict_tiled(padded_model, image8, normalise=lambda x: x / 510.0)
    assert not np.allclose(doubled, as_float)


def test_tta_averages_eight_views(valid_model, rng):
    image = rng.random((30, 50), dtype=np.float32)
    plain = predict_tiled(valid_model, image)
    tta = predict_tiled(valid_model, image, tta=True)
    assert tta.shape == plain.shape
    np.testing.assert_allclose(tta.sum(0), 1.0, atol=1e-5)
    views = []
    for flip in (False, True):
        for k in range(4):
            view = np.rot90(image[:, ::-1] if flip else image, k)
            p = np.rot90(predict_tiled(valid_model, np.ascontiguousarray(view)), -k, axes=(1, 2))
            views.append(p[..., ::-1] if flip else p)
    np.testing.assert_allclose(tta, np.mean(views, axis=0), atol=1e-5)


def test_stack_and_mode_restored(padded_model, rng):
    padded_model.train()
    stack = rng.integers(0, 256, (3, 20, 24), dtype=np.uint8)
    seen = []
    probs = predict_stack(padded_model, stack, progress=seen.append)
    assert probs.shape == (3, 2, 20, 24) and seen == [0, 1, 2]
    assert padded_model.training
    padded_model.eval()
    np.testing.assert_allclose(probs[1], predict_tiled(padded_model, stack[1]), atol=1e-6)


@pytest.mark.parametrize("tta", [False, True])
def test_progress_counts_every_tile_and_can_stop(valid_model, rng, tta):
    image = rng.random((100, 90), dtype=np.float32)
    calls = []
    plain = predict_tiled(valid_model, image, tile=220, batch_size=3, tta=tta)
    probs = predict_tiled(valid_model, image, tile=220, batch_size=3, tta=tta, progress=lambda *a: calls.append(a))
    np.testing.assert_array_equal(probs, plain)  # reporting changes nothing
    per_view = 12  # 100 x 90 px in 32-px steps of output (tile 220 -> 36 px): 4 x 3 tiles, in batches of 3
    total = per_view * (8 if tta else 1)
    assert calls == [(done, total) for done in range(3, total + 1, 3)]

    forwards = []

    class Stop(Exception):
        pass

    def stop_after_first(done: int, total: int) -> None:
        raise Stop

    def forward(tiles: np.ndarray) -> np.ndarray:
        forwards.append(len(tiles))
        with torch.no_grad():
            return torch.softmax(valid_model(torch.from_numpy(tiles)), dim=1).numpy()

    with pytest.raises(Stop):
        predict_tiled(valid_model, image, tile=220, batch_size=1, tta=tta, forward=forward, progress=stop_after_first)
    assert forwards == [1]  # stopped at the next tile


def test_progress_of_blended_tiles(padded_model, rng):
    calls = []
    predict_tiled(
        padded_model, rng.random((40, 70), dtype=np.float32), tile=32, batch_size=2, progress=lambda *a: calls.append(a)
    )
    total = calls[-1][1]
    assert total > 2 and calls == [(min(done, total), total) for done in range(2, total + 2, 2)]


def test_timm_model(rng):
    model = unet_zoo.create_model("timm-resnet18")
    probs = predict_tiled(model, rng.random((40, 70), dtype=np.float32), tile=64)
    assert probs.shape == (2, 40, 70)


def test_choose_tile(valid_model, padded_model):
    assert choose_tile(valid_model, 2000, 2000) == 572  # the registry's default tile
    assert valid_model.output_size(choose_tile(valid_model, 30, 20)) >= 30
    assert choose_tile(valid_model, 512, 512) == 700  # 700 -> 516: one tile for an ISBI slice
    assert choose_tile(padded_model, 1000, 300) == 512
    assert choose_tile(padded_model, 40, 20) == 64  # one tile: 40 px + 2 x 8 px mirrored margin
    assert choose_tile(padded_model, 512, 512) == 592  # 512 px + 2 x 38 px (two strides + 6) of mirrored context


def test_a_tile_larger_than_the_image_needs_is_reduced(padded_model, valid_model):
    """A huge --tile on a small image would only pad it with mirrored pixels and take gigabytes."""
    assert choose_tile(padded_model, 64, 64, 8000) == 512  # the default tile
    assert choose_tile(padded_model, 512, 512, 4000) == 688  # the one tile holding the slice with tile // 8 context
    assert choose_tile(padded_model, 512, 512, 688) == 688 and choose_tile(padded_model, 64, 64, 256) == 256
    assert choose_tile(valid_model, 64, 64, 7996) == 572


def test_one_tile_keeps_two_strides_of_context_on_the_former_pooling_grid(padded_model):
    stride = 2**padded_model.depth
    for side in (100, 256, 300, 512, 576, 700):
        tile = _compact_tile(padded_model, side, side)
        margin = tile_margin(padded_model, tile, side, side)
        legacy = _legacy_single_tile(stride, side)
        assert tile <= legacy and margin >= min(2 * stride, legacy // 8)
        assert margin % stride == (legacy // 8) % stride  # the image meets the pooling grid as before
        assert (tile - side - margin) % stride == (legacy - side - legacy // 8) % stride  # and so do flipped views
    assert tile_margin(padded_model, 512, 1000, 1000) == 64  # several tiles: an eighth of the tile
    assert tile_margin(padded_model, 688, 512, 512) == 86  # a tile asked for: as before


def test_a_slice_is_one_pass_over_the_slice_with_its_mirrored_context(padded_model, rng):
    """The default geometry of a 512 px slice: one 592 px tile, the slice 38 px from its top-left corner."""
    image = rng.random((512, 512), dtype=np.float32)
    padded = np.pad(image, ((38, 42), (38, 42)), mode="reflect")
    with torch.no_grad():
        whole = torch.softmax(padded_model(torch.from_numpy(padded)[None, None]), 1)[0, :, 38:550, 38:550].numpy()
    np.testing.assert_allclose(predict_tiled(padded_model, image), whole, atol=1e-5)


def test_one_tile_computes_only_the_slices_window_and_plain_forwards_get_whole_tiles(padded_model, rng):
    image = rng.random((100, 90), dtype=np.float32)
    calls: list[tuple[tuple[int, ...], object]] = []
    torch_run = TorchForward(padded_model.eval(), torch.device("cpu"), inference_settings("cpu", precision="fp32"))

    def windowed(tiles, margins=None):
        calls.append((tiles.shape, margins))
        return torch_run(tiles, margins=margins)

    windowed.takes_margins = True  # type: ignore[attr-defined]

    def plain(tiles):
        calls.append((tiles.shape, None))
        return torch_run(tiles)

    first = predict_tiled(padded_model, image, forward=windowed)
    (shape, margins), *rest = calls
    tile = shape[-1]
    assert not rest and margins is not None and margins[0] + margins[1] == tile - 100 and margins[2] + margins[3] == tile - 90
    calls.clear()
    second = predict_tiled(padded_model, image, forward=plain)
    assert [m for _, m in calls] == [None]
    np.testing.assert_allclose(first, second, atol=1e-6)
    calls.clear()
    predict_tiled(padded_model, rng.random((300, 300), dtype=np.float32), tile=128, forward=windowed)
    assert len(calls) > 1 and all(m is None for _, m in calls)  # blended tiles: their margins are used


def test_bad_input_says_what_to_do(valid_model, padded_model):
    with pytest.raises(ValueError, match="nearest usable tiles: 188 or 204"):
        predict_tiled(valid_model, np.zeros((20, 20), np.float32), tile=200)
    with pytest.raises(ValueError, match="at least 16"):
        predict_tiled(valid_model, np.zeros((20, 20), np.float32), tile=188)
    with pytest.raises(ValueError, match="predict_stack"):
        predict_tiled(padded_model, np.zeros((3, 20, 20), np.float32))
    with pytest.raises(ValueError, match="batch_size"):
        predict_tiled(padded_model, np.zeros((20, 20), np.float32), batch_size=0)


def test_float_images_outside_unit_range_warn(padded_model, rng):
    import warnings

    raw = rng.random((20, 24)).astype(np.float32) * 255  # e.g. a float TIFF of 8-bit intensities
    with pytest.warns(UserWarning, match=r"values in \[.*\] is used as is.*\[0, 1\].*normalise="):
        predict_tiled(padded_model, raw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predict_tiled(padded_model, raw / 255)  # in range: silent
        predict_tiled(padded_model, raw, normalise=lambda x: x / 255)  # the suggested fix


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_refused_with_a_count_and_a_fix(padded_model, rng, bad):
    image = rng.random((20, 24)).astype(np.float32)
    image[3, 4:7] = bad
    with pytest.raises(ValueError, match=r"3 non-finite pixel value\(s\).*np\.nan_to_num"):
        predict_tiled(padded_model, image)
    with pytest.raises(ValueError, match="3 non-finite"):
        predict_stack(padded_model, image[None])
    fixed = predict_tiled(padded_model, np.nan_to_num(image, nan=0.0, posinf=1.0, neginf=0.0))
    assert np.isfinite(fixed).all()


def test_non_finite_values_made_by_normalise_are_refused(padded_model):
    image = np.zeros((20, 24), np.uint8)
    with pytest.raises(ValueError, match=r"480 non-finite pixel value\(s\) after normalise \(480 NaN"):
        predict_tiled(padded_model, image, normalise=lambda x: np.full(x.shape, np.nan))
    with pytest.raises(ValueError, match="1 NaN, 1 infinite"):
        normalise_image(np.array([[0.5, np.nan], [np.inf, 0.2]]), normalise="none")


# --- precision: fp32, bf16 autocast, and what "auto" picks ------------------------------------------


def test_precision_auto_runs_the_forced_torch_fp32_path():
    """conftest forces the torch float32 path ($UNET_ZOO_INFERENCE_PATH), whatever the CPU measures."""
    net = unet_zoo.create_model("small", base_channels=4, depth=2).eval()
    image = np.random.default_rng(0).random((48, 40), dtype=np.float32)
    fp32 = predict_tiled(net, image, device="cpu")
    np.testing.assert_array_equal(predict_tiled(net, image, device="cpu", precision="auto"), fp32)
    np.testing.assert_array_equal(predict_tiled(net, image, device="cpu", precision="fp32"), fp32)


def test_bf16_precision_is_close_to_fp32_and_auto_uses_it_when_forced(monkeypatch):
    from unet_zoo.runtime import measured

    net = unet_zoo.create_model("small", base_channels=4, depth=2).eval()
    image = np.random.default_rng(0).random((48, 40), dtype=np.float32)
    fp32 = predict_tiled(net, image, device="cpu", precision="fp32")
    bf16 = predict_tiled(net, image, device="cpu", precision="bf16")
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape
    assert 0 < np.abs(bf16 - fp32).max() < 0.05  # bf16 ran (not bit-identical), and only rounded
    monkeypatch.setenv(measured.INFERENCE_PATH_ENV, "torch-bf16")
    np.testing.assert_array_equal(predict_tiled(net, image, device="cpu", precision="auto"), bf16)
    np.testing.assert_array_equal(predict_tiled(net, image, device="cpu", amp=True), bf16)  # amp=True is "auto"


CARD = Path(__file__).resolve().parents[2] / "cards" / "isbi-small"


@pytest.mark.skipif(not (CARD / "model.safetensors").is_file(), reason="needs the isbi-small checkpoint in cards/")
@pytest.mark.slow
def test_bf16_keeps_isbi_small_within_the_pixel_error_budget_on_a_real_slice(isbi_dir):
    """One held-out 512x512 slice, no TTA: bf16 autocast changes P(cell) by rounding only (bf16 runs emulated
    on CPUs without AVX512-BF16 / AMX, so this is kept to one slice)."""
    from unet_zoo.experiments.isbi2012.data import load_isbi

    data = load_isbi(isbi_dir)
    image, label = data.images[24], data.labels[24] > 0
    net = unet_zoo.from_pretrained(CARD, device="cpu")
    fp32 = predict_tiled(net, image, device="cpu", batch_size=1, precision="fp32")[1]
    bf16 = predict_tiled(net, image, device="cpu", batch_size=1, precision="bf16")[1]
    assert np.abs(bf16 - fp32).mean() < 0.005 and np.abs(bf16 - fp32).max() < 0.25
    pixel_error = {name: float(np.mean((p > 0.5) != label)) for name, p in (("fp32", fp32), ("bf16", bf16))}
    assert abs(pixel_error["bf16"] - pixel_error["fp32"]) <= 0.002, pixel_error


def test_published_checkpoint_predicts_a_slice_in_the_smaller_tile_as_in_the_former_one(rng):
    """isbi-small on a 512 px slice: the default 592 px tile gives what the 688 px tile of earlier releases gave
    (tile=688 asks for that tile and its tile // 8 = 86 px of context)."""
    model = unet_zoo.from_pretrained("isbi-small")
    image = ndimage.gaussian_filter(rng.random((512, 512)), 2).astype(np.float32)
    image = (image - image.min()) / (image.max() - image.min())
    assert choose_tile(model, 512, 512) == 592
    new = predict_tiled(model, image, precision="fp32")
    old = predict_tiled(model, image, tile=688, precision="fp32")
    np.testing.assert_allclose(new, old, atol=1e-5)
