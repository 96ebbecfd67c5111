"""Blockwise prediction of volumes of any size: Zarr / OME-Zarr / TIFF / dask / NumPy in, Zarr out.

The volume is cut into blocks of whole output chunks (one chunk deep along the section axis, about
`block` pixels in y and x). Each section of a block is predicted with `unet_zoo.inference.region.predict_region`,
which runs exactly the tiles `predict_tiled` would run over the whole section and reads only the pixels
they need (the block plus the model's context, mirrored at the volume's border). The result therefore
equals ``predict_tiled(model, section)`` up to float rounding, whatever the block size, while memory is
bounded by a block. Blocks run one after another in this process, or on a dask.distributed cluster
(`workers` starts a local one, `scheduler` joins an existing one), where each worker loads the model once.
Finished blocks are recorded, so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unet_zoo.data.pixel_size import check_pixel_size
from unet_zoo.hub.factory import from_pretrained
from unet_zoo.inference.region import predict_region
from unet_zoo.inference.rescale import (
    as_image_dtype,
    model_pixel_size,
    rescaled_length,
    sample_positions,
    sample_region,
    scale_factor,
)
from unet_zoo.inference.tiling import (
    NonFiniteImageError,
    Normalise,
    _check_tile,
    _resolve_device,
    choose_tile,
    inference_settings,
)
from unet_zoo.models.provenance import provenance_of
from unet_zoo.runtime.settings import Precision
from unet_zoo.utils.device import resolve_device
from unet_zoo.volumes.io import VolumeOutput, VolumeSource, check_not_nested, open_output, open_source

Progress = Callable[[int, int], None]
"""progress(blocks_done, blocks_total), called on the calling process after each finished block."""

DEFAULT_BLOCK = 2048  # px in y and x; less for deep chunks (see _default_block)
BLOCK_PIXELS = 1 << 26  # default block: at most 64 M output pixels (256 MB of float32)
DTYPES = ("float32", "uint8")


@dataclass(frozen=True)
class BlockPlan:
    """Blocks of a (Z, Y, X) volume: `block` = (bz, by, bx) pixels, the last ones cut at the volume's end."""

    shape: tuple[int, int, int]
    block: tuple[int, int, int]

    @property
    def grid(self) -> tuple[int, int, int]:
        return tuple(math.ceil(s / b) for s, b in zip(self.shape, self.block))  # type: ignore[return-value]

    def indices(self) -> list[tuple[int, int, int]]:
        nz, ny, nx = self.grid
        return [(z, y, x) for z in range(nz) for y in range(ny) for x in range(nx)]

    def region(self, index: tuple[int, int, int]) -> tuple[slice, slice, slice]:
        return tuple(  # type: ignore[return-value]
            slice(i * b, min((i + 1) * b, s)) for i, b, s in zip(index, self.block, self.shape)
        )

    @staticmethod
    def name(index: tuple[int, int, int]) -> str:
        return ".".join(str(i) for i in index)


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


def _default_block(depth: int) -> int:
    return min(DEFAULT_BLOCK, max(1, math.isqrt(BLOCK_PIXELS // max(1, depth))))


def plan_blocks(shape: tuple[int, int, int], unit: tuple[int, int, int] | None, block: int | None, min_block: int) -> BlockPlan:
    """Blocks of whole write units (`unit`: the output's chunks or shards, (Z, Y, X)) about `block` px wide.

    Without a unit (unchunked sources) blocks are one section deep and `block` px wide (the output's chunks
    are then the blocks). ValueError when `block` is below `min_block` (the model's tile output side).
    """
    _, height, width = shape
    side = _default_block(unit[0] if unit else 1) if block is None else int(block)
    if side < min(min_block, max(height, width)):
        raise ValueError(
            f"block {side} px is smaller than the model's tile ({min_block} output px): use a block of at least "
            f"{min_block} px (several tiles wide is faster: tiles crossing a block edge run for both blocks)"
        )
    if unit is None:
        return BlockPlan(shape, (1, min(height, side), min(width, side)))
    uz, uy, ux = unit
    return BlockPlan(shape, (min(uz, shape[0]), min(height, _round_up(side, uy)), min(width, _round_up(side, ux))))


@dataclass
class VolumeJob:
    """Everything a block needs except the model: picklable, shipped once to each dask worker."""

    source: VolumeSource
    output: VolumeOutput
    plan: BlockPlan
    tile: int | None
    tta: bool
    batch_size: int
    channel: int
    dtype: str
    normalise: Normalise
    amp: bool = False
    precision: Precision | None = None  # "bf16" / "fp32", resolved once by predict_volume for every worker
    pixel_size: float | None = None  # nm/px of the source when it is rescaled to the model's pixel size, else None
    model_pixel_size: float | None = None

    def predict(self, model: nn.Module, index: tuple[int, int, int]) -> np.ndarray:
        """The (bz, by, bx) output block `index`, in the output dtype; NaN or infinite input pixels are a
        NonFiniteImageError naming the input and the sections, rows and columns of the block."""
        try:
            if self.pixel_size is not None:
                return self._predict_rescaled(model, index)
            return self._predict_plain(model, index)
        except NonFiniteImageError as err:
            zs, ys, xs = self.plan.region(index)
            raise NonFiniteImageError(
                f"{self.source.path or 'the input volume'}, sections {zs.start}-{zs.stop - 1}, rows {ys.start}-{ys.stop - 1}, "
                f"columns {xs.start}-{xs.stop - 1}: {err}"
            ) from None

    def _predict_plain(self, model: nn.Module, index: tuple[int, int, int]) -> np.ndarray:
        zs, ys, xs = self.plan.region(index)
        _, height, width = self.plan.shape
        loaded: dict[tuple, np.ndarray] = {}

        def reader(z: int):
            def read(rows: slice, cols: slice) -> np.ndarray:  # the whole block's input, read once
                key = (rows.start, rows.stop, cols.start, cols.stop)
                if key not in loaded:
                    loaded.clear()
                    loaded[key] = self.source.read(zs, rows, cols)
                return loaded[key][z - zs.start]

            return read

        values = np.empty((zs.stop - zs.start, ys.stop - ys.start, xs.stop - xs.start), dtype=self.dtype)
        for z in range(zs.start, zs.stop):
            probs = self._region_probabilities(model, reader(z), (height, width), ys, xs)
            values[z - zs.start] = self._output_values(probs)
        return values

    def _region_probabilities(
        self, model: nn.Module, read: Callable[[slice, slice], np.ndarray], shape: tuple[int, int], rows: slice, cols: slice
    ) -> np.ndarray:
        """`predict_region` of rows x cols of a section of `shape` read by `read`, with this job's settings:
        the output channel's (len(rows), len(cols)) probabilities."""
        return predict_region(
            model,
            read,
            shape,
            (rows.start, rows.stop),
            (cols.start, cols.stop),
            tile=self.tile,
            batch_size=self.batch_size,
            tta=self.tta,
            normalise=self.normalise,
            amp=self.amp,
            precision=self.precision,
        )[self.channel]

    def _output_values(self, probs: np.ndarray) -> np.ndarray:
        """Probabilities as the output stores them: float32, or uint8 = probability x 255, rounded."""
        return probs if self.dtype == "float32" else np.clip(np.rint(probs * 255), 0, 255)

    def _predict_rescaled(self, model: nn.Module, index: tuple[int, int, int]) -> np.ndarray:
        """Block `index` of a source at another pixel size, equal to the same block of `predict_at_pixel_size` of
        the whole section: the section rescaled to the model's pixel size is a virtual image read region by
        region (`sample_region`), `predict_region` runs the tiles the block needs on it, and the probabilities
        are resized back to the block's pixels from the model-grid rows and columns around them."""
        assert self.pixel_size is not None and self.model_pixel_size is not None
        zs, ys, xs = self.plan.region(index)
        _, height, width = self.plan.shape
        factor = self.pixel_size / self.model_pixel_size
        grid = (rescaled_length(height, factor), rescaled_length(width, factor))
        rows, cols = _grid_span(ys, height, grid[0]), _grid_span(xs, width, grid[1])
        values = np.empty((zs.stop - zs.start, ys.stop - ys.start, xs.stop - xs.start), dtype=self.dtype)
        for z in range(zs.start, zs.stop):

            def read_source(r: slice, c: slice, z: int = z) -> np.ndarray:
                return self.source.read(slice(z, z + 1), r, c)[0]

            def read_rescaled(r: slice, c: slice) -> np.ndarray:
                region = sample_region(read_source, (height, width), grid, r, c, factor)
                return as_image_dtype(region, self.source.dtype)

            probs = self._region_probabilities(model, read_rescaled, grid, rows, cols)

            def read_probabilities(r: slice, c: slice, p: np.ndarray = probs) -> np.ndarray:
                return p[r.start - rows.start : r.stop - rows.start, c.start - cols.start : c.stop - cols.start]

            back = sample_region(read_probabilities, grid, (height, width), ys, xs, 1.0)
            values[z - zs.start] = self._output_values(back)
        return values

    def run(self, model: nn.Module, index: tuple[int, int, int]) -> str:
        """Predict, write and mark block `index` finished; returns its name."""
        values = self.predict(model, index)
        self.output.write(*self.plan.region(index), values)
        name = BlockPlan.name(index)
        self.output.mark_done(name)  # after the write: a block without a marker is computed again
        return name


def _grid_span(span: slice, length: int, grid_length: int) -> slice:
    """The rows (or columns) of the rescaled grid that resizing `span` of an axis of `length` px back reads."""
    positions = sample_positions(span.start, span.stop, length, grid_length)
    return slice(max(0, int(np.floor(positions[0]))), min(grid_length, int(np.floor(positions[-1])) + 2))


def model_provenance(model: nn.Module) -> dict[str, Any]:
    """Which model made a prediction: architecture, arguments, checkpoint, revision and weights sha256 (or None)."""
    record = provenance_of(model)
    built = record.kind == "built"
    return {
        "model": record.architecture,
        "model_args": dict(record.args) if record.args else None,
        "checkpoint": None if built else record.checkpoint or record.source,
        "revision": record.revision,
        "sha256": record.sha256,
    }


def state_sha256(model: nn.Module) -> str:
    """Hex sha256 of the model's parameters and buffers (names, dtypes, shapes, bytes): the weights actually used."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _write_unit(source: VolumeSource) -> tuple[int, int, int] | None:
    unit = source.shards or source.chunks
    return None if unit is None else ((1, *unit) if len(unit) == 2 else tuple(unit))  # type: ignore[return-value]


def predict_volume(
    model: nn.Module | str,
    source: Any,
    out: str | Path,
    *,
    block: int | None = None,
    tile: int | None = None,
    tta: bool = False,
    dtype: str = "float32",
    overwrite: bool = False,
    resume: bool = True,
    reuse: bool = False,
    scheduler: Any = None,
    workers: int | None = None,
    level: int | None = None,
    progress: Progress | None = None,
    batch_size: int = 4,
    channel: int = 1,
    device: str | None = None,
    normalise: Normalise = "auto",
    memory_limit: str | float | None = "auto",
    precision: Precision = "fp32",
    pixel_size: float | None = None,
) -> Path:
    """Cell probabilities of a 2-D or 3-D volume of any size, written to a Zarr array at `out`.

    Args:
        model: a zoo model, or a source for `unet_zoo.from_pretrained` (or an architecture name: random weights, with a warning).
        source: Zarr v2/v3 array or group path, OME-Zarr group (level `level`, default 0), TIFF stack path,
            zarr.Array, dask or NumPy array; (Z, Y, X) sections or one (Y, X) section; uint8/uint16/float
            pixels as for `predict_tiled` (`normalise`).
        out: output path. A Zarr array like the input (format, chunks, shards); an OME-Zarr group with the
            array as level "0" and the input's axes and scale when the input was OME-Zarr.
        block: block side in y and x in pixels, rounded up to whole output chunks (default: 2048, less for
            chunks many sections deep); at least the model's tile output side.
        tile, tta, batch_size, normalise: as for `predict_tiled`: the result equals
            ``predict_tiled(model, section, tile=tile, tta=tta)[channel]`` for every section, up to float rounding.
        dtype: "float32" (probabilities) or "uint8" (probability x 255, rounded).
        overwrite: replace an existing output (a Zarr store). Otherwise an existing output is an error,
            unless it is an unfinished run with the same settings and the same input (shape, dtype, chunks
            and a digest of its files' sizes and modification times, or of an in-memory array's bytes) and
            `resume` is true: then only the blocks not yet finished are computed. Only a store unet_zoo wrote
            as a prediction (or an empty folder) is ever deleted; anything else at `out` is left alone
            (FileExistsError). An output inside the input, or holding it, is refused (ValueError).
        reuse: keep an existing output made with the same settings from the same input, finished or not, even
            with `overwrite`: a finished one is returned as it is (nothing computed, nothing written), an
            unfinished one is continued. `segment_volume` uses this to resume after its prediction stage.
        scheduler: address of a dask.distributed scheduler ("tcp://host:8786") or a distributed.Client;
            workers must see `source` and `out` at the same paths.
        workers: start a local dask cluster of this many processes (one thread each).
        progress: ``progress(blocks_done, blocks_total)`` after each block (and once at the start).
        channel: output class channel (1: cell for the zoo's EM models).
        device: where to run (default: the model's device; "cuda" if available for specs and on workers).
        memory_limit: per-worker memory limit of a local cluster (dask's format, e.g. "2GiB").
        precision: "fp32", "bf16" or "auto" as for `predict_tiled`, decided once for the model's device and
            used by every worker; the output's attributes record it ("bf16" or "fp32").
        pixel_size: nm per pixel of the source (default: an OME-Zarr level's scale, if it has one). When it
            differs from the model's (`unet_zoo.inference.rescale.model_pixel_size`), sections are rescaled to
            the model's pixel size, predicted and resized back; the output keeps the source's grid and equals
            ``predict_at_pixel_size(model, section, pixel_size)[channel]`` for every section, block by block.

    Returns:
        The output path.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if scheduler is not None and workers is not None:
        raise ValueError("pass either scheduler (an existing cluster) or workers (a local cluster), not both")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(model, str):
        model = from_pretrained(model, device=resolve_device(device), allow_architecture=True)
    elif device is not None:
        model.to(device)
    model.eval()
    vol = open_source(source, level)
    check_not_nested(vol, out)
    in_channels, classes = int(getattr(model, "in_channels", 1)), int(getattr(model, "num_classes", 2))
    if in_channels != 1:
        raise ValueError(f"volumes are single-channel sections; this model takes {in_channels} input channels")
    if not 0 <= channel < classes:
        raise ValueError(f"channel {channel} does not exist: the model predicts {classes} classes")
    _, height, width = vol.shape
    source_pixel_size = check_pixel_size(pixel_size, "pixel_size") if pixel_size is not None else vol.pixel_size_nm
    target_pixel_size = model_pixel_size(model)
    where = "pixel_size" if pixel_size is not None else f"the pixel size of {vol.path or 'the volume'}"
    rescaled = scale_factor(source_pixel_size, target_pixel_size, where, shape=(height, width)) != 1.0
    used_precision = inference_settings(_resolve_device(model, None), precision=precision, model=model).precision
    used_tile = choose_tile(model, height, width, tile)
    unit = _write_unit(vol)
    plan = plan_blocks(vol.shape, unit, block, _check_tile(model, used_tile))
    if unit is None:
        chunks: tuple[int, ...] = plan.block[-vol.ndim :]
    else:
        chunks = vol.chunks
    settings = json.loads(
        json.dumps(
            {
                **model_provenance(model),
                "state_sha256": state_sha256(model),  # resuming with other weights (a checkpoint or not) is refused
                "source": vol.description,
                "input": vol.fingerprint(),  # resuming onto a changed input (rewritten chunks) is refused
                "shape": list(vol.shape[-vol.ndim :]),
                "tile": used_tile,
                "tta": tta,
                "precision": used_precision,
                "channel": channel,
                "dtype": dtype,
                "block": list(plan.block),
                "normalise": normalise if isinstance(normalise, str) else "callable",
                "pixel_size_nm": source_pixel_size if rescaled else None,  # rescaled from this to the model's
                "model_pixel_size_nm": target_pixel_size if rescaled else None,
            },
            default=str,
        )
    )
    client = cluster = None
    if scheduler is not None or workers is not None:
        # dask.distributed is imported only for cluster runs (an optional, heavy dependency)
        from unet_zoo.volumes.cluster import connect

        client, cluster = connect(scheduler, workers, memory_limit)  # fails fast, before anything is written
    try:
        output, done = open_output(out, vol, chunks, vol.shards, dtype, settings, overwrite=overwrite, resume=resume, reuse=reuse)
        if output.finished:  # reused as it is: not even its attributes are written (they are the input of a resume)
            if progress is not None:
                progress(len(plan.indices()), len(plan.indices()))
            return Path(output.path)
        _run(
            VolumeJob(
                vol,
                output,
                plan,
                tile,
                tta,
                batch_size,
                channel,
                dtype,
                normalise,
                precision=used_precision,
                pixel_size=source_pixel_size if rescaled else None,
                model_pixel_size=target_pixel_size if rescaled else None,
            ),
            model,
            done,
            progress,
            client,
            device,
            local_workers=workers if cluster is not None else None,
        )
    finally:
        if client is not None and client is not scheduler:  # ours: a Client of an address or of a local cluster
            client.close()
        if cluster is not None:
            cluster.close()
    output.complete()
    return Path(output.path)


def _run(
    job: VolumeJob,
    model: nn.Module,
    done: set[str],
    progress: Progress | None,
    client: Any,
    device: str | None,
    local_workers: int | None,
) -> None:
    plan = job.plan
    todo = [i for i in plan.indices() if BlockPlan.name(i) not in done]
    total = len(plan.indices())
    finished = total - len(todo)
    if progress is not None:
        progress(finished, total)

    def advance() -> None:
        nonlocal finished
        finished += 1
        if progress is not None:
            progress(finished, total)

    if client is None:
        for index in todo:
            job.run(model, index)
            advance()
    else:
        from unet_zoo.volumes.cluster import run_on_cluster  # dask.distributed: optional

        run_on_cluster(job, model, todo, advance, client, device=device, local_workers=local_workers)


__all__ = ["BlockPlan", "VolumeJob", "model_provenance", "plan_blocks", "predict_volume"]
