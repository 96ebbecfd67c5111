"""The napari dock widget: pick a model and an image layer, predict P(membrane) and cells in a worker thread."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from unet_zoo.hub.pretrained import CheckpointError, HubAccessError

from ._choices import BACKENDS, OTHER, PRECISIONS, checkpoint_choices
from ._finetune import finetune_on_painted, finetune_on_strokes
from ._predict import Cancelled, LoadedModel, Prediction, check_image, load, predict_sections, section_indices

if TYPE_CHECKING:
    import napari

ALL_SECTIONS, CURRENT_SECTION = "all sections", "current section"
# errors that bad input or a bad model name cause: shown as a notification with the message, no traceback
EXPECTED_ERRORS = (ValueError, TypeError, KeyError, FileNotFoundError, ImportError, CheckpointError, HubAccessError)
PROGRESS_STEPS = 1000


class _Relay(QObject):
    """Carries progress from the worker thread to the widget (a queued signal, delivered in the GUI thread)."""

    progressed = Signal(int, int, int, int)
    trained = Signal(int, int)


class SegmentWidget(QWidget):
    """Predict P(membrane) (an image layer) and cells (a labels layer) of the selected image layer."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self._models: dict[tuple[str, str, str], LoadedModel] = {}
        self._cancel = threading.Event()
        self.worker: Any = None
        self._relay = _Relay()
        self._relay.progressed.connect(self._show_progress)
        self._relay.trained.connect(self._show_training)
        self.models_dir: Any = None  # where fine-tuned models go (None: ~/.cache/unet_zoo/finetuned)
        self.finetune_recipe: Any = "finetune"  # the recipe `unet_zoo.finetune` trains with
        self._predict_next = False  # after fine-tuning on strokes: predict the stack with the new model

        self.model_box = QComboBox()
        for choice in checkpoint_choices():
            self.model_box.addItem(choice.label, choice.name)
        self.model_box.addItem(OTHER, OTHER)
        self.model_box.setToolTip("a published checkpoint (held-out ISBI 2012 scores), or any folder or Hub id")
        self.model_path = QLineEdit()
        self.model_path.setPlaceholderText("checkpoint folder or owner/repo on the Hub")
        self.browse = QPushButton("Browse...")
        self.browse.clicked.connect(self._browse)
        path_row = QHBoxLayout()
        path_row.addWidget(self.model_path)
        path_row.addWidget(self.browse)
        self.path_widget = QWidget()
        self.path_widget.setLayout(path_row)
        path_row.setContentsMargins(0, 0, 0, 0)
        self.model_box.currentIndexChanged.connect(self._model_changed)

        self.layer_box = QComboBox()
        self.layer_box.currentIndexChanged.connect(self._layer_changed)
        self.sections_box = QComboBox()
        self.sections_box.addItems([ALL_SECTIONS, CURRENT_SECTION])
        self.pixel_label = QLabel("")
        self.pixel_label.setToolTip("the layer's scale; set the pixel size below to rescale the image to the model's")
        self.tta = QCheckBox("test-time augmentation (8 rotations/flips, 8x slower)")
        self.tile = QSpinBox()
        self.tile.setRange(0, 4096)
        self.tile.setSingleStep(16)
        self.tile.setSpecialValueText("auto")
        self.tile.setToolTip("input tile side in pixels; auto: the model's default, shrunk for small images")
        self.backend = QComboBox()
        self.backend.addItems(list(BACKENDS))
        self.backend.setToolTip("auto: the fastest path measured on this machine (cached after the first run)")
        self.precision = QComboBox()
        self.precision.addItems(list(PRECISIONS))
        self.precision.setToolTip("auto: bf16 where it measured faster on this machine, else fp32")
        self.pixel_size = QDoubleSpinBox()
        self.pixel_size.setRange(0.0, 100_000.0)
        self.pixel_size.setDecimals(3)
        self.pixel_size.setSpecialValueText("model's (not rescaled)")
        self.pixel_size.setToolTip(
            "nm per pixel of the image: it is rescaled to the model's pixel size for prediction and the results "
            "back to the image's grid (as unet-zoo predict --pixel-size)"
        )
        self.segment = QCheckBox("segment cells (labels layer)")
        self.uncertainty = QCheckBox("uncertainty: where to paint next (implies TTA)")
        self.uncertainty.setToolTip(
            "an image layer of where the model is unsure (entropy of P(cell) averaged over the 8 rotations/flips, "
            "0 to 1); paint cell strokes where it is bright, membrane strokes on clear membranes anywhere"
        )
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.finetune_button = QPushButton("Fine-tune on these labels")
        self.finetune_button.setToolTip(
            "train the model further on the painted region of a labels layer (one label per cell, 0 between cells); "
            "the new model is added to the list"
        )
        self.finetune_button.clicked.connect(self.finetune)
        self.strokes_button = QPushButton("Fine-tune on these strokes")
        self.strokes_button.setToolTip(
            "train the model further on strokes painted in a labels layer on any sections: label 1 = membrane, "
            "label 2 = cell interior, 0 = not painted; the new model is selected and the image predicted again"
        )
        self.strokes_button.clicked.connect(self.finetune_strokes)
        self.finetune_steps = QSpinBox()
        self.finetune_steps.setRange(1, 20000)
        self.finetune_steps.setValue(300)
        self.progress = QProgressBar()
        self.progress.setRange(0, PROGRESS_STEPS)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("model", self.model_box)
        form.addRow("", self.path_widget)
        form.addRow("image", self.layer_box)
        form.addRow("sections", self.sections_box)
        form.addRow("layer scale", self.pixel_label)
        form.addRow("pixel size (nm)", self.pixel_size)
        form.addRow("tile", self.tile)
        form.addRow("backend", self.backend)
        form.addRow("precision", self.precision)
        form.addRow("", self.tta)
        form.addRow("", self.segment)
        form.addRow("", self.uncertainty)
        form.addRow("fine-tune steps", self.finetune_steps)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout()
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.finetune_button)
        layout.addWidget(self.strokes_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch()
        self.setLayout(layout)

        self._model_changed()
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(self.reset_choices)
        self.reset_choices()

    # --- choices ---------------------------------------------------------------------------------------

    def reset_choices(self, event: Any = None) -> None:
        """Refill the image drop-down from the viewer's image layers, keeping the selection when it is still there."""
        current = self.layer_box.currentText()
        names = [layer.name for layer in self.viewer.layers if isinstance(layer, Image)]
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        self.layer_box.addItems(names)
        if current in names:
            self.layer_box.setCurrentText(current)
        self.layer_box.blockSignals(False)
        self._layer_changed()

    def _model_changed(self, *_: Any) -> None:
        self.path_widget.setVisible(self.model_box.currentData() == OTHER)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Checkpoint folder (config.json + model.safetensors)")
        if folder:
            self.model_path.setText(folder)

    def selected_layer(self) -> Image | None:
        name = self.layer_box.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def _layer_changed(self, *_: Any) -> None:
        layer = self.selected_layer()
        stack = layer is not None and layer.ndim > 2
        self.sections_box.setEnabled(stack)
        if layer is None:
            self.pixel_label.setText("")
            return
        units = getattr(layer, "units", None)
        unit = f" {units[-1]}" if units and str(units[-1]) != "pixel" else ""
        size = float(layer.scale[-1])
        self.pixel_label.setText(f"{size:g}{unit} (not applied)" if size != 1 or unit else "unknown")

    def model_spec(self) -> str:
        data = self.model_box.currentData()
        return self.model_path.text().strip() if data == OTHER else str(data)

    # --- running ---------------------------------------------------------------------------------------

    def run(self) -> None:
        """Check the input, then predict in a worker thread; the result arrives in `_finished`."""
        if self.worker is not None:
            return
        layer = self.selected_layer()
        if layer is None:
            show_error("Add an image layer first (e.g. File > Open Sample > unet_zoo), then press Run.")
            return
        spec = self.model_spec()
        if not spec:
            show_error("Type a checkpoint folder or a Hub id (owner/repo), or pick a checkpoint from the list.")
            return
        data = layer.data[0] if layer.multiscale else layer.data
        try:
            check_image(data, rgb=layer.rgb)
        except ValueError as err:
            show_error(f"{layer.name}: {err}")
            return
        current = None
        if layer.ndim > 2 and self.sections_box.currentText() == CURRENT_SECTION:
            point = np.asarray(layer.world_to_data(self.viewer.dims.point))
            current = tuple(int(round(p)) for p in point[: layer.ndim - 2])
        indices = section_indices(data.shape, current)
        options = dict(
            tta=self.tta.isChecked(),
            tile=self.tile.value() or None,
            segment_cells=self.segment.isChecked(),
            uncertainty=self.uncertainty.isChecked(),
            pixel_size=self.pixel_size.value() or None,
        )
        self._cancel.clear()
        self._set_running(True, f"predicting {layer.name} with {spec}")
        choice = (self.backend.currentText(), self.precision.currentText())
        self.worker = create_worker(self._work, spec, choice, data, indices, options)
        self.worker.returned.connect(lambda result: self._finished(result, layer))
        self.worker.errored.connect(lambda _err: self._set_running(False, "failed"))
        self.worker.finished.connect(self._worker_done)
        self.worker.start()

    def cancel(self) -> None:
        """Stop the running prediction at the next tile."""
        if self.worker is not None:
            self._cancel.set()
            self.status.setText("cancelling at the next tile...")

    def _work(self, spec: str, choice: tuple[str, str], data: Any, indices: list, options: dict) -> Prediction | str:
        """Runs in the worker thread: the prediction, or a message for the user (an expected error, or cancelled)."""
        try:
            key = (spec, *choice)
            if key not in self._models:
                self._models.clear()  # one model in memory at a time
                self._models[key] = load(spec, *choice)
            if self._cancel.is_set():
                raise Cancelled
            return predict_sections(self._models[key], data, indices, progress=self._report, **options)
        except Cancelled:
            return "cancelled"
        except EXPECTED_ERRORS as err:
            return f"{type(err).__name__}: {err.args[0] if len(err.args) == 1 else err}"

    def _report(self, section: int, sections: int, done: int, total: int) -> None:
        """predict_sections' progress, in the worker thread: pass it on, or stop here when cancelled."""
        if self._cancel.is_set():
            raise Cancelled
        self._relay.progressed.emit(section, sections, done, total)

    def _show_progress(self, section: int, sections: int, done: int, total: int) -> None:
        self.progress.setValue(int(PROGRESS_STEPS * (section + done / max(total, 1)) / max(sections, 1)))
        where = f"section {section + 1}/{sections}, " if sections > 1 else ""
        self.status.setText(f"{where}tile {done}/{total}")

    def _finished(self, result: Prediction | str, layer: Image) -> None:
        if isinstance(result, str):
            if result == "cancelled":
                show_info("Prediction cancelled.")
                self._set_running(False, "cancelled")
            else:
                show_error(f"{layer.name}: {result}")
                self._set_running(False, f"failed: {result}")
            return
        self.progress.setValue(PROGRESS_STEPS)
        self.add_layers(result, layer)
        self._set_running(False, f"done ({result.metadata['unet_zoo']['inference']['path']})")

    def _worker_done(self) -> None:
        self.worker = None
        self.run_button.setEnabled(True)
        self.finetune_button.setEnabled(True)
        self.strokes_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if self._predict_next:  # a model was just fine-tuned on strokes: predict the image with it
            self._predict_next = False
            self.sections_box.setCurrentText(ALL_SECTIONS)
            self.run()

    # --- fine-tuning on painted labels -------------------------------------------------------------------

    def painted_layer(self, image: Image) -> Labels | None:
        """The labels layer to train on: the active layer if it is a labels layer of the image's size, else the
        last such labels layer."""

        def fits(layer: Any) -> bool:
            return isinstance(layer, Labels) and tuple(layer.data.shape[-2:]) == tuple(image.data.shape[-2:])

        active = self.viewer.layers.selection.active
        if fits(active):
            return active
        return next((layer for layer in reversed(self.viewer.layers) if fits(layer)), None)

    def finetune(self) -> None:
        """Fine-tune the chosen model on the painted region of the current section in a worker thread; the new
        model is added to the model list when it is written."""
        if self.worker is not None:
            return
        layer = self.selected_layer()
        spec = self.model_spec()
        if layer is None or not spec:
            show_error("Choose a model and an image layer, paint cells in a labels layer over it, then fine-tune.")
            return
        painted = self.painted_layer(layer)
        if painted is None:
            show_error(f"Add a labels layer of {layer.name}'s size and paint cells in it (one label per cell) first.")
            return
        point = np.asarray(layer.world_to_data(self.viewer.dims.point))
        current = tuple(int(round(p)) for p in point[: layer.ndim - 2])
        image = np.asarray(layer.data[current] if current else layer.data)
        labels = np.asarray(painted.data[current] if painted.data.ndim > 2 else painted.data)
        self._set_running(True, f"fine-tuning {spec} on the painted cells of {painted.name}")
        self._start_finetune(self._train, spec, image, labels)

    def _start_finetune(self, train: Any, spec: str, images: np.ndarray, labels: np.ndarray) -> None:
        """Run `train(spec, images, labels, steps)` in a worker thread; `_trained` takes its result."""
        self.worker = create_worker(train, spec, images, labels, self.finetune_steps.value())
        self.worker.returned.connect(self._trained)
        self.worker.errored.connect(lambda _err: self._set_running(False, "fine-tuning failed"))
        self.worker.finished.connect(self._worker_done)
        self.worker.start()

    def _finetune_with(self, finetune: Any, spec: str, images: np.ndarray, labels: np.ndarray, steps: int) -> Any:
        """Runs in the worker thread: `finetune`'s `FinetuneResult`, or a message for the user (an expected error)."""
        try:
            return finetune(
                spec,
                images,
                labels,
                models_dir=self.models_dir,
                steps=steps,
                recipe=self.finetune_recipe,
                progress=self._relay.trained.emit,
            )
        except EXPECTED_ERRORS + (FileExistsError,) as err:
            return f"{type(err).__name__}: {err.args[0] if len(err.args) == 1 else err}"

    def _train(self, spec: str, image: np.ndarray, labels: np.ndarray, steps: int) -> Any:
        """Runs in the worker thread: fine-tuning on the painted cells of one section."""
        return self._finetune_with(finetune_on_painted, spec, image, labels, steps)

    def finetune_strokes(self) -> None:
        """Fine-tune the chosen model on the membrane (1) and cell (2) strokes of a labels layer over the image, on
        every section that has strokes, in a worker thread; then select the new model and predict the image again."""
        if self.worker is not None:
            return
        layer = self.selected_layer()
        spec = self.model_spec()
        if layer is None or not spec:
            show_error("Choose a model and an image layer, paint strokes in a labels layer over it, then fine-tune.")
            return
        painted = self.painted_layer(layer)
        if painted is None or tuple(painted.data.shape) != tuple(layer.data.shape):
            show_error(
                f"Add a labels layer of {layer.name}'s shape {tuple(layer.data.shape)} and paint strokes in it: "
                "label 1 on membranes, label 2 inside cells."
            )
            return
        strokes = np.asarray(painted.data)
        lead = strokes.shape[:-2]
        flat = strokes.reshape(-1, *strokes.shape[-2:])
        stroked = [i for i in range(len(flat)) if flat[i].any()]
        if not stroked:
            show_error(f"nothing is painted in {painted.name}: paint label 1 on membranes and label 2 inside cells first")
            return
        sections = [np.unravel_index(i, lead) if lead else () for i in stroked]
        data = layer.data[0] if layer.multiscale else layer.data
        images = np.stack([np.asarray(data[tuple(int(j) for j in k)] if k else data) for k in sections])
        self._set_running(True, f"fine-tuning {spec} on the strokes of {painted.name} ({len(stroked)} section(s))")
        self._start_finetune(self._train_strokes, spec, images, flat[stroked])

    def _train_strokes(self, spec: str, images: np.ndarray, strokes: np.ndarray, steps: int) -> Any:
        """Runs in the worker thread: fine-tuning on strokes; the image is predicted again with the new model."""
        result = self._finetune_with(finetune_on_strokes, spec, images, strokes, steps)
        self._predict_next = not isinstance(result, str)
        return result

    def _show_training(self, step: int, total: int) -> None:
        self.progress.setValue(int(PROGRESS_STEPS * step / max(total, 1)))
        self.status.setText(f"fine-tuning: step {step}/{total}")

    def _trained(self, result: Any) -> None:
        if isinstance(result, str):
            show_error(f"fine-tuning: {result}")
            self._set_running(False, f"failed: {result}")
            return
        label = f"fine-tuned: {result.out.name}"
        self.model_box.insertItem(max(self.model_box.count() - 1, 0), label, str(result.out))
        self.model_box.setCurrentIndex(self.model_box.findData(str(result.out)))
        self.progress.setValue(PROGRESS_STEPS)
        show_info(f"Fine-tuned model written to {result.out}; it is selected in the model list.")
        self._set_running(False, f"fine-tuned: {result.out}")

    def _set_running(self, running: bool, message: str) -> None:
        self.finetune_button.setEnabled(not running)
        self.strokes_button.setEnabled(not running)
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        if running:
            self.progress.setValue(0)
        self.status.setText(message)

    def add_layers(self, result: Prediction, layer: Image) -> list[Any]:
        """Add (or update, when they exist) the P(membrane) image layer and the cells labels layer."""
        lead = len(result.first)
        scale = np.asarray(layer.scale)
        translate = np.asarray(layer.translate, dtype=float)
        translate[:lead] += np.asarray(result.first) * scale[:lead]
        model = result.metadata["unet_zoo"]["model"]
        common = dict(scale=scale, translate=translate, metadata=result.metadata)
        added = [
            self._put(
                f"{layer.name} P(membrane) [{model}]",
                result.membrane,
                "image",
                dict(colormap="magenta", opacity=0.6, blending="additive", contrast_limits=(0.0, 1.0), **common),
            )
        ]
        if result.labels is not None:
            added.append(self._put(f"{layer.name} cells [{model}]", result.labels, "labels", dict(opacity=0.4, **common)))
        if result.uncertainty is not None:
            added.append(
                self._put(
                    f"{layer.name} uncertainty [{model}]",
                    result.uncertainty,
                    "image",
                    dict(colormap="inferno", opacity=0.6, blending="additive", contrast_limits=(0.0, 1.0), **common),
                )
            )
        return added

    def _put(self, name: str, data: np.ndarray, kind: str, kwargs: dict[str, Any]) -> Any:
        if name in self.viewer.layers and self.viewer.layers[name].data.shape == data.shape:
            existing = self.viewer.layers[name]
            existing.data = data
            existing.metadata = kwargs["metadata"]
            existing.translate = kwargs["translate"]
            return existing
        adder = self.viewer.add_image if kind == "image" else self.viewer.add_labels
        return adder(data, name=name, **kwargs)


__all__ = ["SegmentWidget"]
