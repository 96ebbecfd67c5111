"""`Predictor`: one pipeline from an image to probabilities and cells, whatever the input and the front-end.

    predictor = Predictor("isbi-small", pixel_size=8.0)   # a model or what `from_pretrained` takes
    probs = predictor.predict("em.tif")                    # (C, H, W) or (S, C, H, W) float32, the image's grid
    cells = predictor.segment("em.tif")                    # (H, W) or (S, H, W) uint32, IDs unique in the stack

The steps, in this order and only here: read the input (`unet_zoo.data.reading.read_image`: a path, an array,
a dask or zarr array), rescale each section from its pixel size to the model's, predict it by overlap-tile
inference on the chosen path (backend and precision: `unet_zoo.exporters.paths.choose_inference_path`, the
fastest measured here for "auto"), segment it at the model's pixel size, move its cell IDs past those of the
sections before, and resize probabilities and cells back to the input's grid. Volumes too large for memory go
block by block into a Zarr store (`predict_volume`, `segment_volume`). The command line, the napari plugin,
fine-tuning's scores and the benchmarks all run this object, so the same image and settings give the same
numbers everywhere.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from unet_zoo.data.pixel_size import check_pixel_size
from unet_zoo.data.reading import Image, read_image
from unet_zoo.exporters.paths import choose_inference_path
from unet_zoo.hub.factory import from_pretrained
from unet_zoo.inference.rescale import model_pixel_size, rescale_stack, resize_probabilities, scale_factor
from unet_zoo.inference.tiling import predict_tiled, predict_uncertainty
from unet_zoo.models.provenance import provenance_of
from unet_zoo.runtime.measured import BACKENDS, InferenceChoice, Log, check_inference_path_env
from unet_zoo.runtime.settings import PRECISIONS
from unet_zoo.segmentation import SegmentationParams, checkpoint_params, segment_probabilities
from unet_zoo.segmentation.api import UniqueIds
from unet_zoo.utils.device import resolve_device

Index = tuple[int, ...]
Progress = Callable[[int, int, int, int], None]
"""``progress(section, sections, tiles_done, tiles)``: after each batch of tiles of the section-th of `sections`
sections (0-based); an exception it raises (e.g. to cancel) stops the prediction there."""
EXPORTED_BACKENDS = ("onnxruntime", "openvino")  # they run on the CPU


def check_settings(backend: str, precision: str, device: str | None = None) -> None:
    """ValueError for an unknown `backend` or `precision`, an exported backend on a GPU, onnxruntime in bf16, or a
    bad ``$UNET_ZOO_INFERENCE_PATH``; the messages name ``backend``, ``precision`` and ``device``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    if backend in EXPORTED_BACKENDS and device not in (None, "", "cpu"):
        raise ValueError(f"backend {backend} runs on the CPU; drop device {device} or use backend torch")
    if backend == "onnxruntime" and precision == "bf16":
        raise ValueError("backend onnxruntime runs in float32; use precision fp32 (or auto), or backend torch for bf16")
    check_inference_path_env()


def model_record(model: nn.Module) -> dict[str, Any]:
    """Where the model came from, for outputs' metadata (`unet_zoo.models.provenance.Provenance.as_dict`)."""
    return provenance_of(model).as_dict()


@dataclass
class Prediction:
    """What `Predictor.run` returns, on the input's grid. With ``lead`` the input's leading shape (() for a 2-D
    image, (S,) for a stack) or (N,) for N listed sections:

    - ``probabilities``: (*lead, C, H, W) float32 softmax probabilities (channel 1 = P(cell), 0 = P(membrane));
    - ``labels``: (*lead, H, W) uint32 cell IDs, unique across the sections (when segmented);
    - ``uncertainty``: (*lead, H, W) float32 entropy of the TTA mean in [0, 1] (when asked for);
    - ``sections``: the leading indices predicted; ``record``: what ran (see `Predictor.record`)."""

    probabilities: np.ndarray
    labels: np.ndarray | None
    uncertainty: np.ndarray | None
    sections: list[Index]
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def cell(self) -> np.ndarray:
        """(*lead, H, W) float32 P(cell)."""
        return self.probabilities[..., 1, :, :]

    @property
    def membrane(self) -> np.ndarray:
        """(*lead, H, W) float32 P(membrane)."""
        return self.probabilities[..., 0, :, :]


class Predictor:
    """A model ready to predict and segment images of any kind, with its settings fixed once.

    Args:
        model: a zoo model (`unet_zoo.from_pretrained`, `unet_zoo.create_model`) or anything
            `unet_zoo.from_pretrained` takes (a checkpoint name, a folder, a Hub id).
        backend: "auto" (the fastest path measured on this machine, cached), "torch", "onnxruntime" or
            "openvino" (exported, on the CPU; their extras must be installed).
        precision: "auto" (bf16 where it measured faster here), "bf16" or "fp32".
        tta: average over the 8 rotations and flips of each section.
        tile: input tile side in pixels (None: the model's default, shrunk for small images).
        batch_size: tiles per forward pass.
        pixel_size: nm per pixel of the images (None: what each file records, else the model's own);
            sections are rescaled to the model's pixel size for prediction and segmentation.
        device: where torch runs ("cpu", "cuda", ...; None: the model's device, for sources CUDA if available).
        log: called with a line when the inference paths are measured (the first run of an architecture here).

    Raises ValueError for unknown or contradictory settings, before any model is loaded.
    """

    def __init__(
        self,
        model: nn.Module | str,
        *,
        backend: str = "auto",
        precision: str = "auto",
        tta: bool = False,
        tile: int | None = None,
        batch_size: int = 4,
        pixel_size: float | None = None,
        device: str | None = None,
        log: Log | None = None,
    ) -> None:
        check_settings(backend, precision, device)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.backend, self.precision, self.tta, self.tile, self.batch_size = backend, precision, tta, tile, batch_size
        self.pixel_size = check_pixel_size(pixel_size, "pixel_size") if pixel_size is not None else None
        self.device, self.log = device, log
        on = "cpu" if backend in EXPORTED_BACKENDS else device
        self.spec: str | None  # what the model was loaded from, when given by name
        if isinstance(model, str):
            self.spec = model
            self.model = from_pretrained(model, device=resolve_device(on), allow_architecture=True)
        else:
            self.spec = None
            self.model = model.to(on) if on else model
        self._choice: InferenceChoice | None = None
        self._volume_choice: InferenceChoice | None = None

    def replace(self, **settings: Any) -> Predictor:
        """A copy with other `tta`, `tile`, `batch_size` or `pixel_size`, sharing the model and the inference path."""
        unknown = set(settings) - {"tta", "tile", "batch_size", "pixel_size"}
        if unknown:
            raise TypeError(f"replace() takes tta, tile, batch_size and pixel_size, not {', '.join(sorted(unknown))}")
        self.choice  # noqa: B018  chosen once, here, so that the copy shares it
        other = copy.copy(self)
        for name, value in settings.items():
            setattr(other, name, value)
        if settings.get("pixel_size") is not None:
            other.pixel_size = check_pixel_size(settings["pixel_size"], "pixel_size")
        if other.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {other.batch_size}")
        return other

    @classmethod
    def from_pretrained(cls, source: str, **settings: Any) -> Predictor:
        """A `Predictor` of the checkpoint `source` (what `unet_zoo.from_pretrained` takes); settings as `Predictor`."""
        return cls(source, **settings)

    # --- what runs ------------------------------------------------------------------------------------------

    @property
    def choice(self) -> InferenceChoice:
        """The inference path (backend, precision, device, and why), chosen on first use: measured once per
        architecture and machine for "auto" (`unet_zoo.exporters.paths.choose_inference_path`)."""
        if self._choice is None:
            self._choice = choose_inference_path(self.model, backend=self.backend, precision=self.precision, log=self.log)
        return self._choice

    @property
    def model_pixel_size(self) -> float:
        """nm per pixel the model was trained at (its card; ISBI 2012's 4 nm when it records none)."""
        return model_pixel_size(self.model)

    @property
    def params(self) -> SegmentationParams:
        """The segmentation defaults stored with the checkpoint, else the library's."""
        return checkpoint_params(self.model)

    def read(self, x: Any, pixel_size: float | None = None) -> Image:
        """`x` as an `Image` (`read_image`), its pixel size `pixel_size`, else this predictor's, else the file's."""
        size = pixel_size if pixel_size is not None else self.pixel_size
        return read_image(x, pixel_size=size)

    def scale(self, image: Image) -> float:
        """How much each section of `image` is enlarged to reach the model's pixel size (1.0: not rescaled);
        `PixelSizeError` naming where the pixel size came from when the rescaling is out of bounds."""
        if image.pixel_size_nm is None:
            return 1.0
        source = image.pixel_size_source or "the pixel size"
        return scale_factor(image.pixel_size_nm, self.model_pixel_size, source, shape=(image.shape[-2], image.shape[-1]))

    def record(self, image: Image | None = None) -> dict[str, Any]:
        """What ran, for outputs' metadata: the model's provenance, the inference path (backend, precision,
        device, timings), tta, tile and batch size, and the image's and the model's pixel sizes."""
        info: dict[str, Any] = {
            "model": {**model_record(self.model), **({"spec": self.spec} if self.spec else {})},
            "inference": self.choice.record(),
            "tta": self.tta,
            "tile": self.tile,
            "batch_size": self.batch_size,
            "model_pixel_size_nm": self.model_pixel_size,
        }
        if image is not None:
            info.update(pixel_size_nm=image.pixel_size_nm, pixel_size_source=image.pixel_size_source, scale=self.scale(image))
        return info

    # --- images and stacks ----------------------------------------------------------------------------------

    def predict(self, x: Any, *, pixel_size: float | None = None, progress: Progress | None = None) -> np.ndarray:
        """Probabilities of a (H, W) image or a (S, H, W) stack (a path, an array, a dask or zarr array):
        (C, H, W) or (S, C, H, W) float32 on the input's grid; channel 1 is P(cell)."""
        return self.run(x, pixel_size=pixel_size, progress=progress).probabilities

    def segment(
        self,
        x: Any,
        params: SegmentationParams | None = None,
        *,
        pixel_size: float | None = None,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """Cells of a (H, W) image or a (S, H, W) stack: (H, W) or (S, H, W) uint32 IDs 1..N, unique across the
        stack, on the input's grid. `params`: default the checkpoint's stored segmentation defaults."""
        labels = self.run(x, segment=params or True, pixel_size=pixel_size, progress=progress).labels
        assert labels is not None  # segment was asked for
        return labels

    def run(
        self,
        x: Any,
        *,
        segment: bool | SegmentationParams = False,
        uncertainty: bool = False,
        sections: list[Index] | None = None,
        pixel_size: float | None = None,
        progress: Progress | None = None,
    ) -> Prediction:
        """Predict, and with `segment` (True: the checkpoint's defaults, or given parameters) segment, the
        sections of `x`, one at a time (a lazy array is read section by section).

        `sections`: leading indices of the (H, W) sections to run (default: all; () for a 2-D image).
        `uncertainty`: also the entropy of the TTA mean (runs the 8 views whatever `tta` says). Each section is
        rescaled by `scale` for prediction and segmentation; probabilities go back bilinearly, cells by nearest
        neighbour. Cell IDs of each section follow those of the sections before it."""
        image = self.read(x, pixel_size)
        lead = image.shape[:-2]
        listed = sections is not None
        todo = sections if sections is not None else image.sections
        factor = self.scale(image)
        params = segment if isinstance(segment, SegmentationParams) else (self.params if segment else None)
        choice = self.choice
        probs, cells, spreads = [], [], []
        ids = UniqueIds(image.name)
        for number, index in enumerate(todo):
            section = image.section(index)
            shape = section.shape[-2:]
            scaled = rescale_stack(section[None], factor)[0] if factor != 1.0 else section
            report = None if progress is None else (lambda done, total, n=number: progress(n, len(todo), done, total))
            if uncertainty:
                p, spread = predict_uncertainty(
                    self.model,
                    scaled,
                    tile=self.tile,
                    batch_size=self.batch_size,
                    forward=choice.forward,
                    progress=report,
                    precision=choice.precision,
                )
            else:
                p = predict_tiled(
                    self.model,
                    scaled,
                    tile=self.tile,
                    batch_size=self.batch_size,
                    tta=self.tta,
                    forward=choice.forward,
                    progress=report,
                    precision=choice.precision,
                )
            if params is not None:
                cells.append(_resize_labels(ids(segment_probabilities(p, params)), shape))
            probs.append(resize_probabilities(p[None], shape)[0])
            if uncertainty:
                spreads.append(resize_probabilities(spread[None, None], shape)[0, 0])
        out_lead = (len(todo),) if listed else lead
        return Prediction(
            np.stack(probs).reshape(*out_lead, *probs[0].shape),
            np.stack(cells).reshape(*out_lead, *cells[0].shape) if cells else None,
            np.stack(spreads).reshape(*out_lead, *spreads[0].shape) if spreads else None,
            list(todo),
            self.record(image),
        )

    # --- volumes on disk ------------------------------------------------------------------------------------

    def predict_volume(self, source: Any, out: str | Path, **options: Any) -> Path:
        """P(cell) of a volume too large for memory, block by block into the Zarr store `out` (resumable; on a
        dask cluster with ``workers`` or ``scheduler``); returns `out`. Volumes run torch (backend "auto" or
        "torch") at this predictor's precision. `options` go to `unet_zoo.volumes.predict.predict_volume`
        (block, level, dtype, overwrite, workers, scheduler, progress, ...)."""
        from unet_zoo.volumes.predict import predict_volume  # lazy: the optional volumes extra (zarr, dask)

        return predict_volume(self.model, source, out, **self._volume_settings(), **options)

    def segment_volume(self, source: Any, out: str | Path, params: SegmentationParams | None = None, **options: Any) -> Path:
        """Cells of a volume, predicted block by block (`predict_volume`, into ``<out>-probabilities.zarr``) and
        segmented section by section into the Zarr store `out`, IDs unique in the volume (resumable); returns
        `out`. `options` go to `unet_zoo.segmentation.volume.segment_volume` (block, halo, overwrite, ...)."""
        from unet_zoo.segmentation.volume import segment_volume  # lazy: the optional volumes extra (zarr, dask)

        return segment_volume(source, out, params or self.params, model=self.model, **self._volume_settings(), **options)

    @property
    def volume_choice(self) -> InferenceChoice:
        """The inference path of volumes: torch at this predictor's precision ("auto": as measured here)."""
        if self.backend not in ("auto", "torch"):
            raise ValueError(f"volumes run with backend torch (or auto), not {self.backend}")
        if self._volume_choice is None:
            self._volume_choice = choose_inference_path(
                self.model, backend="torch", precision=self.precision, build_forward=False, log=self.log
            )
        return self._volume_choice

    def volume_scale(self, source: Any, level: int | None = None) -> tuple[float | None, float]:
        """(nm per pixel of a volume, how much its sections are enlarged to reach the model's pixel size): this
        predictor's `pixel_size`, else the volume's OME-Zarr scale (None and 1.0: not rescaled)."""
        size = self.pixel_size
        if size is None:
            from unet_zoo.volumes.io import open_source  # lazy: the optional volumes extra (zarr, dask)

            size = open_source(source, level).pixel_size_nm
        return size, scale_factor(size, self.model_pixel_size)

    def _volume_settings(self) -> dict[str, Any]:
        choice = self.volume_choice
        return dict(
            tta=self.tta,
            tile=self.tile,
            batch_size=self.batch_size,
            device=self.device,
            precision=choice.precision,
            pixel_size=self.pixel_size,
        )


def _resize_labels(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(h, w) cell IDs on the input's (H, W) grid by nearest neighbour (as they are when the sizes agree)."""
    if labels.shape == tuple(shape):
        return labels
    from skimage.transform import resize  # scikit-image: a core dependency, imported where it is used

    return resize(labels, shape, order=0, preserve_range=True, anti_aliasing=False).astype(np.uint32)


__all__ = ["Prediction", "Predictor", "Progress", "check_settings", "model_record"]
