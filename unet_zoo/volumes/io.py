"""Volumes on disk for blockwise prediction: open a source, create (or reopen) the output, record finished blocks.

Sources: a Zarr v2/v3 array or group path (OME-Zarr: a chosen resolution level), a zarr.Array, a
(memory-mapped) TIFF stack, a dask or NumPy array; 2-D (Y, X) or 3-D (Z, Y, X), sections along the first
axis. Files are opened by the one image reader, `unet_zoo.data.reading.read_image` (lazily; shape, axes and
pixel size checked there). `VolumeSource` is picklable and opens its file lazily, once per process, so dask
workers read the blocks they need themselves.

Output: a Zarr array (or, for an OME-Zarr input, an OME-Zarr group with that array as level "0") of
the same format and chunks as the input, its attributes saying what produced it. A block is finished
when its marker file exists (written atomically after the block's chunks); the markers go when the run
completes and the attribute ``unet_zoo.complete`` becomes true.
"""

from __future__ import annotations

import hashlib
import itertools
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unet_zoo._version import __version__
from unet_zoo.data.reading import ImageMetadataError, read_image
from unet_zoo.utils.files import atomic_write_bytes, check_replaceable, mark_owned

try:
    import zarr
except ImportError as _err:  # the optional extra: keep the message actionable
    raise ImportError('volume prediction needs zarr and dask: pip install "unet-zoo[volumes]"') from _err

MARKERS = ".unet_zoo-blocks"  # folder of finished-block markers inside the output store, removed at completion
ATTRS = "unet_zoo"  # the output array's attribute holding provenance and the run's settings
PROBABILITIES = "volume probabilities"  # what an output store is marked as (unet_zoo.utils.files.mark_owned)


class VolumeInputError(ValueError):
    """The input volume is broken (unreadable chunk, bad metadata): the message says what and where.

    Running again does not help; resuming is for interruptions only.
    """


def _files_digest(folder: Path) -> str:
    """Hex sha256 of the names, sizes and modification times of every file under `folder` (chunks and metadata):
    changes whenever a chunk is rewritten, without reading the pixels."""
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        info = file.stat()
        digest.update(f"{file.relative_to(folder).as_posix()}:{info.st_size}:{info.st_mtime_ns};".encode())
    return digest.hexdigest()


def check_not_nested(source: VolumeSource, out: str | Path) -> None:
    """ValueError when the output `out` is the input `source`, lies inside it, or holds it.

    An output inside the input changes the input (and its fingerprint, so the run could never resume), and
    replacing an output that holds the input would delete the input; both are refused before any work.
    """
    if not source.path:
        return
    src, path = Path(source.path).resolve(), Path(out).expanduser().resolve()
    if path == src:
        raise ValueError(f"the output {path} is the input; choose another output path")
    if path.is_relative_to(src):
        raise ValueError(f"the output {path} is inside the input {src}; choose an output path outside the input")
    if src.is_relative_to(path):
        raise ValueError(f"the output {path} holds the input {src}; choose another output path")


# --- sources --------------------------------------------------------------------------------------


@dataclass
class VolumeSource:
    """A 2-D or 3-D image volume read block by block; `shape` is always (Z, Y, X) (Z = 1 for 2-D sources).

    A file source is opened with `unet_zoo.data.reading.read_image` (lazily) in each process that reads it."""

    kind: str  # "zarr" (a store path), "file" (a TIFF, PNG, ... path), "array" (in memory: NumPy, dask, zarr.Array)
    description: str
    shape: tuple[int, int, int]
    dtype: np.dtype
    ndim: int  # 2 or 3: the source's own dimensionality (the output has the same)
    chunks: tuple[int, ...] | None = None  # the source's chunks / shards (source dimensionality), if chunked
    shards: tuple[int, ...] | None = None
    zarr_format: int | None = None
    ome: dict[str, Any] | None = None  # OME-Zarr metadata to copy: {"wrapper", "multiscales", "dataset"}
    path: str | None = None
    key: str = ""  # array path inside a Zarr store
    array: Any = field(default=None, repr=False)  # in-memory arrays (pickled with the source), or the opened handle
    level: int | None = None  # the OME-Zarr resolution level read
    pixel_size_nm: float | None = None  # nm per pixel the file records (TIFF resolution tags, OME-Zarr scale), or None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self.kind != "array":
            state["array"] = None  # files are reopened in each process
        return state

    def _open(self):
        if self.array is None:
            self.array = read_image(self.path, level=self.level, lazy=True).pixels
        return self.array

    def read(self, z: slice, rows: slice, cols: slice) -> np.ndarray:
        """Raw pixels [z, rows, cols] as a (z, rows, cols) NumPy array, in the source's dtype.

        Raises VolumeInputError naming the input and the unreadable chunk (or region) when the data is broken.
        """
        try:
            return self._read(z, rows, cols)
        except Exception as err:  # noqa: BLE001  codecs and stores raise anything for a damaged chunk
            raise VolumeInputError(self._damage_message(z, rows, cols, err)) from None

    def _read(self, z: slice, rows: slice, cols: slice) -> np.ndarray:
        array = self._open()
        region = array[rows, cols][None] if self.ndim == 2 else array[z, rows, cols]
        if hasattr(region, "compute"):  # dask: computed here, in this process / worker task
            region = region.compute(scheduler="sync")
        return np.asarray(region)

    def _broken_chunk(self, z: slice, rows: slice, cols: slice) -> tuple[int, int, int] | None:
        """(z, y, x) of the first pixel of the first chunk in the region that cannot be read, or None."""
        if not self.chunks:
            return None
        cz, cy, cx = (1, *self.chunks) if self.ndim == 2 else self.chunks
        starts = itertools.product(
            range(z.start // cz * cz, z.stop, cz),
            range(rows.start // cy * cy, rows.stop, cy),
            range(cols.start // cx * cx, cols.stop, cx),
        )
        for pz, py, px in starts:
            try:
                self._read(slice(pz, pz + 1), slice(py, py + 1), slice(px, px + 1))
            except Exception:  # noqa: BLE001  this chunk is the broken one
                return pz, py, px
        return None

    def _damage_message(self, z: slice, rows: slice, cols: slice, err: Exception) -> str:
        """What is broken and where: the first unreadable chunk of the region (or the region itself)."""
        where = f"z {z.start}:{z.stop}, y {rows.start}:{rows.stop}, x {cols.start}:{cols.stop}"
        corner = self._broken_chunk(z, rows, cols)
        if corner is not None and self.chunks:
            units = (1, *self.chunks) if self.ndim == 2 else self.chunks
            index = [c // u for c, u in zip(corner, units)][3 - self.ndim :]
            where = f"chunk {'.'.join(map(str, index))} (from pixel z {corner[0]}, y {corner[1]}, x {corner[2]})"
        first = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
        return (
            f"cannot read the input {self.description} at {where}: {type(err).__name__}{': ' + first if first else ''}; "
            "the input is damaged there: repair or re-export it (running again will not help)"
        )

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this input for resuming: shape, dtype, chunks and a digest of its data (for files: of
        their names, sizes and modification times; None when it cannot be known, e.g. a zarr array in memory)."""
        digest: str | None = None
        if self.kind == "zarr" and self.path:
            digest = _files_digest(Path(self.path, self.key))
        elif self.kind == "file" and self.path:
            info = Path(self.path).stat()
            digest = hashlib.sha256(f"{info.st_size}:{info.st_mtime_ns}".encode()).hexdigest()
        elif isinstance(self.array, np.ndarray):
            digest = hashlib.sha256(np.ascontiguousarray(self.array).view(np.uint8).data).hexdigest()
        elif hasattr(self.array, "compute") and hasattr(self.array, "name"):  # dask: the graph's token names the data
            digest = hashlib.sha256(str(self.array.name).encode()).hexdigest()
        elif getattr(getattr(self.array, "store", None), "root", None) is not None:  # zarr.Array on a local store
            digest = _files_digest(Path(self.array.store.root, self.array.path))
        return {
            "shape": list(self.shape[-self.ndim :]),
            "dtype": str(self.dtype),
            "chunks": list(self.chunks) if self.chunks else None,
            "digest": digest,
        }


def _check_dims(shape: tuple[int, ...], what: str) -> None:
    if len(shape) not in (2, 3):
        raise ValueError(
            f"{what} has shape {tuple(shape)}: expected a stack of sections (Z, Y, X) or one section (Y, X); "
            "select a channel / time point first (e.g. array[0])"
        )
    if min(shape) < 1:
        raise ValueError(f"{what} is empty: shape {tuple(shape)}")


def _zyx(shape: tuple[int, ...]) -> tuple[int, int, int]:
    return (1, *shape) if len(shape) == 2 else tuple(int(s) for s in shape)  # type: ignore[return-value]


def _open_path(path: Path, level: int | None) -> VolumeSource:
    """A VolumeSource for a file or store, opened (and checked) by `read_image` without reading its pixels."""
    try:
        image = read_image(path, level=level, lazy=True)
    except ImageMetadataError as err:  # broken metadata: running again will not help
        raise VolumeInputError(str(err)) from None
    pixels = image.pixels
    store = isinstance(pixels, zarr.Array) and path.is_dir()
    if store and image.ome is None and pixels.path:  # read_image took the one array of a plain group
        raise ValueError(
            f"{path} is a Zarr group without OME-Zarr multiscales metadata; it holds the array {pixels.path}: "
            f"pass it, e.g. {path / pixels.path}"
        )
    if path.is_dir() and not store:  # a store with length-1 leading axes, dropped by read_image
        raise ValueError(
            f"{path} has more than 3 axes: expected a stack of sections (Z, Y, X) or one section (Y, X); "
            "write the volume as a 2-D or 3-D array"
        )
    _check_dims(image.shape, str(path))
    return VolumeSource(
        "zarr" if store else "file",
        str(path),
        _zyx(image.shape),
        image.dtype,
        len(image.shape),
        tuple(pixels.chunks) if store else None,
        tuple(pixels.shards) if store and getattr(pixels, "shards", None) else None,
        pixels.metadata.zarr_format if store else None,
        image.ome,
        str(path.resolve()),
        pixels.path if store else "",
        level=level,
        pixel_size_nm=image.pixel_size_nm,
    )


def open_source(source: Any, level: int | None = None) -> VolumeSource:
    """Open `source` (Zarr / OME-Zarr path, TIFF path, zarr.Array, dask or NumPy array) for blockwise reading.

    Files are opened by `unet_zoo.data.reading.read_image` (lazily; its pixel size is kept). Raises
    FileNotFoundError for a missing path and ValueError for anything that is not a 2-D/3-D array.
    """
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"no such file or folder: {path}")
        return _open_path(path, level)
    if level not in (None, 0):
        raise ValueError("level applies to OME-Zarr paths only")
    if isinstance(source, zarr.Array):
        _check_dims(source.shape, "the zarr array")
        return VolumeSource(
            "array",
            f"zarr array {source.path or '/'}",
            _zyx(source.shape),
            np.dtype(source.dtype),
            source.ndim,
            tuple(source.chunks),
            tuple(source.shards) if getattr(source, "shards", None) else None,
            source.metadata.zarr_format,
            array=source,
        )
    if hasattr(source, "chunksize") and hasattr(source, "compute"):  # a dask array
        _check_dims(source.shape, "the dask array")
        return VolumeSource(
            "array",
            "dask array",
            _zyx(source.shape),
            np.dtype(source.dtype),
            source.ndim,
            tuple(int(c) for c in source.chunksize),
            array=source,
        )
    if isinstance(source, np.ndarray):
        _check_dims(source.shape, "the array")
        return VolumeSource("array", "NumPy array", _zyx(source.shape), source.dtype, source.ndim, array=source)
    raise TypeError(
        f"cannot read a {type(source).__name__} as a volume: pass a Zarr / OME-Zarr path, a TIFF path, "
        "a zarr.Array, a dask array or a NumPy array"
    )


# --- output ---------------------------------------------------------------------------------------


@dataclass
class VolumeOutput:
    """The output store: `path` (array or OME-Zarr group), `key` (the array inside it), the block markers."""

    path: str
    key: str
    ndim: int
    array: Any = field(default=None, repr=False)
    finished: bool = False  # a finished output reused as it is (open_output with reuse): nothing to compute

    def __getstate__(self) -> dict:
        return {**self.__dict__, "array": None}

    def _open(self):
        if self.array is None:
            node = zarr.open(self.path, mode="r+")
            self.array = node[self.key] if self.key else node
        return self.array

    @property
    def markers(self) -> Path:
        return Path(self.path) / MARKERS

    def write(self, z: slice, rows: slice, cols: slice, values: np.ndarray) -> None:
        """Store a (z, rows, cols) block (whole chunks), then mark it finished."""
        array = self._open()
        if self.ndim == 2:
            array[rows, cols] = values[0]
        else:
            array[z, rows, cols] = values

    def mark_done(self, name: str) -> None:
        atomic_write_bytes(self.markers / name, b"")

    def done(self) -> set[str]:
        return {p.name for p in self.markers.iterdir() if not p.name.startswith(".")} if self.markers.is_dir() else set()

    def attrs(self) -> dict:
        return dict(self._open().attrs)

    def complete(self) -> None:
        """Record that every block is written and drop the markers."""
        array = self._open()
        info = dict(array.attrs[ATTRS])
        info["complete"] = True
        array.attrs[ATTRS] = info
        shutil.rmtree(self.markers, ignore_errors=True)


def _ome_attrs(source: VolumeSource) -> dict:
    scales = {k: v for k, v in source.ome["multiscales"].items() if k not in ("datasets", "name", "type", "metadata")}
    dataset = {k: v for k, v in source.ome["dataset"].items() if k != "path"}
    scales.update(name="unet_zoo probabilities", datasets=[{"path": "0", **dataset}])
    if source.ome["wrapper"] == "ome":
        return {"ome": {"version": "0.5", "multiscales": [scales]}}
    return {"multiscales": [scales]}


def open_output(
    out: str | Path,
    source: VolumeSource,
    chunks: tuple[int, ...],
    shards: tuple[int, ...] | None,
    dtype: str,
    settings: dict,
    *,
    overwrite: bool,
    resume: bool,
    reuse: bool = False,
) -> tuple[VolumeOutput, set[str]]:
    """Create the output store (or reopen an unfinished one with the same `settings` when `resume`).

    Returns the output and the names of the blocks already finished. Raises FileExistsError for an
    existing output unless `overwrite`, which deletes it only when unet_zoo wrote it as a prediction (or it is
    an empty folder; `unet_zoo.utils.files.check_replaceable`). With `reuse`, an existing output made with the
    same `settings` from the same input is kept, finished or not, even with `overwrite` (`VolumeOutput.finished`
    then says whether anything is left to do).
    """
    path = Path(out).expanduser().resolve()
    check_not_nested(source, path)
    key = "0" if source.ome else ""
    if path.exists():
        if reuse:
            found = _same_run(path, key, settings, finished=True)
            if found is not None:
                return found
        if overwrite:
            if _read_info(path, key) is None:  # not a prediction by its attributes: only if marked as ours, or empty
                check_replaceable(path, what=PROBABILITIES)
            shutil.rmtree(path)
        else:
            found = _unfinished(path, key, settings) if resume else None
            if found is not None:
                return found
            raise FileExistsError(_exists_message(path, key))
    fmt = source.zarr_format or 2
    attrs = {ATTRS: {**settings, "unet_zoo_version": __version__, "complete": False}}
    if source.ome:
        group = zarr.open_group(str(path), mode="w-", zarr_format=fmt, attributes=_ome_attrs(source))
        group.create_array(
            key,
            shape=source.shape[-source.ndim :],
            chunks=chunks,
            shards=shards,
            dtype=dtype,
            fill_value=0,
            attributes=attrs,
            **_dims(fmt, source),
        )
    else:
        zarr.create_array(
            str(path),
            shape=source.shape[-source.ndim :],
            chunks=chunks,
            shards=shards,
            dtype=dtype,
            fill_value=0,
            attributes=attrs,
            zarr_format=fmt,
        )
    mark_owned(path, PROBABILITIES)
    output = VolumeOutput(str(path), key, source.ndim)
    output.markers.mkdir()
    return output, set()


def _dims(fmt: int, source: VolumeSource) -> dict:
    """Zarr v3 dimension names from the OME axes (the array then says which axis is which by itself)."""
    axes = source.ome["multiscales"].get("axes") if source.ome else None
    if fmt == 3 and axes and all(isinstance(a, dict) and "name" in a for a in axes) and len(axes) == source.ndim:
        return {"dimension_names": [a["name"] for a in axes]}
    return {}


def _read_info(path: Path, key: str) -> dict | None:
    try:
        node = zarr.open(str(path), mode="r")
        node = node[key] if key and isinstance(node, zarr.Group) else node
        info = dict(node.attrs).get(ATTRS)
    except Exception:
        return None
    return info if isinstance(info, dict) else None


def _replaceable(path: Path, key: str) -> bool:
    """Whether overwrite=True may delete the existing output `path`: a prediction by its attributes, a store
    unet_zoo marked as its own, or an empty folder (the rule `open_output` applies). The advice of
    `_exists_message` follows this, so it never suggests an overwrite that would then be refused."""
    if _read_info(path, key) is not None:
        return True
    try:
        check_replaceable(path, what=PROBABILITIES)
    except FileExistsError:
        return False
    return True


def _exists_message(path: Path, key: str) -> str:
    if not _replaceable(path, key):
        return f"{path} already exists and is not an output unet_zoo wrote, so it is never replaced; choose another output path"
    info = _read_info(path, key)
    if info and info.get("complete"):
        return f"{path} already holds a finished prediction; pass overwrite=True (--overwrite) to replace it"
    if info:
        return (
            f"{path} holds an unfinished prediction; resume=True continues it (with the same settings), "
            "overwrite=True (--overwrite) starts again"
        )
    return f"{path} already exists; choose another output path or pass overwrite=True (--overwrite) to replace it"


def _unfinished(path: Path, key: str, settings: dict) -> tuple[VolumeOutput, set[str]] | None:
    info = _read_info(path, key)
    if not info or info.get("complete"):
        return None
    if info.get("input") != settings.get("input"):
        raise FileExistsError(
            f"{path} holds an unfinished prediction of another input: {settings.get('source')} is not what it was "
            "when that prediction started (shape, dtype, chunks or its files changed since); continuing would mix "
            "both in one output. Pass overwrite=True (--overwrite) to start again"
        )
    differs = sorted(k for k in settings if info.get(k) != settings[k])
    if differs:
        raise FileExistsError(
            f"{path} holds an unfinished prediction made with other settings ({', '.join(differs)} differ); "
            "resume it with the same model and options, or pass overwrite=True (--overwrite) to start again"
        )
    return _same_run(path, key, settings, finished=False)


def _same_run(path: Path, key: str, settings: dict, *, finished: bool) -> tuple[VolumeOutput, set[str]] | None:
    """The output at `path` and its finished blocks when it was made with `settings` from the same input
    (unfinished, or with `finished` also a finished one), else None. A finished output is not written to."""
    info = _read_info(path, key)
    if not info or any(info.get(k) != v for k, v in settings.items()):
        return None
    output = VolumeOutput(str(path), key, len(settings["shape"]), finished=bool(info.get("complete")))
    if output.finished:
        return (output, set()) if finished else None
    output.markers.mkdir(exist_ok=True)
    return output, output.done()


__all__ = [
    "ATTRS",
    "PROBABILITIES",
    "VolumeInputError",
    "VolumeOutput",
    "VolumeSource",
    "check_not_nested",
    "open_output",
    "open_source",
]
