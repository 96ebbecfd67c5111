"""One reader for images: `read_image(path_or_array)` -> `Image`, pixels with their axes and pixel size.

    image = read_image("em.tif")        # TIFF (2-D or a stack), PNG / JPEG, Zarr / OME-Zarr, or an array
    image.pixels                        # (H, W) or (S, H, W); a Zarr store stays on disk (lazy)
    image.axes                          # "YX" or "ZYX"
    image.pixel_size_nm                 # nm per pixel, or None when the file records none
    image.pixel_size_source             # where it came from: "the resolution tags of em.tif", ...

TIFFs are read whole (with ``lazy=True`` left in the file: memory-mapped, or page by page when compressed),
with their resolution tags (ImageJ ``unit`` + XResolution, or ResolutionUnit cm / inch); colour PNG / JPEG
images become grey (ITU-R 601 luma); a Zarr array or an OME-Zarr group (a chosen resolution level, pixel size
from its scale) is opened without reading pixels; NumPy, dask and zarr arrays
are taken as they are. Every recorded pixel size passes `unet_zoo.data.pixel_size.check_pixel_size`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from unet_zoo.data.pixel_size import PixelSizeError, check_pixel_size
from unet_zoo.utils.errors import InputError

TIFF_SUFFIXES = (".tif", ".tiff")
PNG_SUFFIXES = (".png",)
READABLE_SUFFIXES = TIFF_SUFFIXES + PNG_SUFFIXES + (".jpg", ".jpeg")
ZARR_SUFFIXES = (".zarr", ".n5")
ZARR_MARKERS = (".zarray", ".zgroup", "zarr.json")  # files that make a folder a Zarr store

COLOUR_AXES = "SC"  # tifffile's axes codes for samples (RGB, interleaved YXS or planar SYX) and channels


@contextlib.contextmanager
def open_tiff(path: str | os.PathLike) -> Iterator[Any]:
    """`tifffile.TiffFile(path)`, with any error reading it (an empty, truncated or non-TIFF file) turned into an
    `InputError` that names the file and says what to do, instead of tifffile's own words."""
    import tifffile

    try:
        tif = tifffile.TiffFile(path)
    except (tifffile.TiffFileError, ValueError, OSError, EOFError, struct.error, IndexError, KeyError) as err:
        size = os.path.getsize(path) if os.path.isfile(path) else 0
        what = "empty" if size == 0 else f"truncated or not a TIFF ({size:,} bytes; {err})"
        raise InputError(f"cannot read {path}: the file is {what}; export it again as a TIFF") from None
    with tif:
        yield tif


def _open_tiff_lazily(path: Path) -> Any:
    """The first series of a TIFF without reading it: a read-only memory map (uncompressed, contiguous pages),
    else a zarr array over tifffile's page store (compressed or tiled pages: read page by page)."""
    import tifffile

    try:
        return tifffile.memmap(path, mode="r")
    except ValueError:
        import zarr  # lazy: the optional volumes extra

        return zarr.open(tifffile.imread(path, aszarr=True), mode="r")


def _read_tiff(path: Path, lazy: bool = False) -> Any:
    """The first series of a TIFF without its length-1 axes (pages, channels, samples) except Y and X, so a
    1-pixel-high or -wide image stays 2-D (plain `np.squeeze` would make it 1-D or 0-D). With `lazy`, the pixels
    stay in the file (`_open_tiff_lazily`) and are read where they are indexed.

    Colour and multi-channel TIFFs are recognised by the file's own axes metadata (samples ``S``: RGB, both
    interleaved ``YXS`` and planar ``SYX``; channels ``C``, except in an ImageJ "grayscale" stack), not by the
    array's shape, and refused (InputError)."""
    with open_tiff(path) as tif:
        try:
            series = tif.series[0]
            axes = series.axes
            image = _open_tiff_lazily(path) if lazy else series.asarray()
            imagej_mode = (tif.imagej_metadata or {}).get("mode", "")
        except InputError:
            raise
        except Exception as err:  # noqa: BLE001  tifffile raises many kinds on damaged files: name the file
            raise InputError(f"cannot read the pixels of {path} ({type(err).__name__}: {err}); export it again") from None
    # ImageJ "grayscale" hyperstacks (tifffile's imagej=True writes 3-D stacks so) hold sections under C
    colour = [
        (a, n) for a, n in zip(axes, series.shape) if a in COLOUR_AXES and n > 1 and not (a == "C" and imagej_mode == "grayscale")
    ]
    if colour:
        kind = "colour (RGB)" if colour[0][0] == "S" else "multi-channel"
        raise InputError(
            f"{path} is a {kind} TIFF (axes {axes}, shape {tuple(series.shape)}); unet_zoo segments greyscale "
            "images: convert it to greyscale (or pick one channel) first; if its planes are sections of a stack, "
            "write it again as greyscale (tifffile: photometric='minisblack')"
        )
    if len(axes) != image.ndim or "Y" not in axes or "X" not in axes:
        axes = "?" * (image.ndim - 2) + "YX"  # unknown layout: the last two axes are the image
    shape = [n for a, n in zip(axes, image.shape) if n != 1 or a in "YX"]
    if len(shape) == image.ndim:
        return image
    if isinstance(image, np.ndarray):
        return image.reshape(shape)
    import dask.array as da  # lazy: the optional volumes extra, only for compressed TIFFs read lazily

    return da.from_zarr(image).reshape(shape)


# --- pixel sizes ---------------------------------------------------------------------------------------------


_UNIT_NM = {"nm": 1.0, "nanometer": 1.0, "um": 1e3, "µm": 1e3, "micron": 1e3, "micrometer": 1e3, "mm": 1e6, "millimeter": 1e6}


def nm_per_unit(unit: str) -> float | None:
    """Nanometres in one `unit` of length as metadata spell it ("nm", "micrometer", "µm", "mm", ...), or None."""
    return _UNIT_NM.get(str(unit).lower().replace("\\u00b5", "µ"))


def tiff_pixel_size(path: str | os.PathLike) -> float | None:
    """The pixel size in nm a TIFF records (ImageJ ``unit`` + XResolution, or ResolutionUnit cm / inch), or None.
    A recorded size that is not plausible is a `PixelSizeError` naming the file (`check_pixel_size`)."""
    source = f"the resolution tags of {path}"
    with open_tiff(path) as tif:
        page = tif.pages[0]
        tags = page.tags
        res = tags.get("XResolution")
        if res is None:
            return None
        num, den = res.value
        if not num or not den:
            return None
        per_unit = num / den  # pixels per unit
        unit = str((tif.imagej_metadata or {}).get("unit", "")).lower().replace("\\u00b5", "µ")
        if unit in _UNIT_NM:
            return check_pixel_size(_UNIT_NM[unit] / per_unit, source)
        kind = int(getattr(tags.get("ResolutionUnit"), "value", 1))
        if kind == 3:  # centimeter
            return check_pixel_size(1e7 / per_unit, source)
        if kind == 2 and per_unit not in (72.0, 96.0, 300.0):  # inch; 72/96/300 dpi are display defaults, not sizes
            return check_pixel_size(2.54e7 / per_unit, source)
    return None


def ome_pixel_size(multiscales: dict[str, Any], dataset: dict[str, Any], source: str = "the OME-Zarr scale") -> float | None:
    """The x pixel size in nm of one OME-Zarr `dataset` (a resolution level) of `multiscales` (its axes give the
    unit), from the level's scale transformation; None without a scale or a known length unit. A scale that is
    not a plausible pixel size (negative, zero, NaN, ...) is a `PixelSizeError` naming `source`."""
    axes = multiscales.get("axes") or []
    transforms = dataset.get("coordinateTransformations") or []
    scales = [t.get("scale") for t in transforms if t.get("type") == "scale" and t.get("scale")]
    if not scales or not axes:
        return None
    x_axis = axes[-1] if isinstance(axes[-1], dict) else {"name": axes[-1]}
    factor = nm_per_unit(x_axis.get("unit", ""))
    if not factor:
        return None
    value = scales[0][-1] if isinstance(scales[0], list) and scales[0] else scales[0]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PixelSizeError(f"{source}: the scale must be a list of numbers, got {scales[0]!r}; fix the store's metadata")
    return check_pixel_size(value * factor, source)


def _read_png(path: Path) -> np.ndarray:
    """A PNG or JPEG as a 2-D array: grey and 16-bit modes as they are, colour converted to grey (ITU-R 601)."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as img:
            if img.mode not in ("L", "I;16", "I;16B", "I", "F", "1"):
                img = img.convert("L")
            return np.array(img)
    except (OSError, SyntaxError, ValueError) as err:
        raise InputError(f"cannot read {path} ({err}); export it again as a PNG or TIFF") from None


class ImageMetadataError(InputError):
    """A store's own metadata is broken (e.g. an OME-Zarr level without an array path): fix the file."""


@dataclass(frozen=True)
class Image:
    """Pixels with their axes and pixel size.

    `pixels`: (H, W) (axes "YX") or (S, H, W) (axes "ZYX", sections along the first axis; arrays given as such
    may have more leading axes, "?"); a NumPy array, or a zarr / dask array read only where it is indexed.
    `pixel_size_nm`: nm per pixel in y and x, None when unknown; `pixel_size_source` says where it came from.
    `path`: the file or store read, if any. `ome`: for an OME-Zarr level, its metadata ({"wrapper": "ome" (0.5) or
    None (0.4), "multiscales": the first multiscales entry, "dataset": the level's entry}), else None.
    ``np.asarray(image)`` reads the pixels."""

    pixels: Any
    axes: str
    pixel_size_nm: float | None = None
    pixel_size_source: str | None = None
    path: Path | None = None
    ome: dict[str, Any] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.pixels.shape)

    @property
    def ndim(self) -> int:
        return len(self.axes)

    @property
    def sections(self) -> list[tuple[int, ...]]:
        """The leading indices of every (H, W) section, in order: [()] for a 2-D image, [(0,), (1,), ...] for a stack."""
        return list(itertools.product(*(range(n) for n in self.shape[:-2])))

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.pixels.dtype)

    @property
    def name(self) -> str:
        """What to call the image in messages: its path, else "the array"."""
        return str(self.path) if self.path is not None else "the array"

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        values = np.asarray(self.pixels)
        return values if dtype is None else values.astype(dtype)

    def section(self, index: tuple[int, ...] = ()) -> np.ndarray:
        """One (H, W) section as a NumPy array, read on its own: `index` leading indices (() for a 2-D image)."""
        return np.asarray(self.pixels[index]) if index else np.asarray(self.pixels)

    def with_pixel_size(self, pixel_size_nm: float | None, source: str = "the pixel size given") -> Image:
        """This image with another pixel size (None keeps the recorded one); checked by `check_pixel_size`."""
        if pixel_size_nm is None:
            return self
        return replace(self, pixel_size_nm=check_pixel_size(pixel_size_nm, source), pixel_size_source=source)


def is_zarr_path(path: Path) -> bool:
    """A Zarr / N5 store: a folder named *.zarr / *.n5 or holding Zarr metadata."""
    return path.suffix.lower() in ZARR_SUFFIXES or (path.is_dir() and any((path / m).exists() for m in ZARR_MARKERS))


def _axes(shape: tuple[int, ...], what: str, more: bool = False) -> str:
    """ "YX" or "ZYX" (with `more`, arrays of more leading axes too: "?" for each axis before Z)."""
    if len(shape) < 2 or (len(shape) > 3 and not more):
        raise InputError(
            f"{what}: expected a 2-D image (H, W) or a stack of sections (S, H, W), got shape {tuple(shape)}; "
            "select a channel / time point first (e.g. array[0])"
        )
    if min(shape) < 1:
        raise InputError(f"{what} is empty: shape {tuple(shape)}")
    return "YX" if len(shape) == 2 else "?" * (len(shape) - 3) + "ZYX"


def ome_multiscales(attrs: dict[str, Any]) -> dict[str, Any] | None:
    """The first multiscales entry of OME-Zarr 0.4 (top-level) or 0.5 (under "ome") attributes, or None."""
    ome = attrs.get("ome")
    nested: dict[str, Any] = ome if isinstance(ome, dict) else {}
    found = attrs.get("multiscales") or nested.get("multiscales")
    return found[0] if found else None


def _drop_leading_ones(array: Any) -> Any:
    """(1, 1, Z, Y, X) -> (Z, Y, X) without reading: OME-Zarr's (t, c, z, y, x) of one channel and time point."""
    lead = [n for n in array.shape[:-2] if n == 1]
    if not lead or len(array.shape) <= 3:
        return array
    keep = len(array.shape) - len(lead)
    if keep < 2:
        return array
    if isinstance(array, np.ndarray):
        return array.reshape([n for n in array.shape[:-2] if n != 1] + list(array.shape[-2:]))
    import dask.array as da  # lazy: the optional volumes extra, only for stores with length-1 leading axes

    lazy = array if hasattr(array, "compute") else da.from_zarr(array)
    return lazy.reshape([n for n in array.shape[:-2] if n != 1] + list(array.shape[-2:]))


def _read_zarr(path: Path, level: int | None) -> Image:
    try:
        import zarr  # lazy: the optional volumes extra
    except ImportError:
        raise ImportError(f'reading {path} needs zarr: pip install "unet-zoo[volumes]"') from None
    try:
        node: Any = zarr.open(str(path), mode="r")
    except Exception as err:  # noqa: BLE001  zarr raises several types for "nothing readable here"
        raise InputError(
            f"{path} is not a readable Zarr array or group ({type(err).__name__}: {err}); "
            "pass a Zarr v2/v3 array or OME-Zarr group, or a TIFF stack"
        ) from None
    size, where, ome = None, None, None
    if isinstance(node, zarr.Group):
        scales = ome_multiscales(dict(node.attrs))
        if scales is None:
            arrays = sorted(name for name, _ in node.arrays())
            if len(arrays) != 1:
                hint = f"; it holds the arrays {', '.join(arrays)}: pass one, e.g. {path / arrays[0]}" if arrays else ""
                raise InputError(f"{path} is a Zarr group without OME-Zarr multiscales metadata{hint}")
            node = node[arrays[0]]
        else:
            datasets = scales.get("datasets") or []
            level = 0 if level is None else level
            if not 0 <= level < len(datasets):
                raise InputError(f"{path} has {len(datasets)} resolution level(s) (0..{len(datasets) - 1}); got level {level}")
            key = datasets[level].get("path") if isinstance(datasets[level], dict) else None
            if not isinstance(key, str) or not key:
                raise ImageMetadataError(
                    f"{path}: the OME-Zarr metadata (multiscales[0].datasets[{level}]) has no 'path' naming the array "
                    f"of level {level}; fix the metadata, or pass the array itself (e.g. {path / '0'})"
                )
            axes = scales.get("axes") or []
            if axes and any(isinstance(a, dict) and a.get("type") not in (None, "space") for a in axes[-2:]):
                raise InputError(f"{path}: the last two axes must be spatial (y, x), got {axes}")
            where = f"the OME-Zarr scale of {path}"
            size = ome_pixel_size(scales, datasets[level], where)
            nested = dict(node.attrs).get("ome")
            wrapper = "ome" if isinstance(nested, dict) and nested.get("multiscales") else None
            ome = {"wrapper": wrapper, "multiscales": scales, "dataset": datasets[level]}
            node = node[key]
            if not isinstance(node, zarr.Array):
                raise InputError(f"{path}/{key} (level {level}) is not a Zarr array")
    elif level not in (None, 0):
        raise InputError(f"level {level} needs an OME-Zarr group; {path} is a single array")
    pixels = _drop_leading_ones(node)
    return Image(pixels, _axes(pixels.shape, str(path)), size, where if size else None, path, ome)


def read_image(source: Any, *, level: int | None = None, pixel_size: float | None = None, lazy: bool = False) -> Image:
    """Read `source` as an `Image`: a TIFF (2-D or a stack), PNG or JPEG path, a Zarr / OME-Zarr store (at
    resolution `level`, default 0; lazy), a NumPy, dask or zarr array of shape (H, W) or (S, H, W), or an `Image`.

    `pixel_size` (nm) overrides what the file records. With `lazy`, a TIFF stays in the file too (a memory map,
    or page by page when compressed), read where it is indexed. Raises FileNotFoundError for a missing path and
    `InputError` (a ValueError) naming the file for anything unreadable or of the wrong shape."""
    if isinstance(source, Image):
        image = source
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"no such image file: {path}")
        suffix = path.suffix.lower()
        if is_zarr_path(path) or path.is_dir():  # a folder can only be a Zarr store
            image = _read_zarr(path, level)
        elif level not in (None, 0):
            raise InputError(f"level {level} needs an OME-Zarr group; {path} is a single image")
        elif suffix in TIFF_SUFFIXES:
            pixels = _read_tiff(path, lazy)  # colour TIFFs refused by their axes metadata
            size = tiff_pixel_size(path)
            where = f"the resolution tags of {path}" if size else None
            image = Image(pixels, _axes(pixels.shape, str(path)), size, where, path)
        elif suffix in READABLE_SUFFIXES:
            pixels = _read_png(path)
            image = Image(pixels, _axes(pixels.shape, str(path)), None, None, path)
        else:
            raise InputError(
                f"cannot read {path}: it is not a TIFF, PNG or JPEG file; use one of {', '.join(READABLE_SUFFIXES)} "
                "or a Zarr store (a folder)"
            )
    elif hasattr(source, "shape") and hasattr(source, "dtype") and hasattr(source, "__getitem__"):
        # NumPy, dask, zarr or any array-like (a napari layer's data): kept as it is, read where it is indexed
        image = Image(source, _axes(tuple(source.shape), "the array", more=True))
    else:
        raise TypeError(
            f"cannot read a {type(source).__name__} as an image: pass a path (TIFF, PNG, JPEG, Zarr), "
            "a NumPy, dask or zarr array, or an Image"
        )
    return image.with_pixel_size(pixel_size, "the pixel size given") if pixel_size is not None else image


__all__ = [
    "Image",
    "ImageMetadataError",
    "PNG_SUFFIXES",
    "READABLE_SUFFIXES",
    "TIFF_SUFFIXES",
    "is_zarr_path",
    "nm_per_unit",
    "ome_multiscales",
    "ome_pixel_size",
    "open_tiff",
    "read_image",
    "tiff_pixel_size",
]
