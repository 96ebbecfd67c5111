"""Files of a segmentation: the label TIFF (uint32) and a PNG of the segments in random colours over the image."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from skimage.segmentation import find_boundaries

from unet_zoo.data.images import to_uint8
from unet_zoo.utils.files import atomic_write_with


def output_names(stem: str) -> tuple[str, str]:
    """The files `segment` writes for an input named `stem`: ``<stem>_labels.tif``, ``<stem>_segments.png``."""
    return f"{stem}_labels.tif", f"{stem}_segments.png"


def write_labels_tiff(path: str | os.PathLike[str], labels: np.ndarray) -> Path:
    """Write a (H, W) or (S, H, W) label image as a uint32 TIFF (atomically); returns the path."""
    import tifffile

    data = np.asarray(labels)
    if data.ndim not in (2, 3) or data.dtype.kind not in "iu" or (data.size and data.min() < 0):
        raise ValueError(f"labels must be a (H, W) or (S, H, W) array of IDs >= 0, got {data.dtype} {data.shape}")
    data = data.astype(np.uint32, copy=False)
    return atomic_write_with(path, lambda tmp: tifffile.imwrite(tmp, data, photometric="minisblack"), suffix=".tif")


def segments_rgb(image: np.ndarray, labels: np.ndarray, alpha: float = 0.45, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8: each segment of a (H, W) label image in a random colour over the grey image, borders black."""
    grey = to_uint8(np.asarray(image)).astype(np.float32)
    labels = np.asarray(labels)
    if grey.shape != labels.shape:
        raise ValueError(f"image {grey.shape} and labels {labels.shape} differ in size")
    _, inverse = np.unique(labels, return_inverse=True)
    palette = np.random.default_rng(seed).integers(40, 256, size=(int(inverse.max()) + 1, 3)).astype(np.float32)
    rgb = (1 - alpha) * grey[..., None] + alpha * palette[inverse.reshape(labels.shape)]
    rgb[find_boundaries(labels, mode="inner")] = 0
    return np.round(rgb).astype(np.uint8)


def write_segments_png(path: str | os.PathLike[str], image: np.ndarray, labels: np.ndarray) -> Path:
    """Write `segments_rgb` of a (H, W) image and its labels as an RGB PNG (atomically); returns the path."""
    from PIL import Image

    rgb = segments_rgb(image, labels)
    return atomic_write_with(path, lambda tmp: Image.fromarray(rgb).save(tmp, format="PNG"), suffix=".png")


def write_segmentation(out_dir: str | os.PathLike[str], stem: str, image: np.ndarray, labels: np.ndarray) -> list[Path]:
    """Write ``<stem>_labels.tif`` and ``<stem>_segments.png`` (stacks: ``<stem>_z000_segments.png``, ...)."""
    out = Path(out_dir)
    labels_name, png_name = output_names(stem)
    written = [write_labels_tiff(out / labels_name, labels)]
    if np.ndim(labels) == 2:
        written.append(write_segments_png(out / png_name, image, labels))
    else:
        for i, (img, lab) in enumerate(zip(image, labels)):
            written.append(write_segments_png(out / output_names(f"{stem}_z{i:03d}")[1], img, lab))
    return written


__all__ = ["output_names", "segments_rgb", "write_labels_tiff", "write_segmentation", "write_segments_png"]
