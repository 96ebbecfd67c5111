import numpy as np
import pytest
from PIL import Image

from unet_zoo.utils.plots import overlay_rgb, plot_curves, plot_overlays, running_mean


def test_running_mean_matches_a_direct_computation():
    values = np.arange(10.0)
    expected = [np.mean(values[max(0, i - 2) : i + 1]) for i in range(10)]
    assert np.allclose(running_mean(values, 3), expected)
    assert np.array_equal(running_mean(values, 1), values)


def test_plot_curves_writes_a_png_with_one_panel_per_metric_group(tmp_path):
    records = [{"step": s, "loss": 1.0 / s} for s in range(1, 101)] + [
        {"step": s, "val_loss": 0.5, "val_pixel_error": 0.1} for s in (50, 100)
    ]
    path = plot_curves(records, tmp_path / "curves.png")
    image = np.asarray(Image.open(path).convert("L"))
    assert image.shape[0] > image.shape[1] * 0.6  # two stacked panels
    assert image.min() < 100 and (image == 255).mean() > 0.5  # drawn lines on a white background


def test_plot_overlays_draws_each_slice_and_checks_shapes(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (2, 32, 32), dtype=np.uint8)
    probs = rng.random((2, 32, 32))
    one = plot_overlays(images[:1], probs[:1], None, tmp_path / "one.png")
    two = plot_overlays(images, probs, (probs < 0.5).astype(np.uint8), tmp_path / "two.png", titles=["a", "b"])
    assert Image.open(two).size[1] > 1.5 * Image.open(one).size[1]
    with pytest.raises(ValueError, match="must both be"):
        plot_overlays(images, probs[:1], None, tmp_path / "bad.png")


def test_overlay_colours_agreement_and_errors():
    image = np.full((2, 2), 100, np.uint8)
    prob = np.array([[1.0, 0.0], [1.0, 0.0]])
    label = np.array([[0, 0], [1, 1]])  # membrane in the first row
    rgb = overlay_rgb(image, prob, label).astype(int)
    assert rgb[0, 0, 1] > 100 and rgb[0, 0, 0] > 100  # predicted and true: magenta + green
    assert rgb[1, 0, 0] > rgb[1, 0, 1]  # predicted only: magenta
    assert rgb[0, 1, 1] > rgb[0, 1, 0]  # true only: green
