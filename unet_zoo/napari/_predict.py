"""What the napari widget runs, without Qt: check a layer's data, load a model, predict it section by section.

The widget calls `predict_sections` in a worker thread; `progress` reports every batch of tiles and may raise
`Cancelled` to stop at the next tile. Sections are read one at a time (``np.asarray(data[index])``), so a lazy
dask or Zarr array is never loaded whole.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from unet_zoo.pipeline import Predictor
from unet_zoo.runtime.measured import InferenceChoice

Index = tuple[int, ...]
# (section done so far, sections, tiles done in this section, tiles in this section)
SectionProgress = Callable[[int, int, int, int], None]


class Cancelled(Exception):
    """The user cancelled the prediction; raised from the progress callback, so it stops at the next tile."""


@dataclass
class LoadedModel:
    """A model ready to predict: the name asked for and the `unet_zoo.Predictor` that runs it (its backend,
    precision and inference path chosen once, when the model is loaded)."""

    spec: str
    predictor: Predictor

    @property
    def model(self) -> nn.Module:
        return self.predictor.model

    @property
    def backend(self) -> str:
        """The backend that runs: "torch", "onnxruntime" or "openvino"."""
        return self.predictor.choice.backend

    @property
    def choice(self) -> InferenceChoice:
        return self.predictor.choice


@dataclass
class Prediction:
    """The output layers' data: P(membrane) (..., H, W) float32 and, when asked, labels (..., H, W) uint32 and the
    TTA uncertainty (..., H, W) float32, for the sections `first` onwards (all leading indices 0 when the whole
    stack was predicted)."""

    membrane: np.ndarray
    labels: np.ndarray | None
    first: Index
    metadata: dict[str, Any]
    uncertainty: np.ndarray | None = None


def check_image(data: Any, rgb: bool = False) -> None:
    """Refuse what the models cannot take, with what to do: RGB(A) images, empty layers, arrays of fewer than
    two dimensions, and dtypes other than uint8, uint16, bool and floats. Reads no pixels (lazy data stays lazy)."""
    shape = tuple(int(s) for s in getattr(data, "shape", ()))
    dtype = np.dtype(getattr(data, "dtype", np.float64))
    if rgb:
        raise ValueError(
            "this is an RGB(A) image; the models take one grey channel. Convert it to greyscale first "
            "(e.g. a new layer with data = image.mean(axis=-1))"
        )
    if len(shape) < 2:
        raise ValueError(f"the layer has shape {shape}; pick an image (H, W) or a stack of sections (..., H, W)")
    if 0 in shape:
        raise ValueError(f"the layer is empty (shape {shape}); pick a layer with pixels")
    if dtype.kind not in "fb" and dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"cannot predict {dtype} images; convert the layer to uint8, uint16 or float32 in [0, 1] "
            "(the models were trained on uint8 / 255)"
        )


def section_indices(shape: Sequence[int], current: Index | None = None) -> list[Index]:
    """The leading indices of the (H, W) sections to predict: every section of a (..., H, W) array, or only
    `current` (clipped into the array). A 2-D image has one section, ()."""
    lead = tuple(shape[:-2])
    if current is not None:
        return [tuple(min(max(int(i), 0), n - 1) for i, n in zip(current, lead))]
    return list(itertools.product(*(range(n) for n in lead)))


def load(spec: str, backend: str = "auto", precision: str = "auto") -> LoadedModel:
    """Load `spec` (anything `unet_zoo.from_pretrained` takes) as a `unet_zoo.Predictor` with `backend` and
    `precision`, as ``unet-zoo predict --backend --precision`` does: "onnxruntime" and "openvino" export the model
    and run it on the CPU, "torch" runs torch (CUDA if available), "auto" the fastest path measured here."""
    predictor = Predictor(spec, backend=backend, precision=precision)
    try:
        predictor.choice  # noqa: B018  chosen now, in the worker thread, not during the first section
    except (ImportError, ValueError):  # their messages name the extra to install, or what to choose
        raise
    except Exception as err:  # noqa: BLE001  the exporter rejects the model: say so, keep torch as the way out
        raise ValueError(f"cannot run {spec} with {backend} ({err}); choose the torch backend") from None
    return LoadedModel(spec, predictor)


def predict_sections(
    loaded: LoadedModel,
    data: Any,
    indices: list[Index],
    *,
    tta: bool = False,
    tile: int | None = None,
    segment_cells: bool = False,
    uncertainty: bool = False,
    pixel_size: float | None = None,
    progress: SectionProgress | None = None,
) -> Prediction:
    """P(membrane) and, with `segment_cells`, cells (with the checkpoint's stored parameters) of the sections
    `indices` of `data` (..., H, W), read one at a time: `unet_zoo.Predictor.run`, as every front-end runs it.

    Every listed section: the outputs have `data`'s shape. One section: the outputs have shape (1, ..., 1, H, W)
    and `first` says which section it is. Cell IDs are unique across the sections (each section's are offset by
    the largest ID before it). `progress(section, sections, tiles done, tiles)` is called after each batch of
    tiles; an exception it raises (e.g. `Cancelled`) stops the prediction there. `uncertainty`: also where the
    model is unsure (`unet_zoo.inference.tiling.predict_uncertainty`: entropy of the TTA mean; implies `tta`),
    a map of where to paint next. `pixel_size`: nm per pixel of `data` (None: the model's own): sections are
    rescaled to the model's pixel size and the outputs back to `data`'s grid.
    """
    lead = tuple(int(s) for s in data.shape[:-2])
    whole = len(indices) > 1 or lead == () or len(indices) == int(np.prod(lead))
    predictor = loaded.predictor.replace(tta=tta or uncertainty, tile=tile, pixel_size=pixel_size)
    result = predictor.run(data, segment=segment_cells, uncertainty=uncertainty, sections=indices, progress=progress)
    out_lead = lead if whole else (1,) * len(lead)

    def placed(values: np.ndarray | None) -> np.ndarray | None:
        return None if values is None else values.reshape(*out_lead, *values.shape[-2:])

    record = result.record
    metadata = {
        "unet_zoo": {
            "model": loaded.spec,
            **{k: v for k, v in record["model"].items() if k != "spec"},
            "backend": loaded.backend,
            "inference": record["inference"],
            "tta": predictor.tta,
            "tile": tile,
            "pixel_size_nm": record.get("pixel_size_nm"),
            "model_pixel_size_nm": record["model_pixel_size_nm"],
            "sections": "all" if whole else [list(i) for i in indices],
        }
    }
    first = (0,) * len(lead) if whole else indices[0]
    membrane = placed(np.ascontiguousarray(result.membrane))
    assert membrane is not None
    return Prediction(membrane, placed(result.labels), first, metadata, placed(result.uncertainty))


__all__ = ["Cancelled", "LoadedModel", "Prediction", "check_image", "load", "predict_sections", "section_indices"]
