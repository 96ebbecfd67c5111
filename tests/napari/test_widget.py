"""The dock widget in a real napari viewer (headless): prediction, segmentation, a lazy stack, cancelling, bad input,
and a GUI that keeps processing events while the worker runs."""

from __future__ import annotations

import numpy as np
import pytest

import unet_zoo

from .conftest import needs_viewer

needs_viewer()

import dask.array as da  # noqa: E402  after the skip: napari brings dask
from qtpy.QtCore import QTimer  # noqa: E402

from unet_zoo.models.provenance import provenance_of  # noqa: E402
from unet_zoo.napari import _widget  # noqa: E402
from unet_zoo.napari._choices import OTHER  # noqa: E402
from unet_zoo.napari._widget import CURRENT_SECTION, SegmentWidget  # noqa: E402

TIMEOUT_MS = 120_000


@pytest.fixture
def errors(monkeypatch):
    """The messages the widget shows with napari's show_error."""
    shown: list[str] = []
    monkeypatch.setattr(_widget, "show_error", shown.append)
    return shown


def make_widget(viewer, model_dir, backend="torch", **options) -> SegmentWidget:
    widget = SegmentWidget(viewer)
    widget.model_box.setCurrentIndex(widget.model_box.findData(OTHER))
    widget.model_path.setText(str(model_dir))
    widget.backend.setCurrentText(backend)
    widget.segment.setChecked(options.get("segment", False))
    widget.tta.setChecked(options.get("tta", False))
    widget.tile.setValue(options.get("tile", 0))
    return widget


def run_and_wait(qtbot, widget: SegmentWidget) -> None:
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)


def test_predicts_and_segments_a_stack_like_the_library(make_napari_viewer, qtbot, tiny_model_dir, errors):
    viewer = make_napari_viewer()
    stack = np.random.default_rng(0).integers(0, 256, (2, 48, 60), dtype=np.uint8)
    viewer.add_image(stack, name="em", scale=(50, 4, 4))
    widget = make_widget(viewer, tiny_model_dir, segment=True)
    assert widget.layer_box.currentText() == "em" and widget.pixel_label.text().startswith("4")
    run_and_wait(qtbot, widget)
    assert not errors and widget.status.text() == "done (torch-fp32)"
    membrane, cells = viewer.layers[f"em P(membrane) [{tiny_model_dir}]"], viewer.layers[f"em cells [{tiny_model_dir}]"]
    assert membrane.data.shape == stack.shape and membrane.data.dtype == np.float32
    assert cells.data.shape == stack.shape and cells.data.dtype == np.uint32
    model = unet_zoo.from_pretrained(tiny_model_dir)
    for i in range(2):
        probs = unet_zoo.predict_tiled(model, stack[i])
        np.testing.assert_allclose(membrane.data[i], probs[0], atol=1e-5)
        ids = unet_zoo.segment(probs, params=unet_zoo.segmentation.checkpoint_params(model))
        assert len(np.unique(cells.data[i])) == len(np.unique(ids))
    assert tuple(membrane.scale) == (50, 4, 4) and membrane.colormap.name == "magenta"
    for layer in (membrane, cells):
        meta = layer.metadata["unet_zoo"]
        assert meta["sha256"] == provenance_of(model).sha256 and meta["model"] == str(tiny_model_dir) and "revision" in meta


def test_gui_processes_events_while_predicting(make_napari_viewer, qtbot, tiny_model_dir, errors):
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(1).random((160, 160), dtype=np.float32), name="em")
    widget = make_widget(viewer, tiny_model_dir, tta=True, tile=48)
    ticks, progress = [], []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(widget.worker is not None))
    widget.progress.valueChanged.connect(progress.append)
    timer.start(5)
    run_and_wait(qtbot, widget)
    timer.stop()
    assert not errors
    assert sum(ticks) >= 5, "the event loop did not run while the worker predicted"
    assert len(progress) > 5 and progress == sorted(progress) and progress[-1] == 1000
    assert viewer.layers[-1].data.shape == (160, 160)


def test_current_section_of_a_lazy_stack_with_onnxruntime(make_napari_viewer, qtbot, tiny_model_dir, errors):
    pytest.importorskip("onnxruntime", reason='the onnxruntime backend needs pip install -e ".[export]"')
    viewer = make_napari_viewer()
    stack = np.random.default_rng(2).integers(0, 256, (4, 40, 40), dtype=np.uint8)
    reads = []

    def section(block, block_info=None):
        reads.append(block_info[None]["array-location"][0])
        return block

    lazy = da.from_array(stack, chunks=(1, 40, 40)).map_blocks(section, dtype=np.uint8)
    viewer.add_image(lazy, name="lazy", translate=(10, 0, 0))
    viewer.dims.set_point(0, 12)  # world z 12 = section 2 of the layer
    widget = make_widget(viewer, tiny_model_dir, backend="onnxruntime")
    widget.sections_box.setCurrentText(CURRENT_SECTION)
    reads.clear()
    run_and_wait(qtbot, widget)
    assert not errors and widget.status.text() == "done (onnxruntime-fp32)"
    membrane = viewer.layers[-1]
    assert membrane.data.shape == (1, 40, 40) and tuple(membrane.translate) == (12, 0, 0)
    assert {tuple(r) for r in reads} <= {(2, 3)}, f"read other sections than the current one: {reads}"
    expected = unet_zoo.predict_tiled(unet_zoo.from_pretrained(tiny_model_dir), stack[2])
    np.testing.assert_allclose(membrane.data[0], expected[0], atol=1e-4)  # onnxruntime vs torch


def test_cancel_stops_at_the_next_tile(make_napari_viewer, qtbot, tiny_model_dir, errors):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((512, 512), np.uint8), name="big")
    widget = make_widget(viewer, tiny_model_dir, tile=32)  # ~500 tiles
    seen = []
    widget._relay.progressed.connect(lambda *a: (seen.append(a), widget.cancel()))
    run_and_wait(qtbot, widget)
    assert not errors and widget.status.text() == "cancelled"
    assert [layer.name for layer in viewer.layers] == ["big"]
    # stopped within a few tiles of hundreds (progress reaches the GUI queued, so a few more may have run)
    assert seen and seen[-1][3] > 400 and seen[-1][2] < 50
    assert widget.run_button.isEnabled() and not widget.cancel_button.isEnabled()


def test_bad_input_shows_an_error_without_running(make_napari_viewer, qtbot, tiny_model_dir, errors):
    viewer = make_napari_viewer()
    widget = make_widget(viewer, tiny_model_dir)
    widget.run()  # no image layer yet
    viewer.add_image(np.zeros((32, 32, 3), np.uint8), name="rgb", rgb=True)
    widget.run()
    viewer.add_image(np.zeros((32, 32), np.int32), name="ints")
    widget.layer_box.setCurrentText("ints")
    widget.run()
    assert widget.worker is None
    assert len(errors) == 3
    assert "Add an image layer" in errors[0] and "RGB" in errors[1] and "int32" in errors[2]
    assert [layer.name for layer in viewer.layers] == ["rgb", "ints"]


def test_a_missing_model_folder_is_a_notification_not_a_traceback(make_napari_viewer, qtbot, tmp_path, errors):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((32, 32), np.uint8), name="em")
    widget = make_widget(viewer, tmp_path / "no-such-model")
    run_and_wait(qtbot, widget)
    assert len(errors) == 1 and "does not exist" in errors[0] and widget.status.text().startswith("failed")
    assert widget.run_button.isEnabled()


def test_fine_tune_on_painted_labels_adds_the_new_model(make_napari_viewer, qtbot, tiny_model_dir, errors, tmp_path):
    from unet_zoo.training.data import synthetic_cells
    from unet_zoo.training.recipes import load_recipe

    viewer = make_napari_viewer()
    images, cells = synthetic_cells(1, 192, seed=2)
    viewer.add_image(images[0], name="em")
    painted = np.zeros((192, 192), dtype=np.int32)
    from scipy import ndimage as ndi

    region = ndi.label(cells[0][:, :160])[0]  # one label per cell in the left part; 0 between cells and elsewhere
    painted[:, :160] = region
    viewer.add_labels(painted, name="my cells")
    widget = make_widget(viewer, tiny_model_dir)
    widget.models_dir = tmp_path / "models"
    widget.finetune_recipe = load_recipe("finetune").with_overrides(
        data={"tile": 64}, train={"batch_size": 1, "eval_tiles": 1, "overlay_slices": 0}, eval={"tta": False}
    )
    widget.finetune_steps.setValue(2)
    seen = []
    widget._relay.trained.connect(lambda step, total: seen.append((step, total)))
    widget.finetune()
    assert not widget.finetune_button.isEnabled() and not widget.run_button.isEnabled()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)
    assert not errors, errors
    folder = tmp_path / "models"
    (written,) = [p for p in folder.iterdir() if (p / "config.json").is_file()]
    assert widget.model_spec() == str(written) and widget.model_box.currentText().startswith("fine-tuned: ")
    assert seen and seen[-1] == (2, 2)
    assert provenance_of(unet_zoo.from_pretrained(written)).architecture == "small"
    run_and_wait(qtbot, widget)  # and the new model predicts like any other
    assert not errors and f"em P(membrane) [{written}]" in viewer.layers


def test_fine_tune_without_painted_cells_says_what_to_do(make_napari_viewer, qtbot, tiny_model_dir, errors):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((64, 64), dtype=np.uint8), name="em")
    widget = make_widget(viewer, tiny_model_dir)
    widget.finetune()
    assert errors and "paint cells" in errors[-1]
    viewer.add_labels(np.zeros((64, 64), dtype=np.int32), name="empty")
    widget.finetune()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)
    assert "nothing is painted" in errors[-1]
