"""Reading EM images (TIFF, PNG) and writing predictions: probability TIFF, mask PNG, overlay PNG.

Every file is written atomically: to a temporary file in the target folder, then `os.replace`d.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from unet_zoo.utils.errors import InputError
from unet_zoo.utils.files import atomic_write_with

TIFF_SUFFIXES = (".tif", ".tiff")
PNG_SUFFIXES = (".png",)
READABLE_SUFFIXES = TIFF_SUFFIXES + PNG_SUFFIXES + (".jpg", ".jpeg")


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


def _read_tiff(path: Path) -> np.ndarray:
    """The first series of a TIFF without its length-1 axes (pages, channels, samples) except Y and X, so a
    1-pixel-high or -wide image stays 2-D (plain `np.squeeze` would make it 1-D or 0-D).

    Colour and multi-channel TIFFs are recognised by the file's own axes metadata (samples ``S``: RGB, both
    interleaved ``YXS`` and planar ``SYX``; channels ``C``, except in an ImageJ "grayscale" stack), not by the
    array's shape, and refused (InputError)."""
    with open_tiff(path) as tif:
        try:
            series = tif.series[0]
            axes = series.axes
            image = series.asarray()
            imagej_mode = (tif.imagej_metadata or {}).get("mode", "")
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
    return image.reshape([n for a, n in zip(axes, image.shape) if n != 1 or a in "YX"])


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a 2-D image (H, W) or a stack (S, H, W) from TIFF, PNG or JPEG, keeping its dtype.

    Colour PNG/JPEG images are converted to grey (ITU-R 601 luma); multi-page TIFFs become stacks.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such image file: {path}")
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        image = _read_tiff(path)  # colour TIFFs refused by their axes metadata
    elif suffix in READABLE_SUFFIXES:
        from PIL import Image

        with Image.open(path) as img:
            if img.mode not in ("L", "I;16", "I;16B", "I", "F", "1"):
                img = img.convert("L")
            image = np.array(img)
    else:
        raise ValueError(f"cannot read {path}: use one of {', '.join(READABLE_SUFFIXES)}")
    if image.ndim not in (2, 3):
        raise ValueError(f"{path}: expected a 2-D image or a 3-D stack, got shape {image.shape}")
    return image


def _atomic_write(path: str | os.PathLike[str], write: Callable[[str], object]) -> Path:
    """`files.atomic_write_with`, keeping the file's suffix on the temporary name (writers look at it)."""
    return atomic_write_with(path, write, suffix=Path(path).suffix)


def write_prob_tiff(path: str | os.PathLike, prob: np.ndarray, metadata: dict | None = None) -> Path:
    """Write a (H, W) or (S, H, W) probability map as float32 TIFF (values in [0, 1]); `metadata` (JSON-able)
    goes into the TIFF's description under "unet_zoo" (``tifffile.TiffFile(path).shaped_metadata[0]["unet_zoo"]``)."""
    import tifffile

    prob = np.asarray(prob, dtype=np.float32)
    if prob.ndim not in (2, 3):
        raise ValueError(f"probability map must be (H, W) or (S, H, W), got shape {prob.shape}")
    extra = {"unet_zoo": metadata} if metadata else {}
    return _atomic_write(path, lambda tmp: tifffile.imwrite(tmp, prob, photometric="minisblack", metadata=extra))


def write_mask_png(path: str | os.PathLike, mask: np.ndarray) -> Path:
    """Write a (H, W) bool mask as an 8-bit PNG: 255 = cell (True), 0 = membrane (False)."""
    from PIL import Image

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    data = np.where(mask, 255, 0).astype(np.uint8)
    return _atomic_write(path, lambda tmp: Image.fromarray(data).save(tmp, format="PNG"))


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Scale a (H, W) image of any dtype to uint8 for display (min-max for non-uint8 inputs)."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    image = image.astype(np.float64)
    lo, hi = np.nanmin(image), np.nanmax(image)
    scaled = (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)
    return np.round(scaled * 255).astype(np.uint8)


def overlay(image: np.ndarray, mask: np.ndarray, color: tuple[int, int, int] = (255, 0, 0), alpha: float = 0.5) -> np.ndarray:
    """(H, W, 3) uint8 RGB: the grey image with the membrane (mask False) tinted in `color`."""
    grey = to_uint8(image)
    if grey.shape != np.shape(mask):
        raise ValueError(f"image {grey.shape} and mask {np.shape(mask)} differ in size")
    rgb = np.repeat(grey[..., None], 3, axis=-1).astype(np.float32)
    membrane = ~np.asarray(mask, dtype=bool)
    rgb[membrane] = (1 - alpha) * rgb[membrane] + alpha * np.asarray(color, dtype=np.float32)
    return np.round(rgb).astype(np.uint8)


def write_overlay_png(path: str | os.PathLike, image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> Path:
    """Write the image with predicted membrane (mask False) tinted red, as an RGB PNG."""
    from PIL import Image

    rgb = overlay(image, mask, alpha=alpha)
    return _atomic_write(path, lambda tmp: Image.fromarray(rgb).save(tmp, format="PNG"))


def prediction_names(stem: str) -> list[str]:
    """The files `write_prediction` writes for `stem` (a stack adds `<stem>_z000_mask.png`, ... instead of the PNGs)."""
    return [f"{stem}_prob.tif", f"{stem}_mask.png", f"{stem}_overlay.png"]


def uncertainty_name(stem: str) -> str:
    """The file `predict --uncertainty` writes for `stem`: ``<stem>_uncertainty.tif``."""
    return f"{stem}_uncertainty.tif"


def write_prediction(
    out_dir: str | os.PathLike,
    stem: str,
    image: np.ndarray,
    cell_prob: np.ndarray,
    threshold: float = 0.5,
    metadata: dict | None = None,
) -> list[Path]:
    """Write `<stem>_prob.tif`, `<stem>_mask.png` and `<stem>_overlay.png` for a (H, W) image.

    For a stack (S, H, W) the probability TIFF is one multi-page file and the PNGs are written per
    slice as `<stem>_z000_mask.png`, ... `metadata` (e.g. the inference path that ran) goes into the
    probability TIFF (`write_prob_tiff`). Returns the written paths.
    """
    out_dir = Path(out_dir)
    image, cell_prob = np.asarray(image), np.asarray(cell_prob)
    if image.shape != cell_prob.shape:
        raise ValueError(f"image {image.shape} and probabilities {cell_prob.shape} differ in shape")
    prob_name, mask_name, overlay_name = prediction_names(stem)
    written = [write_prob_tiff(out_dir / prob_name, cell_prob, metadata)]
    if image.ndim == 2:
        pairs = [(mask_name, overlay_name, image, cell_prob)]
    else:
        pairs = [(*prediction_names(f"{stem}_z{i:03d}")[1:], image[i], cell_prob[i]) for i in range(image.shape[0])]
    for mask_file, overlay_file, img, prob in pairs:
        mask = prob > threshold
        written.append(write_mask_png(out_dir / mask_file, mask))
        written.append(write_overlay_png(out_dir / overlay_file, img, mask))
    return written


__all__ = [
    "READABLE_SUFFIXES",
    "overlay",
    "prediction_names",
    "read_image",
    "uncertainty_name",
    "to_uint8",
    "write_mask_png",
    "write_overlay_png",
    "write_prediction",
    "write_prob_tiff",
]
