"""unet_zoo.data.augment (torch) against unet_zoo.data._augment_reference (scipy) and the TileSampler contract.

Tolerances for the SAME displacement field (measured on 64 x 80 tiles, displacements up to ~19 px,
reads reaching beyond the border): bilinear image and weight map agree to < 1e-5 (float32 rounding),
so the test allows 1e-4. Nearest labels agree exactly except at exact .5 ties (none seen); allowed
0.1 % of pixels. Bicubic images differ by kernel: torch uses cubic convolution (a = -0.75), scipy the
cubic B-spline; on a smooth image (Gaussian-blurred noise, sigma 3 px, range [0, 1]) the measured
difference was max 0.007, mean 0.0014: the test allows max 0.02, mean 0.004.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from unet_zoo.data._augment_reference import elastic_deform_reference, random_displacement_reference, warp_reference
from unet_zoo.data.augment import AugmentConfig, TileSampler, elastic_deform, random_displacement

H, W = 64, 80


@pytest.fixture
def tile(rng):
    smooth = ndimage.gaussian_filter(rng.random((H, W)), 3)
    smooth = ((smooth - smooth.min()) / np.ptp(smooth)).astype(np.float32)
    label = (ndimage.gaussian_filter(rng.random((H, W)), 2) > 0.5).astype(np.uint8)
    weight = (rng.random((H, W)) * 10).astype(np.float32)
    return smooth, label, weight


def as_batch(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a)[None, None]


def test_random_displacement_shape_and_scale():
    g = torch.Generator().manual_seed(0)
    d = random_displacement(64, 33, 45, grid=3, sigma=10.0, generator=g)
    assert d.shape == (64, 2, 33, 45) and d.dtype == torch.float32
    # the corner pixels are coarse nodes: exactly N(0, 10^2) draws
    corners = d[:, :, [0, 0, -1, -1], [0, -1, 0, -1]].flatten()
    assert 8.0 < corners.std().item() < 12.0
    assert random_displacement(2, 10, 10, sigma=0.0, generator=g).abs().max() == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_torch_matches_scipy_same_field(tile, seed):
    image, label, weight = tile
    field = random_displacement(1, H, W, 3, 10.0, torch.Generator().manual_seed(seed))
    assert field.abs().max() > 5  # reads do reach beyond the border
    for mode in ("bilinear", "bicubic"):
        got_i, got_l, got_w = elastic_deform(
            as_batch(image), as_batch(label), as_batch(weight), displacement=field, image_mode=mode
        )
        ref_i, ref_l, ref_w = elastic_deform_reference(image, label, weight, field[0].numpy(), image_mode=mode)
        diff = np.abs(got_i[0, 0].numpy() - ref_i)
        if mode == "bilinear":
            assert diff.max() < 1e-4
        else:
            assert diff.max() < 0.02 and diff.mean() < 0.004
        assert (got_l[0, 0].numpy() != ref_l).mean() <= 1e-3
        np.testing.assert_allclose(got_w[0, 0].numpy(), ref_w, atol=1e-4)


def test_reference_field_feeds_torch(tile):
    """The scipy-generated field can drive the torch path too (same conventions)."""
    image, label, weight = tile
    field = random_displacement_reference(H, W, 3, 10.0, np.random.default_rng(5))
    got = elastic_deform(
        as_batch(image), None, as_batch(weight), displacement=torch.from_numpy(field)[None], image_mode="bilinear"
    )
    np.testing.assert_allclose(got[0][0, 0].numpy(), warp_reference(image, field, "bilinear"), atol=1e-4)
    assert got[1] is None


def test_sigma_zero_is_identity(tile):
    image, label, weight = (as_batch(a) for a in tile)
    out = elastic_deform(image, label, weight, sigma=0.0, generator=torch.Generator().manual_seed(0))
    assert out[0] is image and out[1] is label and out[2] is weight
    # a zero field resamples at the pixel centres: values back up to float rounding
    zero = torch.zeros(1, 2, H, W)
    for mode in ("bilinear", "bicubic"):
        i2, l2, w2 = elastic_deform(image, label, weight, displacement=zero, image_mode=mode)
        torch.testing.assert_close(i2, image, atol=1e-5, rtol=0)
        assert torch.equal(l2, label)


def test_labels_stay_labels():
    g = torch.Generator().manual_seed(0)
    label = (torch.rand(4, 1, 48, 48, generator=g) < 0.7).to(torch.uint8)
    instances = torch.randint(0, 50, (4, 1, 48, 48), generator=g)
    image = torch.rand(4, 1, 48, 48, generator=g)
    _, out, _ = elastic_deform(image, label, None, generator=g)
    assert out.dtype == torch.uint8 and set(out.unique().tolist()) <= {0, 1}
    assert not torch.equal(out, label)
    _, out_i, _ = elastic_deform(image, instances, None, generator=g)
    assert out_i.dtype == torch.int64 and set(out_i.unique().tolist()) <= set(instances.unique().tolist())


def test_reproducible_with_generator(tile):
    batch = [as_batch(a).repeat(3, 1, 1, 1) for a in tile]
    a = elastic_deform(*batch, generator=torch.Generator().manual_seed(42))
    b = elastic_deform(*batch, generator=torch.Generator().manual_seed(42))
    c = elastic_deform(*batch, generator=torch.Generator().manual_seed(43))
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert not torch.equal(a[0], c[0])
    assert not torch.equal(a[0][0], a[0][1])  # each sample of the batch gets its own field


def test_bad_inputs(tile):
    image = as_batch(tile[0])
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        elastic_deform(image[0], None, None)
    with pytest.raises(ValueError, match="does not match"):
        elastic_deform(image, torch.zeros(1, 1, H + 1, W), None)
    with pytest.raises(ValueError, match="displacement"):
        elastic_deform(image, None, None, displacement=torch.zeros(1, 2, H, W + 1))
    with pytest.raises(ValueError, match="image_mode"):
        elastic_deform(image, None, None, image_mode="lanczos")
    # a CPU generator for tensors elsewhere (meta stands in for CUDA here): say which generator to make
    with pytest.raises(ValueError, match=r"generator is on cpu but the image on meta.*torch.Generator\(device='meta'\)"):
        elastic_deform(torch.zeros(1, 1, H, W, device="meta"), None, None, generator=torch.Generator())


# --- AugmentConfig -----------------------------------------------------------------------------------


def test_config_from_plain_dict_round_trip():
    cfg = AugmentConfig(**{"elastic_sigma": 5, "brightness": [-0.2, 0.2], "rotate": False})
    assert cfg.brightness == (-0.2, 0.2) and cfg.elastic_grid == 3 and not cfg.rotate
    assert AugmentConfig(**cfg.as_dict()) == cfg
    with pytest.raises(ValueError, match="unknown augmentation option.*valid:"):
        AugmentConfig.from_dict({"elastic": 1})
    with pytest.raises(ValueError, match="low"):
        AugmentConfig(contrast=(1.2, 0.8))
    with pytest.raises(ValueError, match="gamma"):
        AugmentConfig(gamma=(0.0, 1.0))


# --- TileSampler --------------------------------------------------------------------------------------


@pytest.fixture
def stack(rng):
    images = rng.integers(0, 256, (3, 40, 48), dtype=np.uint8)
    labels = (rng.random((3, 40, 48)) < 0.7).astype(np.uint8)
    weights = rng.random((3, 40, 48)).astype(np.float32) * 5
    return images, labels, weights


def test_sampler_shapes_and_ranges(stack):
    sampler = TileSampler(*stack, in_tile=36, out_tile=20, augment=AugmentConfig())
    x, y, w = sampler.sample(5, torch.Generator().manual_seed(0))
    assert x.shape == (5, 1, 36, 36) and x.dtype == torch.float32
    assert y.shape == (5, 20, 20) and y.dtype == torch.int64
    assert w.shape == (5, 20, 20) and w.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1
    assert set(y.unique().tolist()) <= {0, 1}
    assert 0 <= w.min() and w.max() <= 5


@pytest.mark.parametrize("in_tile, out_tile", [(36, 20), (32, 32), (64, 60)])
def test_sampler_centre_alignment_without_augmentation(stack, in_tile, out_tile):
    """With augmentation off, x is a crop of the mirrored slice and y, w the labels/weights under its centre."""
    images, labels, weights = stack
    sampler = TileSampler(images, labels, weights, in_tile, out_tile, AugmentConfig.off())
    x, y, w = sampler.sample(16, torch.Generator().manual_seed(1))
    p = sampler.last_params
    pad = 2 * in_tile
    mirror = lambda a: np.pad(a, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")  # noqa: E731
    pi, pl, pw = mirror(images), mirror(labels), mirror(weights)
    m = (in_tile - out_tile) // 2
    for k in range(16):
        s, top, left = int(p.slice[k]), int(p.top[k]) + pad, int(p.left[k]) + pad
        np.testing.assert_allclose(x[k, 0].numpy(), pi[s, top : top + in_tile, left : left + in_tile] / 255, atol=1e-4)
        crop = (s, slice(top + m, top + m + out_tile), slice(left + m, left + m + out_tile))
        np.testing.assert_array_equal(y[k].numpy(), pl[crop])
        np.testing.assert_allclose(w[k].numpy(), pw[crop], atol=1e-4)
        # output tiles stay inside the slice (shift=0) or, when larger than it, are centred on it
        for start, size in ((top - pad + m, images.shape[1]), (left - pad + m, images.shape[2])):
            if out_tile <= size:
                assert 0 <= start <= size - out_tile
            else:
                assert start == (size - out_tile) // 2
    assert (p.top < 0).any() or in_tile == out_tile


def test_paper_tiles_572_to_388_from_mirrored_512_slices(rng):
    """The overlap-tile strategy at the paper's sizes: 572 x 572 inputs for 388 x 388 outputs cut from
    512 x 512 slices; the 92-pixel context beyond the slice is the mirrored slice, every output pixel
    lies in the slice and has its label and weight."""
    images = rng.integers(0, 256, (2, 512, 512), dtype=np.uint8)
    labels = (rng.random((2, 512, 512)) < 0.7).astype(np.uint8)
    weights = rng.random((2, 512, 512)).astype(np.float32) * 5
    sampler = TileSampler(images, labels, weights, in_tile=572, out_tile=388, augment=AugmentConfig.off())
    x, y, w = sampler.sample(2, torch.Generator().manual_seed(4))
    assert x.shape == (2, 1, 572, 572) and y.shape == w.shape == (2, 388, 388)
    p = sampler.last_params
    pad = 92
    mirror = lambda a: np.pad(a, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")  # noqa: E731
    for k in range(2):
        s, top, left = int(p.slice[k]), int(p.top[k]), int(p.left[k])
        assert -pad <= top <= 512 - 388 - pad and -pad <= left <= 512 - 388 - pad  # output inside the slice
        window = (s, slice(top + pad, top + pad + 572), slice(left + pad, left + pad + 572))
        np.testing.assert_allclose(x[k, 0].numpy(), mirror(images)[window] / 255, atol=1e-4)
        out = (s, slice(top + pad, top + pad + 388), slice(left + pad, left + pad + 388))
        np.testing.assert_array_equal(y[k].numpy(), labels[out])
        # float32 sampling coordinates at this scale are off by ~3e-5 px: weights of random noise in [0, 5]
        np.testing.assert_allclose(w[k].numpy(), weights[out], atol=1e-3)
    # with the paper's augmentation the shapes and value sets hold too
    augmented = TileSampler(images, labels, weights, 572, 388, AugmentConfig())
    x, y, w = augmented.sample(2, torch.Generator().manual_seed(5))
    assert x.shape == (2, 1, 572, 572) and 0 <= x.min() and x.max() <= 1
    assert set(y.unique().tolist()) <= {0, 1} and 0 <= w.min() and w.max() <= 5


def test_sampler_augmentation_keeps_image_and_label_aligned(rng):
    """A label that is a function of the image (threshold) must still match after every augmentation."""
    smooth = ndimage.gaussian_filter(rng.random((2, 64, 64)), (0, 4, 4))
    images = (255 * (smooth - smooth.min()) / np.ptp(smooth)).astype(np.uint8)
    labels = (images > 127).astype(np.uint8)
    cfg = AugmentConfig(brightness=(0, 0), contrast=(1, 1), gamma=(1, 1), shift=8)
    sampler = TileSampler(images, labels, np.ones_like(images, np.float32), 48, 40, cfg)
    x, y, _ = sampler.sample(8, torch.Generator().manual_seed(2))
    agree = ((x[:, 0, 4:44, 4:44] > 127 / 255).long() == y).float().mean()
    assert agree > 0.97
    assert sampler.last_params.angle.abs().max() > 0 and sampler.last_params.flip_x.any()


def test_sampler_reproducible_and_grey_values(stack):
    sampler = TileSampler(*stack, in_tile=36, out_tile=20, augment=AugmentConfig())
    a = sampler.sample(4, torch.Generator().manual_seed(7))
    b = sampler.sample(4, torch.Generator().manual_seed(7))
    for u, v in zip(a, b):
        assert torch.equal(u, v)
    plain = TileSampler(
        *stack,
        in_tile=36,
        out_tile=20,
        augment=AugmentConfig(brightness=(0.3, 0.3), contrast=(1, 1), gamma=(1, 1), rotate=False, flip=False, elastic_sigma=0),
    )
    off = TileSampler(*stack, in_tile=36, out_tile=20, augment=AugmentConfig.off())
    xb = plain.sample(3, torch.Generator().manual_seed(3))[0]
    xo = off.sample(3, torch.Generator().manual_seed(3))[0]
    torch.testing.assert_close(xb, (xo + 0.3).clamp(0, 1), atol=1e-4, rtol=0)


def test_sampler_bad_arguments(stack):
    images, labels, weights = stack
    with pytest.raises(ValueError, match="even difference"):
        TileSampler(images, labels, weights, 35, 20)
    with pytest.raises(ValueError, match="map 255 to 1"):
        TileSampler(images, labels * 255, weights, 36, 20)
    with pytest.raises(TypeError, match="uint8"):
        TileSampler(images.astype(np.float32), labels, weights, 36, 20)
    with pytest.raises(ValueError, match="same"):
        TileSampler(images, labels[:2], weights, 36, 20)


def test_sampler_on_real_data(isbi_dir):
    from unet_zoo.data.weight_maps import weight_maps_for_stack
    from unet_zoo.experiments.isbi2012.data import load_isbi

    data = load_isbi(isbi_dir)
    weights = weight_maps_for_stack(data.labels[:2])
    sampler = TileSampler(data.images[:2], data.labels[:2], weights, in_tile=188, out_tile=4)
    x, y, w = sampler.sample(2, torch.Generator().manual_seed(0))
    assert x.shape == (2, 1, 188, 188) and y.shape == w.shape == (2, 4, 4)
    assert w.min() > 0.5
