"""Segment a volume section by section into a Zarr store: IDs unique across the volume, resumable.

The input is a P(cell) volume (what `unet_zoo.predict_volume` writes: float32, or uint8 = P x 255), or an
image volume and a model: then the probabilities are predicted first (with `predict_volume`, resumable) into
``<out stem>-probabilities.zarr`` beside the output. Every section is segmented with `segment_blockwise`
(whole when it fits in one block) and written as uint32 IDs; section z's IDs follow those of sections
0..z-1, so they are unique in the volume. A finished section is recorded (with its number of cells) in a
marker file, so an interrupted run continues with the next section.

Resuming works in both stages: a rerun continues an unfinished prediction, reuses a finished one made with the
same model, settings and input (its settings and the input's fingerprint are recorded in the store), and
continues the segmentation. The probabilities stay a separate store beside the output (not inside it), so the
output is one plain uint32 array any Zarr reader opens; both stores are marked as unet_zoo's, and
``overwrite`` deletes only stores so marked (`unet_zoo.utils.files.check_replaceable`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import zarr  # the optional volumes extra (unet_zoo.volumes.io, imported below, says how to install it)
from torch import nn

from unet_zoo.inference.rescale import model_pixel_size, scale_factor
from unet_zoo.runtime.settings import Precision
from unet_zoo.segmentation.api import checkpoint_params, offset_ids
from unet_zoo.segmentation.blockwise import segment_blockwise
from unet_zoo.utils.files import atomic_write_bytes, check_output_path, check_replaceable, mark_owned
from unet_zoo.utils.segmentation_params import SegmentationParams
from unet_zoo.volumes.io import PROBABILITIES, check_not_nested, open_source
from unet_zoo.volumes.io import _read_info as _prediction_info
from unet_zoo.volumes.predict import predict_volume

ATTRS = "unet_zoo_segmentation"  # the output array's attribute: settings and completion
MARKERS = ".unet_zoo-sections"  # finished sections (file name = section, content = its number of cells)
SEGMENTATION = "volume segmentation"  # what an output store is marked as (unet_zoo.utils.files.mark_owned)


class _Section:
    """One (Y, X) section of a volume source, read window by window (what segment_blockwise indexes)."""

    def __init__(self, source: Any, z: int):
        self.source, self.z = source, z
        self.shape = source.shape[1:]

    def __getitem__(self, index: tuple[slice, slice]) -> np.ndarray:
        rows, cols = index
        return self.source.read(slice(self.z, self.z + 1), rows, cols)[0]


def probabilities_path(out: str | Path) -> Path:
    """Where `segment_volume` with a model keeps the predicted probabilities: ``<out stem>-probabilities.zarr``."""
    out = Path(out)
    return out.with_name(f"{out.name.removesuffix('.zarr')}-probabilities.zarr")


def check_volume_output(out: str | Path, *, overwrite: bool = False, resume: bool = True, predicts: bool = False) -> Path:
    """Check, before any work, that `segment_volume` can write `out` (and with `predicts` its probabilities store
    `probabilities_path(out)`); returns `out` resolved.

    Raises OSError subclasses from `unet_zoo.utils.files.check_output_path` (unwritable, a file in the way) and
    FileExistsError: an existing `out` that is not an unfinished segmentation to resume (without `overwrite`),
    or, with `overwrite`, that unet_zoo did not write as a segmentation; an existing probabilities store that
    unet_zoo did not write (it is never deleted, with or without `overwrite`).
    """
    out = check_output_path(Path(out), folder=True).resolve()
    if out.exists():
        info = _read_info(out)
        if overwrite:
            if info is None:
                check_replaceable(out, what=SEGMENTATION)
        elif info is None:
            try:
                check_replaceable(out, what=SEGMENTATION)
                advice = "choose another output path or pass --overwrite (overwrite=True) to replace it"
            except FileExistsError:
                advice = "choose another output path, or remove it yourself first (it is not a store unet_zoo wrote)"
            raise FileExistsError(f"{out} already exists; {advice}")
        elif info.get("complete"):
            raise FileExistsError(f"{out} already holds a finished segmentation; pass --overwrite (overwrite=True) to replace it")
        elif not resume:
            raise FileExistsError(f"{out} holds an unfinished segmentation; resume it or pass --overwrite to start again")
    if predicts:
        probabilities = check_output_path(probabilities_path(out), folder=True)
        if probabilities.exists() and _prediction_info(probabilities, "") is None:
            try:
                check_replaceable(probabilities, what=PROBABILITIES)
            except FileExistsError:
                raise FileExistsError(
                    f"{probabilities} exists and unet_zoo did not write it as a prediction; the segmentation of "
                    f"{out.name} keeps its probabilities there: choose another output path, or move that folder away"
                ) from None
    return out


def segment_volume(
    source: Any,
    out: str | Path,
    params: SegmentationParams | None = None,
    *,
    model: nn.Module | None = None,
    block: int = 1024,
    halo: int = 64,
    tta: bool = False,
    tile: int | None = None,
    batch_size: int = 4,
    device: str | None = None,
    overwrite: bool = False,
    resume: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
    workers: int | None = None,
    scheduler: Any = None,
    pixel_size: float | None = None,
    precision: Precision = "fp32",
) -> Path:
    """Segment a (Z, Y, X) or (Y, X) volume into a uint32 Zarr array at `out`; returns its path.

    Args:
        source: without `model`, P(cell) (a path or array `unet_zoo.volumes.io.open_source` reads: float in
            [0, 1] or uint8 = P x 255); with `model`, the image volume to predict first.
        params: segmentation parameters (default: the model's stored ones, else `SegmentationParams()`).
        block, halo: sections larger than `block` pixels are segmented blockwise with `halo` pixels of context.
        tta, tile, batch_size, device, precision: for the prediction (`predict_volume`), with `model` only.
        pixel_size: with `model`, nm per pixel of the image volume (default: its OME-Zarr scale). At another pixel
            size than the model's, the prediction is rescaled (`predict_volume`) and `params` (lengths and areas
            in the model's pixels, as for images) are converted to the volume's pixels (`SegmentationParams.coarser`).
        overwrite: replace an existing output (only a segmentation store unet_zoo wrote, or an empty folder).
            Otherwise an unfinished output with the same settings is resumed (`resume`), and anything else is an
            error. Either way a prediction made before with the same model, settings and input is reused, and the
            output is checked before any work (`check_volume_output`).
        progress: ``progress(stage, done, total)``: stage "predict" (blocks) or "segment" (sections).
        workers, scheduler: run on a dask.distributed cluster, as `predict_volume` does: a local one of `workers`
            processes, or an existing one (an address or a Client). The prediction runs there block by block and
            the sections are segmented there in parallel (into a temporary store beside `out`); the IDs are then
            made unique in the volume here. Workers must see `source` and `out` at the same paths.
    """
    if block < 1 or halo < 0:
        raise ValueError(f"block must be >= 1 and halo >= 0 pixels, got block={block}, halo={halo}")
    if scheduler is not None and workers is not None:
        raise ValueError("pass either scheduler (an existing cluster) or workers (a local cluster), not both")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out = check_volume_output(out, overwrite=overwrite, resume=resume, predicts=model is not None)
    p = params or checkpoint_params(model)
    if model is not None:
        image = open_source(source)
        check_not_nested(image, out)
        check_not_nested(image, probabilities_path(out))
        size = pixel_size or image.pixel_size_nm
        if size:
            p = p.coarser(scale_factor(size, model_pixel_size(model)))
        source = predict_volume(
            model,
            source,
            probabilities_path(out),
            tta=tta,
            tile=tile,
            batch_size=batch_size,
            device=device,
            overwrite=overwrite,
            resume=resume,
            reuse=True,  # a finished prediction with the same model, settings and input is kept: the rerun resumes
            progress=(lambda done, total: progress("predict", done, total)) if progress else None,
            workers=workers,
            scheduler=scheduler,
            pixel_size=pixel_size,
            precision=precision,
        )
    vol = open_source(source)
    check_not_nested(vol, out)
    if vol.dtype.kind not in "fu" or (vol.dtype.kind == "u" and vol.dtype != np.uint8):
        raise ValueError(f"{vol.description}: expected P(cell) as float or uint8 (P x 255), got {vol.dtype}")
    depth, height, width = vol.shape
    settings = json.loads(
        json.dumps(
            {"params": p.to_dict(), "block": block, "halo": halo, "source": vol.description, "input": vol.fingerprint()},
            default=str,
        )
    )
    array, counts = _open_output(out, vol, settings, block, overwrite=overwrite, resume=resume)
    markers = out / MARKERS
    markers.mkdir(exist_ok=True)
    if progress:
        progress("segment", len(counts), depth)
    local = None
    if (workers is not None or scheduler is not None) and len(counts) < depth:
        local = _segment_on_cluster(vol, [z for z in range(depth) if z not in counts], out, p, block, halo, workers, scheduler)
    for z in range(depth):
        if z in counts:
            continue
        offset = sum(counts[k] for k in range(z))
        if local is not None:  # segmented by a worker with IDs 1..n: here they only move past the earlier sections'
            labels = np.asarray(local[z] if vol.ndim == 3 else local[:, :])
        else:
            labels = segment_blockwise(_Section(vol, z), p, block=block, halo=halo)
        cells = int(labels.max())
        labels = offset_ids(labels, offset, f"{vol.description} (section {z})")
        if vol.ndim == 2:
            array[:, :] = labels
        else:
            array[z] = labels
        atomic_write_bytes(markers / str(z), str(cells))
        counts[z] = cells
        if progress:
            progress("segment", len(counts), depth)
    info = dict(array.attrs[ATTRS])
    info.update(complete=True, cells=int(sum(counts.values())))
    array.attrs[ATTRS] = info
    shutil.rmtree(markers, ignore_errors=True)
    shutil.rmtree(sections_path(out), ignore_errors=True)
    return out


def sections_path(out: Path) -> Path:
    """The temporary store where cluster workers put each section's cells (IDs 1..n) before they are numbered."""
    return out.with_name(f".{out.name}.sections")


def _segment_section(z: int, vol: Any, local: str, params: dict, block: int, halo: int) -> int:
    """On a worker: segment section `z` of `vol` (a VolumeSource: files reopen on the worker) into the temporary
    store `local`; returns its number of cells."""
    labels = segment_blockwise(_Section(vol, z), SegmentationParams.from_dict(params), block=block, halo=halo)
    array = zarr.open_array(local, mode="r+")
    if vol.ndim == 2:
        array[:, :] = labels
    else:
        array[z] = labels
    return int(labels.max())


def _segment_on_cluster(
    vol: Any, todo: list[int], out: Path, params: SegmentationParams, block: int, halo: int, workers: int | None, scheduler: Any
) -> Any:
    """Segment the sections `todo` on a dask cluster into `sections_path(out)`; returns that array (opened here)."""
    # dask.distributed is imported only for cluster runs (an optional, heavy dependency)
    from unet_zoo.volumes.cluster import connect

    depth, height, width = vol.shape
    shape = (height, width) if vol.ndim == 2 else (depth, height, width)
    chunks = (min(height, block), min(width, block)) if vol.ndim == 2 else (1, min(height, block), min(width, block))
    path = sections_path(out)
    if not path.exists():  # kept between attempts: a resumed run only segments what is missing
        zarr.create_array(str(path), shape=shape, chunks=chunks, dtype="uint32", fill_value=0)
    client, cluster = connect(scheduler, workers)
    try:
        source = client.scatter(vol, broadcast=True)  # once per worker, not once per section
        futures = client.map(
            _segment_section,
            todo,
            vol=source,
            local=str(path),
            params=params.to_dict(),
            block=block,
            halo=halo,
            pure=False,
        )
        client.gather(futures)
    finally:
        if client is not scheduler:
            client.close()
        if cluster is not None:
            cluster.close()
    return zarr.open_array(str(path), mode="r")


def _open_output(out: Path, vol: Any, settings: dict, block: int, *, overwrite: bool, resume: bool) -> tuple[Any, dict[int, int]]:
    """Create the output array, or reopen an unfinished one with the same settings; returns it and the finished
    sections' cell counts."""
    if out.exists():
        check_volume_output(out, overwrite=overwrite, resume=resume)  # again: the prediction took a while
        info = _read_info(out)
        if overwrite:
            shutil.rmtree(out)
        elif info is not None:
            differs = sorted(k for k in settings if info.get(k) != settings[k])
            if differs:
                raise FileExistsError(
                    f"{out} holds an unfinished segmentation made with other settings or input ({', '.join(differs)} "
                    "differ); run the same command as before to resume it, or pass --overwrite to start again"
                )
            array = zarr.open_array(str(out), mode="r+")
            markers = out / MARKERS
            done = {int(m.name): int(m.read_text()) for m in markers.iterdir() if m.name.isdigit()} if markers.is_dir() else {}
            return array, done
    depth, height, width = vol.shape
    shape = (height, width) if vol.ndim == 2 else (depth, height, width)
    chunks = (min(height, block), min(width, block)) if vol.ndim == 2 else (1, min(height, block), min(width, block))
    array = zarr.create_array(
        str(out), shape=shape, chunks=chunks, dtype="uint32", fill_value=0, attributes={ATTRS: {**settings, "complete": False}}
    )
    mark_owned(out, SEGMENTATION)
    return array, {}


def _read_info(path: Path) -> dict | None:
    """The settings a segmentation store records, or None when `path` is not one."""
    try:
        info = dict(zarr.open_array(str(path), mode="r").attrs).get(ATTRS)
    except Exception:  # noqa: BLE001  anything unreadable is "not a segmentation store"
        return None
    return info if isinstance(info, dict) else None


__all__ = ["SEGMENTATION", "check_volume_output", "probabilities_path", "sections_path", "segment_volume"]
