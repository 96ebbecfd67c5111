"""unet_zoo.data.weight_maps against a slow, obviously-correct brute force, edge cases, the stack cache."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from unet_zoo.data.weight_maps import weight_map, weight_maps_for_stack


def brute_force(label: np.ndarray, w0: float = 10.0, sigma: float = 5.0, instances: bool = False) -> np.ndarray:
    """Eq. 2 by definition: for every background pixel, the distance to every pixel of every cell."""
    if instances:
        cells = label.astype(int)
        ids = [i for i in np.unique(cells) if i != 0]
    else:
        cells, n = ndimage.label(label > 0)  # 4-connected components
        ids = list(range(1, n + 1))
    fg = cells > 0
    n_fg, n_all = fg.sum(), fg.size
    if 0 < n_fg < n_all:
        w = np.where(fg, n_all / (2 * n_fg), n_all / (2 * (n_all - n_fg)))
    else:
        w = np.ones(label.shape)
    w = w.astype(np.float64)
    coords = {i: np.argwhere(cells == i) for i in ids}
    for y, x in np.argwhere(~fg):
        dists = sorted(np.hypot(*(coords[i] - (y, x)).T).min() for i in ids)
        if len(dists) >= 2:
            w[y, x] += w0 * math.exp(-((dists[0] + dists[1]) ** 2) / (2 * sigma**2))
    return w


def random_cells(rng: np.random.Generator, shape=(24, 28), p: float = 0.6) -> np.ndarray:
    """Blobs separated by thin background: smoothed noise thresholded."""
    noise = ndimage.gaussian_filter(rng.random(shape), 1.5)
    return (noise > np.quantile(noise, 1 - p)).astype(np.uint8)


@pytest.mark.parametrize("seed", range(4))
def test_matches_brute_force_binary(seed):
    label = random_cells(np.random.default_rng(seed), p=0.4)
    assert ndimage.label(label)[1] >= 2
    np.testing.assert_allclose(weight_map(label), brute_force(label), atol=2e-6, rtol=1e-6)


def test_matches_brute_force_small_sigma_far_cells():
    """Cells far apart relative to sigma exercise the bounding-box cutoff."""
    label = np.zeros((40, 60), np.uint8)
    label[2:6, 2:6] = 1
    label[30:38, 45:58] = 1
    label[3:5, 20:24] = 1
    got = weight_map(label, w0=10, sigma=2.0)
    np.testing.assert_allclose(got, brute_force(label, 10, 2.0), atol=2e-6)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.floats(1.0, 8.0), st.floats(0.0, 20.0))
def test_property_matches_brute_force(seed, sigma, w0):
    label = random_cells(np.random.default_rng(seed), shape=(16, 18), p=0.5)
    np.testing.assert_allclose(weight_map(label, w0, sigma), brute_force(label, w0, sigma), atol=2e-6, rtol=1e-6)


def test_instance_labels_touching_cells():
    lab = np.zeros((12, 14), np.int32)
    lab[1:6, 1:7] = 3
    lab[1:6, 7:13] = 9  # touches cell 3: no background between them
    lab[8:11, 2:12] = 5
    got = weight_map(lab)
    np.testing.assert_allclose(got, brute_force(lab, instances=True), atol=2e-6)
    # Read as binary, 3 and 9 merge into one cell: a different map
    assert not np.allclose(got, weight_map((lab > 0).astype(np.uint8)))


def test_binary_masks_in_any_encoding_read_as_binary():
    """0/255 (the ISBI tifs as stored) and bool masks are binary: cells are connected components, not one
    instance holding every cell."""
    label = random_cells(np.random.default_rng(11), p=0.4)
    assert ndimage.label(label)[1] >= 2
    expected = brute_force(label)
    for encoded in (label * 255, label.astype(bool), label.astype(np.int64) * 7):
        np.testing.assert_allclose(weight_map(encoded), expected, atol=2e-6, rtol=1e-6)
    # forcing the instance reading of a 0/255 mask: one cell, so no border term at all
    forced = weight_map(label * 255, instances=True)
    np.testing.assert_allclose(forced, brute_force(label, w0=0), atol=1e-6)


def test_instance_image_with_two_ids_is_instances():
    lab = np.zeros((10, 12), np.uint16)
    lab[1:5, 1:11] = 300
    lab[5:9, 1:11] = 301  # touching 300: as instances two cells, as a mask one
    np.testing.assert_allclose(weight_map(lab), brute_force(lab, instances=True), atol=2e-6)
    assert weight_map(lab)[0, 0] > weight_map(lab, instances=False)[0, 0]


def test_no_cells_is_all_ones():
    w = weight_map(np.zeros((9, 11), np.uint8))
    assert w.dtype == np.float32 and w.shape == (9, 11)
    np.testing.assert_array_equal(w, 1.0)
    np.testing.assert_array_equal(weight_map(np.ones((5, 5), np.uint8)), 1.0)


def test_one_cell_only_class_balance():
    label = np.zeros((10, 10), np.uint8)
    label[2:7, 3:8] = 1  # 25 cell pixels of 100
    w = weight_map(label)
    np.testing.assert_allclose(w[label == 1], 100 / (2 * 25))
    np.testing.assert_allclose(w[label == 0], 100 / (2 * 75))
    assert w.mean() == pytest.approx(1.0)


def test_touching_cells_get_high_border_weight():
    """Two cells separated by a one-pixel membrane: d1 = d2 = 1 on it, so w = w_c + w0 exp(-4 / 2 sigma^2)."""
    label = np.ones((20, 21), np.uint8)
    label[:, 10] = 0
    w = weight_map(label, w0=10, sigma=5)
    wc_bg = label.size / (2 * 20)
    np.testing.assert_allclose(w[:, 10], wc_bg + 10 * math.exp(-4 / 50), rtol=1e-6)
    assert w[:, 10].min() > w[label == 1].max()


def test_diagonal_membrane_separates_cells_4_connectivity():
    label = np.ones((8, 8), np.uint8)
    np.fill_diagonal(label, 0)  # an 8-connected membrane: cells touch only at corners
    assert weight_map(label)[0, 0] > 5  # border term present: two cells, not one


def test_cells_at_image_border():
    label = np.zeros((15, 15), np.uint8)
    label[:, :4] = 1  # touches left, top, bottom edges
    label[:, 7:] = 1  # touches right edge
    np.testing.assert_allclose(weight_map(label), brute_force(label), atol=2e-6)


def test_w0_zero_and_balance_off():
    label = random_cells(np.random.default_rng(7))
    np.testing.assert_allclose(weight_map(label, w0=0), brute_force(label, w0=0), atol=1e-6)
    w = weight_map(label, balance=False)
    assert w[label == 1].max() == 1.0 and w.min() == 1.0


@pytest.mark.parametrize(
    "bad, err, match",
    [
        (np.zeros((2, 4, 4), np.uint8), ValueError, "weight_maps_for_stack"),
        (np.zeros((4, 4), np.float32), TypeError, "threshold"),
        (-np.ones((4, 4), np.int32), ValueError, ">= 0"),
    ],
)
def test_bad_input(bad, err, match):
    with pytest.raises(err, match=match):
        weight_map(bad)
    with pytest.raises(ValueError, match="sigma"):
        weight_map(np.zeros((4, 4), np.uint8), sigma=0)


def test_stack_and_cache(tmp_path):
    rng = np.random.default_rng(3)
    labels = np.stack([random_cells(rng, (20, 22)) for _ in range(3)])
    first = weight_maps_for_stack(labels, cache_dir=tmp_path)
    assert first.shape == labels.shape and first.dtype == np.float32
    for i in range(3):
        np.testing.assert_array_equal(first[i], weight_map(labels[i]))
    files = list(tmp_path.glob("weights-*.npy"))
    assert len(files) == 1 and not list(tmp_path.glob(".weights-*"))
    # a hit is read from disk: poison the file and see the poisoned values come back
    np.save(files[0], np.full(labels.shape, 7, np.float32))
    assert (weight_maps_for_stack(labels, cache_dir=tmp_path) == 7).all()
    # other parameters or labels: another key
    weight_maps_for_stack(labels, sigma=3.0, cache_dir=tmp_path)
    changed = labels.copy()
    changed[0, 0, 0] ^= 1
    weight_maps_for_stack(changed, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("weights-*.npy"))) == 3


def test_real_slice(isbi_dir):
    from unet_zoo.experiments.isbi2012.data import load_isbi

    label = load_isbi(isbi_dir).labels[0]
    w = weight_map(label)
    assert w.shape == (512, 512) and w.dtype == np.float32
    # membranes between touching cells are where the border term is large
    assert w[label == 0].max() > 5 and w[label == 1].max() < 1
    # agree with an uncut computation (one full-image EDT per cell) on a crop holding several cells
    crop = label[:96, :96]
    from unet_zoo.data.weight_maps import _cells, border_distances, class_balance_weights

    cells, n = _cells(crop, None)
    d1, d2 = border_distances(cells, n)  # radius = inf: exact everywhere
    full = class_balance_weights(cells > 0)
    m = (cells == 0) & np.isfinite(d2)
    full[m] += 10 * np.exp(-((d1[m] + d2[m]) ** 2) / 50)
    np.testing.assert_allclose(weight_map(crop), full, atol=2e-6)


def test_weight_maps_for_stack_reports_progress_per_slice():
    labels = np.full((3, 8, 8), 255, np.uint8)
    labels[:, :, 4] = 0
    seen = []
    weight_maps_for_stack(labels, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
