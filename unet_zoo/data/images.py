"""Writing predictions: probability TIFF, mask PNG, overlay PNG (reading: `unet_zoo.data.reading`).

Every file is written atomically: to a temporary file in the target folder, then `os.replace`d.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from unet_zoo.data.reading import READABLE_SUFFIXES
from unet_zoo.utils.files import atomic_write_with


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
    "uncertainty_name",
    "to_uint8",
    "write_mask_png",
    "write_overlay_png",
    "write_prediction",
    "write_prob_tiff",
]
