"""What the napari widget runs, without Qt: check a layer's data, load a model, predict it section by section.

The widget calls `predict_sections` in a worker thread; `progress` reports every batch of tiles and may raise
`Cancelled` to stop at the next tile. Sections are read one at a time (``np.asarray(data[index])``), so a lazy
dask or Zarr array is never loaded whole.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from unet_zoo.exporters.paths import choose_inference_path
from unet_zoo.hub.factory import from_pretrained
from unet_zoo.inference.tiling import Forward, predict_tiled, predict_uncertainty
from unet_zoo.models.provenance import provenance_of
from unet_zoo.runtime.measured import InferenceChoice
from unet_zoo.segmentation import checkpoint_params, segment
from unet_zoo.utils.device import resolve_device

from ._choices import BACKENDS

Index = tuple[int, ...]
# (section done so far, sections, tiles done in this section, tiles in this section)
SectionProgress = Callable[[int, int, int, int], None]


class Cancelled(Exception):
    """The user cancelled the prediction; raised from the progress callback, so it stops at the next tile."""


@dataclass
class LoadedModel:
    """A model ready to predict: the torch module (which also gives the tiling geometry), the `forward`
    that runs its tiles (None: torch), the backend that runs, the provenance the output layers carry, and the
    inference path chosen (`unet_zoo.runtime.measured.InferenceChoice`; None: torch float32)."""

    spec: str
    model: nn.Module
    forward: Forward | None
    backend: str
    provenance: dict[str, Any] = field(default_factory=dict)
    choice: InferenceChoice | None = None


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


def provenance(model: nn.Module, spec: str) -> dict[str, Any]:
    """Which weights made a prediction: the name asked for, architecture, checkpoint source, revision, sha256."""
    record = provenance_of(model)
    return {
        "model": spec,
        "architecture": record.architecture,
        "checkpoint": None if record.kind == "built" else record.checkpoint or record.source,
        "revision": record.revision,
        "sha256": record.sha256,
    }


def load(spec: str, backend: str = "auto") -> LoadedModel:
    """Load `spec` (anything `unet_zoo.from_pretrained` takes) for `backend`, as ``unet-zoo predict --backend``
    picks it (`unet_zoo.exporters.paths.choose_inference_path`): "onnxruntime" and "openvino" export the model and
    run it on the CPU, "torch" runs torch (CUDA if available), "auto" the fastest path measured on this machine."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    device = resolve_device("cpu" if backend in ("onnxruntime", "openvino") else None)
    model = from_pretrained(spec, device=device, allow_architecture=True)
    try:
        choice = choose_inference_path(model, backend=backend)
    except (ImportError, ValueError):  # their messages name the extra to install, or what to choose
        raise
    except Exception as err:  # noqa: BLE001  the exporter rejects the model: say so, keep torch as the way out
        raise ValueError(f"cannot run {spec} with {backend} ({err}); choose the torch backend") from None
    return LoadedModel(spec, model, choice.forward, choice.backend, provenance(model, spec), choice)


def predict_sections(
    loaded: LoadedModel,
    data: Any,
    indices: list[Index],
    *,
    tta: bool = False,
    tile: int | None = None,
    segment_cells: bool = False,
    uncertainty: bool = False,
    progress: SectionProgress | None = None,
) -> Prediction:
    """P(membrane) (channel 0 of `predict_tiled`) and, with `segment_cells`, cells (`unet_zoo.segment` with the
    checkpoint's stored parameters) of the sections `indices` of `data` (..., H, W), read one at a time.

    Every listed section: the outputs have `data`'s shape. One section: the outputs have shape (1, ..., 1, H, W)
    and `first` says which section it is. Cell IDs are unique across the sections (each section's are offset by
    the largest ID before it). `progress(section, sections, tiles done, tiles)` is called after each batch of
    tiles; an exception it raises (e.g. `Cancelled`) stops the prediction there. `uncertainty`: also where the
    model is unsure (`unet_zoo.inference.tiling.predict_uncertainty`: entropy of the TTA mean; implies `tta`),
    a map of where to paint next.
    """
    height, width = (int(s) for s in data.shape[-2:])
    lead = tuple(int(s) for s in data.shape[:-2])
    whole = len(indices) > 1 or lead == () or len(indices) == int(np.prod(lead))
    out_lead = lead if whole else (1,) * len(lead)
    membrane = np.zeros((*out_lead, height, width), dtype=np.float32)
    labels = np.zeros((*out_lead, height, width), dtype=np.uint32) if segment_cells else None
    spread = np.zeros((*out_lead, height, width), dtype=np.float32) if uncertainty else None
    tta = tta or uncertainty
    params = checkpoint_params(loaded.model)
    next_id = 0
    for number, index in enumerate(indices):
        image = np.asarray(data[index]) if index else np.asarray(data)
        report = None if progress is None else (lambda done, total, number=number: progress(number, len(indices), done, total))
        target = index if whole else (0,) * len(lead)
        precision = loaded.choice.precision if loaded.choice is not None else "fp32"
        if spread is not None:
            probs, spread[target] = predict_uncertainty(
                loaded.model, image, tile=tile, batch_size=1, forward=loaded.forward, progress=report, precision=precision
            )
        else:
            probs = predict_tiled(
                loaded.model,
                image,
                tile=tile,
                tta=tta,
                batch_size=1,
                forward=loaded.forward,
                progress=report,
                precision=precision,
            )
        membrane[target] = probs[0]
        if labels is not None:
            cells = segment(probs, params=params)
            labels[target] = np.where(cells > 0, cells + next_id, 0)
            next_id += int(cells.max(initial=0))
    metadata = {
        "unet_zoo": {
            **loaded.provenance,
            "backend": loaded.backend,
            "inference": loaded.choice.record() if loaded.choice is not None else None,
            "tta": tta,
            "tile": tile,
            "sections": "all" if whole else [list(i) for i in indices],
        }
    }
    first = (0,) * len(lead) if whole else indices[0]
    return Prediction(membrane, labels, first, metadata, spread)


__all__ = ["Cancelled", "LoadedModel", "Prediction", "check_image", "load", "predict_sections", "provenance", "section_indices"]
