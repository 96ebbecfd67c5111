"""Fine-tuning on strokes and the uncertainty layer in a real napari viewer (headless; skips without an X display)."""

from __future__ import annotations

import numpy as np
import pytest

import unet_zoo

from .conftest import needs_viewer

needs_viewer()

from unet_zoo.finetuning.strokes import draw_strokes  # noqa: E402
from unet_zoo.inference.tiling import predict_uncertainty  # noqa: E402
from unet_zoo.napari import _widget  # noqa: E402
from unet_zoo.napari._choices import OTHER  # noqa: E402
from unet_zoo.napari._widget import SegmentWidget  # noqa: E402

TIMEOUT_MS = 120_000


@pytest.fixture
def errors(monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr(_widget, "show_error", shown.append)
    return shown


def _widget_for(viewer, model_dir) -> SegmentWidget:
    widget = SegmentWidget(viewer)
    widget.model_box.setCurrentIndex(widget.model_box.findData(OTHER))
    widget.model_path.setText(str(model_dir))
    widget.backend.setCurrentText("torch")
    return widget


def test_uncertainty_layer_is_predict_uncertainty(make_napari_viewer, qtbot, tiny_model_dir, errors):
    viewer = make_napari_viewer()
    image = np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)
    viewer.add_image(image, name="em")
    widget = _widget_for(viewer, tiny_model_dir)
    widget.uncertainty.setChecked(True)
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)
    assert not errors, errors
    layer = viewer.layers[f"em uncertainty [{tiny_model_dir}]"]
    expected = predict_uncertainty(unet_zoo.from_pretrained(str(tiny_model_dir)), image)[1]
    np.testing.assert_allclose(layer.data, expected, atol=1e-5)


def test_fine_tune_on_strokes_selects_the_new_model_and_predicts_again(
    make_napari_viewer, qtbot, tiny_model_dir, errors, tmp_path
):
    from unet_zoo.training.data import synthetic_cells
    from unet_zoo.training.recipes import load_recipe

    viewer = make_napari_viewer()
    images, cells = synthetic_cells(3, 96, seed=2)
    viewer.add_image(images, name="em")
    strokes = np.zeros(images.shape, np.uint8)
    strokes[[0, 2]] = draw_strokes(cells[[0, 2]], 6, rng=0, length=10)  # sections 0 and 2 painted, 1 not
    viewer.add_labels(strokes, name="strokes")
    widget = _widget_for(viewer, tiny_model_dir)
    widget.models_dir = tmp_path / "models"
    widget.finetune_recipe = load_recipe("finetune").with_overrides(
        data={"tile": 32}, train={"batch_size": 1, "eval_tiles": 1, "overlay_slices": 0}, eval={"tta": False}
    )
    widget.finetune_steps.setValue(2)
    seen = []
    widget._relay.trained.connect(lambda step, total: seen.append((step, total)))
    widget.finetune_strokes()
    assert not widget.strokes_button.isEnabled() and not widget.run_button.isEnabled()
    qtbot.waitUntil(lambda: f"em P(membrane) [{widget.model_spec()}]" in viewer.layers, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)
    assert not errors, errors
    (written,) = list((tmp_path / "models").iterdir())  # the model folder only: no TIFFs, no run folder
    assert widget.model_spec() == str(written) and seen and seen[-1] == (2, 2)
    assert viewer.layers[f"em P(membrane) [{written}]"].data.shape == images.shape


def test_strokes_of_one_class_are_a_notification(make_napari_viewer, qtbot, tiny_model_dir, errors, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((2, 64, 64), np.uint8), name="em")
    widget = _widget_for(viewer, tiny_model_dir)
    widget.models_dir = tmp_path / "models"
    widget.finetune_strokes()
    assert errors and "label 1 on membranes" in errors[-1]
    only_membrane = np.zeros((2, 64, 64), np.uint8)
    only_membrane[1, 10, 5:40] = 1
    viewer.add_labels(only_membrane, name="strokes")
    widget.finetune_strokes()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)
    assert "no cell stroke" in errors[-1]
